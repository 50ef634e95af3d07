// A checkout in a folder only root may enter (mode 0700: a `mktemp -d` folder, root's home): the
// PostgreSQL servers Tally starts run as user postgres when we are root, and that user cannot
// enter such a folder. One of the cluster's servers is started from such a checkout with the
// stack's own command, answers, is seen by status, stops, and `stack.sh clean` removes its data.
import { execFile, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../..");

/** A port nothing listens on now (the kernel's pick), for a server of this test only. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port from the kernel");
  return address.port;
}

let folder: string; // the 0700 folder, as `mktemp -d` makes it
let checkout: string;
let port: number;
let env: NodeJS.ProcessEnv;

/** `bash <checkout>/infra/stack.sh ...`: stdout and stderr together, and the exit code. */
async function stack(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run("bash", [join(checkout, "infra/stack.sh"), ...args], {
      env,
      timeout: 90_000,
      maxBuffer: 16 << 20,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === "number" ? failed.code : -1,
      output: `${failed.stdout}${failed.stderr}`,
    };
  }
}

/** The folder the checkout's PostgreSQL servers keep their data in, as stack.sh recorded it. */
function stateDir(): string | null {
  const record = join(checkout, ".local/run/pg-state.dir");
  return existsSync(record) ? readFileSync(record, "utf8").trim() : null;
}

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), "tally-0700-"));
  checkout = join(folder, "x");
  // The stack's scripts of this working tree, as a fresh clone has them (no .local yet).
  mkdirSync(join(checkout, "infra"), { recursive: true });
  cpSync(join(repoRoot, "infra/stack.sh"), join(checkout, "infra/stack.sh"));
  cpSync(join(repoRoot, "infra/stack"), join(checkout, "infra/stack"), { recursive: true });
  port = await freePort();
  // Only pg-shard-0 is started, on a port of its own: a running cluster's 19210 is left alone.
  env = { ...process.env, CLUSTER_PG_BASE_PORT: String(port) };
});

afterAll(async () => {
  if (checkout === undefined) return;
  // Whatever happened above: the server stopped, its data removed, the folder gone.
  await stack("cluster-stop", "pg-shard-0");
  await stack("clean");
  const state = stateDir();
  if (state?.startsWith("/var/tmp/tally-") && existsSync(state)) {
    // clean refused or failed: the server this test started goes by its pid, then its data.
    const pidFile = join(state, "cluster/pg-shard-0/data/postmaster.pid");
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").split("\n")[0]) : 0;
    if (pid > 0) {
      try {
        process.kill(pid, "SIGINT"); // PostgreSQL's fast shutdown
        await new Promise((resolve) => setTimeout(resolve, 3_000));
      } catch {
        // already gone
      }
    }
    rmSync(state, { recursive: true, force: true });
  }
  rmSync(folder, { recursive: true, force: true });
});

describe("the stack's PostgreSQL from a checkout in a folder only root may enter", () => {
  it("given a checkout under a mode-0700 folder, when a cluster server starts there, then it answers, stops, and clean removes its data", async () => {
    expect(statSync(folder).mode & 0o777).toBe(0o700);

    const started = await stack("cluster-start", "pg-shard-0");
    expect(started.output).toMatch(new RegExp(`cluster-pg-shard-0 +started +127\\.0\\.0\\.1:${port}`));
    expect(started.code).toBe(0);

    const answer = execFileSync(
      "psql",
      ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-Atc", "select 1"],
      {
        encoding: "utf8",
        timeout: 30_000,
      },
    );
    expect(answer.trim()).toBe("1");

    // The data lives outside the checkout, in a folder of the servers' user that only it may enter.
    const state = stateDir();
    expect(state).not.toBeNull();
    expect(state!.startsWith(`${checkout}/`)).toBe(false);
    const mode = statSync(state!);
    expect(mode.mode & 0o777).toBe(0o700);
    if (process.getuid?.() === 0) {
      const postgresUid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
      expect(mode.uid).toBe(postgresUid);
    }
    expect(readFileSync(join(state!, "checkout"), "utf8").trim()).toBe(checkout);

    // status finds it through the record; the log stays in the checkout.
    expect((await stack("status-cluster")).output).toMatch(
      /^cluster-pg-shard-0 +running +pid \d+ .*healthy$/m,
    );
    expect(readFileSync(join(checkout, ".local/logs/cluster-pg-shard-0.log"), "utf8")).toMatch(
      /database system is ready to accept connections/,
    );

    const stopped = await stack("cluster-stop", "pg-shard-0");
    expect(stopped.code).toBe(0);
    expect(stopped.output).toMatch(/cluster-pg-shard-0 +stopped \(fast\)/);
    expect((await stack("status-cluster")).output).toMatch(/^cluster-pg-shard-0 +stopped$/m);

    const cleaned = await stack("clean");
    expect(cleaned.code).toBe(0);
    expect(existsSync(state!)).toBe(false);
    expect(stateDir()).toBeNull();
  });
});
