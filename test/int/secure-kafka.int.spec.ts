// The pipeline over Kafka TLS + SASL/SCRAM, against the local stack's secured broker (SASL_SSL on
// 127.0.0.1:19094, made by `bash infra/stack.sh start kafka-secure`), with the registry behind a
// basic-auth gate: a known load ends exact; a wrong password and a plaintext client are refused
// quickly and plainly; secrets stay masked.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../services/common/config.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { runProjector } from "../../services/projector/index.ts";
import { expectExactState, produceLoad } from "../support/pipeline.ts";
import { dropTestStack, repoRoot, stackEnv, type TestStack, testStack } from "../support/stack.ts";
import { within } from "../support/wait.ts";

const stackScript = `${repoRoot}infra/stack.sh`;
const clientEnvFile = `${repoRoot}.local/kafka-secure/client.env`;
const tallyBin = `${repoRoot}bin/tally`;
const secureBrokerAddress = "127.0.0.1:19094";
// stack.sh bounds readiness by KAFKA_READY_TIMEOUT_S (60 s); a first start also makes the
// certificates and formats the storage (about 10 s here), and may wait for the stack's lock.
const secureBrokerStartMsMax = 180_000;
const applyMsMax = 60_000;
// kafkajs does not retry a refused login: the command must end at once, not hang.
const refusedCommandMsMax = 30_000;
const refusedClientMsMax = 15_000;
const events = 3_000;

type Outcome = { code: number; stdout: string; stderr: string; timedOut: boolean };

/** Runs a command with a time bound; a command still running at the bound is killed and reported. */
function runBounded(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const e = error as (Error & { code?: number | string; killed?: boolean }) | null;
        resolve({
          code: e === null ? 0 : typeof e.code === "number" ? e.code : -1,
          stdout,
          stderr,
          timedOut: e?.killed === true,
        });
      },
    );
  });
}

/** The environment bin/tally gets: PATH and HOME, and the given settings only. */
const tallyEnv = (settings: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  ...settings,
});

async function secureBrokerRunning(): Promise<boolean> {
  const status = await runBounded("bash", [stackScript, "status"], process.env, 30_000);
  return /^kafka-secure\s+running\b.*\bhealthy$/m.test(status.stdout);
}

/** Starts the secured broker unless it runs (stack.sh keeps a running one); fails plainly. */
async function ensureSecureBroker(): Promise<void> {
  const started = await runBounded(
    "bash",
    [stackScript, "start", "kafka-secure"],
    process.env,
    secureBrokerStartMsMax,
  );
  if (started.code === 0) return;
  const how = started.timedOut
    ? `did not finish within ${secureBrokerStartMsMax} ms`
    : `exited ${started.code}`;
  throw new Error(
    `the secured Kafka broker could not be started: 'bash infra/stack.sh start kafka-secure' ${how}. ` +
      "It needs a JDK >= 17 with keytool (apt-get install openjdk-17-jdk-headless) and openssl. " +
      `Its output:\n${started.stdout}${started.stderr}`,
  );
}

/** TALLY_* settings for the secured broker, as stack.sh wrote them (the password by file). */
function secureClientSettings(): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const line of readFileSync(clientEnvFile, "utf8").split("\n")) {
    const [name, ...rest] = line.split("=");
    if (name?.startsWith("TALLY_")) settings[name] = rest.join("=");
  }
  return settings;
}

type RegistryGate = { url: string; passed: () => number; refused: () => number; close: () => Promise<void> };

/**
 * The local registry has no authentication; this gate in front of it demands HTTP basic auth, as a
 * secured registry would, so that every registry call Tally makes is shown to carry credentials.
 */
async function startRegistryGate(username: string, password: string): Promise<RegistryGate> {
  const upstream = new URL(loadConfig(stackEnv()).TALLY_SCHEMA_REGISTRY_URL);
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  let passed = 0;
  let refused = 0;
  const server = createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      refused++;
      res.writeHead(401, {
        "content-type": "application/json",
        "www-authenticate": 'Basic realm="registry"',
      });
      res.end(JSON.stringify({ error_code: 40101, message: "Unauthorized" }));
      return;
    }
    passed++;
    const { authorization: _, ...headers } = req.headers;
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", (error) => {
      res.writeHead(502);
      res.end(String(error));
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${upstream.pathname}`,
    passed: () => passed,
    refused: () => refused,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const secretsDir = mkdtempSync(join(tmpdir(), "tally-secure-int-"));
const registryUser = "tally-registry";
const registryPassword = `registry-${randomBytes(6).toString("hex")}`;
let stack: TestStack | null = null;
let gate: RegistryGate | null = null;
let startedHere = false;

beforeAll(async () => {
  startedHere = !(await secureBrokerRunning());
  await ensureSecureBroker();
  gate = await startRegistryGate(registryUser, registryPassword);
  // Both passwords reach Tally as an orchestrator would mount them: files, not values.
  const registryPasswordFile = join(secretsDir, "registry.password");
  writeFileSync(registryPasswordFile, `${registryPassword}\n`, { mode: 0o600 });
  stack = testStack("secure", {
    ...secureClientSettings(),
    TALLY_SCHEMA_REGISTRY_URL: gate.url,
    TALLY_SCHEMA_REGISTRY_USERNAME: registryUser,
    TALLY_SCHEMA_REGISTRY_PASSWORD_FILE: registryPasswordFile,
  });
});

afterAll(async () => {
  if (stack) await dropTestStack(stack);
  await gate?.close();
  rmSync(secretsDir, { recursive: true, force: true });
  // Left as found: a broker this file started is stopped again (400 MB on a 2-core machine).
  if (startedHere) await runBounded("bash", [stackScript, "stop", "kafka-secure"], process.env, 60_000);
});

function current(): TestStack {
  if (!stack) throw new Error("the secure test stack was not set up");
  return stack;
}

const kafkaPassword = () => current().config.TALLY_KAFKA_SASL_PASSWORD;

describe("Kafka over TLS with SASL/SCRAM-SHA-512", () => {
  it("given the secured broker, when a known load is produced, applied and projected, then the state is exact", async () => {
    const s = current();
    expect(s.config.TALLY_KAFKA_BROKERS).toEqual([secureBrokerAddress]);
    expect(s.config.TALLY_KAFKA_SASL_MECHANISM).toBe("scram-sha-512");
    const load = await produceLoad(s, events, 29);
    const apply = await runBounded(
      tallyBin,
      ["apply", "--until-caught-up"],
      tallyEnv({ ...s.env, TALLY_LOG_LEVEL: "info" }),
      applyMsMax,
    );
    expect(apply.timedOut, apply.stderr).toBe(false);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stderr).not.toContain(kafkaPassword());
    await runProjector(s.config, { untilCaughtUp: true });
    await expectExactState(s, load);
    // Registration (produce) and schema look-ups (apply) all went through the basic-auth gate.
    expect(gate?.passed()).toBeGreaterThan(0);
    expect(gate?.refused()).toBe(0);

    // The records went to the secured broker, not to the plain one that stack.env names.
    const plain = createKafka(loadConfig(stackEnv()), "test-plain").admin();
    await plain.connect();
    try {
      expect(await plain.listTopics()).not.toContain(s.config.TALLY_TOPIC);
    } finally {
      await plain.disconnect();
    }
  });

  it("given a wrong password, when apply runs, then it exits non-zero at once saying authentication failed", async () => {
    const { TALLY_KAFKA_SASL_PASSWORD_FILE: _file, ...settings } = current().env;
    const wrongPassword = `not-the-password-${randomBytes(4).toString("hex")}`;
    const started = Date.now();
    const apply = await runBounded(
      tallyBin,
      ["apply", "--until-caught-up"],
      tallyEnv({ ...settings, TALLY_KAFKA_SASL_PASSWORD: wrongPassword }),
      refusedCommandMsMax,
    );
    expect(apply.timedOut, `still running after ${refusedCommandMsMax} ms`).toBe(false);
    expect(apply.code).not.toBe(0);
    expect(apply.stderr).toMatch(/SCRAM SHA512 authentication failed/i);
    expect(apply.stderr).toMatch(/invalid credentials/i);
    expect(apply.stderr).not.toContain(wrongPassword);
    expect(Date.now() - started).toBeLessThan(refusedCommandMsMax);
  });

  it("given a plaintext client, when it connects to the TLS port, then the connection is refused", async () => {
    const admin = new Kafka({
      clientId: "tally-test-plaintext",
      brokers: [secureBrokerAddress],
      ssl: false,
      connectionTimeout: 3_000,
      retry: { retries: 0 },
      logLevel: logLevel.NOTHING,
    }).admin();
    try {
      await expect(within(admin.connect(), refusedClientMsMax, "plaintext connect")).rejects.toThrow(
        /closed connection/i,
      );
    } finally {
      await admin.disconnect().catch(() => {});
    }
  });

  it("given a TLS client that does not trust the stack's CA, when it connects, then the certificate is refused", async () => {
    const admin = new Kafka({
      clientId: "tally-test-untrusted",
      brokers: [secureBrokerAddress],
      ssl: true, // the system's CAs only
      connectionTimeout: 3_000,
      retry: { retries: 0 },
      logLevel: logLevel.NOTHING,
    }).admin();
    try {
      await expect(within(admin.connect(), refusedClientMsMax, "untrusted TLS connect")).rejects.toThrow(
        /certificate/i,
      );
    } finally {
      await admin.disconnect().catch(() => {});
    }
  });

  it("given a wrong registry password, when topics registers the schema, then it fails with 401", async () => {
    const { TALLY_SCHEMA_REGISTRY_PASSWORD_FILE: _file, ...settings } = current().env;
    const refusedBefore = gate?.refused() ?? 0;
    const topics = await runBounded(
      tallyBin,
      ["topics"],
      tallyEnv({ ...settings, TALLY_SCHEMA_REGISTRY_PASSWORD: "not-the-registry-password" }),
      refusedCommandMsMax,
    );
    expect(topics.timedOut).toBe(false);
    expect(topics.code).not.toBe(0);
    expect(topics.stderr).toMatch(/401/);
    expect(topics.stderr).not.toContain("not-the-registry-password");
    expect(gate?.refused()).toBeGreaterThan(refusedBefore);
  });

  it("given the SASL and registry passwords, when `tally env` prints the settings, then both are masked", async () => {
    const env = await runBounded(tallyBin, ["env"], tallyEnv(current().env), refusedCommandMsMax);
    expect(env.code, env.stderr).toBe(0);
    expect(env.stdout).toContain("export TALLY_KAFKA_SASL_USERNAME='tally'");
    expect(env.stdout).toContain("export TALLY_KAFKA_SASL_PASSWORD='********'");
    expect(env.stdout).toContain("export TALLY_SCHEMA_REGISTRY_PASSWORD='********'");
    expect(env.stdout).not.toContain(kafkaPassword());
    expect(env.stdout).not.toContain(registryPassword);
  });
});
