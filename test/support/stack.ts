// Each integration test file gets its own topic and databases on the shared local stack, so files
// never see each other's rows, and removes them afterwards.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import pg from "pg";
import { type Config, databaseNameOf, loadConfig } from "../../services/common/config.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { type Component, containerCtl, containerStackState, stackProvider } from "./provider.ts";

export const repoRoot = new URL("../../", import.meta.url).pathname;
const run = promisify(execFile);

/**
 * The stack's endpoints as `make up` wrote them (or, with TALLY_TEST_STACK=containers, as the
 * containers' global setup did), under the caller's own TALLY_* settings.
 */
export function stackEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv =
    stackProvider() === "containers" ? containerStackState().env : localStackEnv();
  for (const [name, value] of Object.entries(process.env)) if (name.startsWith("TALLY_")) env[name] = value;
  return env;
}

function localStackEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  try {
    for (const line of readFileSync(`${repoRoot}.local/stack.env`, "utf8").split("\n")) {
      const [name, ...rest] = line.split("=");
      if (name?.startsWith("TALLY_")) env[name] = rest.join("=");
    }
  } catch {
    // no stack.env: the defaults point at the local stack
  }
  return env;
}

export type TestStack = { config: Config; env: NodeJS.ProcessEnv; name: string };

/** A unique topic and unique shard/views databases for one test file. */
export function testStack(label: string, overrides: Record<string, string> = {}): TestStack {
  const name = `t${label}_${randomBytes(3).toString("hex")}`;
  const base = stackEnv();
  const port = base.TALLY_LOCAL_PG_PORT ?? "5432";
  const shards = Number(overrides.shards ?? 2);
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const env: NodeJS.ProcessEnv = {
    ...base,
    TALLY_TOPIC: name,
    TALLY_GROUP: `${name}-applier`,
    TALLY_PARTITIONS: "4",
    TALLY_PG_SHARDS: Array.from({ length: shards }, (_, k) => url(`${name}_shard_${k}`)).join(","),
    TALLY_PG_VIEWS: url(`${name}_views`),
    TALLY_LOG_LEVEL: "warn",
    TALLY_KAFKA_SESSION_TIMEOUT_MS: "6000",
    ...Object.fromEntries(Object.entries(overrides).filter(([k]) => k.startsWith("TALLY_"))),
  };
  return { config: loadConfig(env), env, name };
}

export async function dropTestStack({ config }: TestStack): Promise<void> {
  const admin = createKafka(config, "test-admin").admin();
  await admin.connect();
  try {
    if ((await admin.listTopics()).includes(config.TALLY_TOPIC))
      await admin.deleteTopics({ topics: [config.TALLY_TOPIC] });
  } finally {
    await admin.disconnect();
  }
  await dropDatabases(config);
}

/** Drops the shard and views databases of a test configuration, connections and all. */
export async function dropDatabases(config: Config): Promise<void> {
  for (const url of [...config.TALLY_PG_SHARDS, config.TALLY_PG_VIEWS]) {
    const maintenance = new URL(url);
    maintenance.pathname = "/postgres";
    const client = new pg.Client({ connectionString: maintenance.toString() });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS "${databaseNameOf(url)}" WITH (FORCE)`);
    await client.end();
  }
}

/** Runs `bin/tally` with the given environment; resolves with its exit code and output. */
export function tally(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  return runBin("tally", args, env);
}

/** Runs `bin/tally-tools` (demo, produce, bench) like tally(). */
export function tallyTools(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  return runBin("tally-tools", args, env);
}

export type CommandResult = { code: number; stdout: string; stderr: string };

async function runBin(
  bin: "tally" | "tally-tools",
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(`${repoRoot}bin/${bin}`, args, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

/** `infra/stack.sh <verb> <component>`, e.g. restart registry (or the container's, under containers). */
export async function stackCtl(verb: "stop" | "start" | "restart", component: Component): Promise<void> {
  if (stackProvider() === "containers") return containerCtl(verb, component);
  await run("bash", [`${repoRoot}infra/stack.sh`, verb, component], { maxBuffer: 16 << 20 });
}

// Components an outage stopped and nothing has started again yet, with the start under way if any:
// the test's own `finally` and the file's afterEach (restoreStack) may both try, once.
const outages = new Map<Component, Promise<void> | null>();

function endOutage(component: Component): Promise<void> {
  if (!outages.has(component)) return Promise.resolve();
  let starting = outages.get(component);
  if (!starting) {
    starting = stackCtl("start", component).then(
      () => void outages.delete(component),
      (error: unknown) => {
        outages.set(component, null); // a later restoreStack tries again
        throw error;
      },
    );
    outages.set(component, starting);
  }
  return starting;
}

/**
 * Stops `component`, runs `during`, and starts it again whatever `during` did. Refused once `signal`
 * (the test context's) is aborted: a body that goes on after its test timed out must not stop a
 * server under the next test. A body still waiting when its test ends leaves the start to
 * restoreStack, which every file that makes outages calls in its afterEach.
 */
export async function withOutage<T>(
  component: Component,
  signal: AbortSignal,
  during: () => Promise<T>,
): Promise<T> {
  signal.throwIfAborted();
  if (outages.has(component)) throw new Error(`${component} is already stopped by an outage`);
  outages.set(component, null);
  try {
    await stackCtl("stop", component);
    return await during();
  } finally {
    await endOutage(component);
  }
}

/** Starts every component an outage left stopped (a test that failed or timed out mid-outage). */
export async function restoreStack(): Promise<Component[]> {
  const stopped = [...outages.keys()];
  for (const component of stopped) await endOutage(component);
  return stopped;
}
