// Which stack the integration tests run against, chosen by TALLY_TEST_STACK:
//   local       `make up`'s processes (infra/stack.sh), the default;
//   containers  PostgreSQL, Kafka and Apicurio in containers, started by the containers project's
//               global setup (test/containers/global-setup.ts) through testcontainers.
// The suites see one interface: the endpoints (stackEnv) and stop/start/restart of a component.
import { readFileSync } from "node:fs";
import pg from "pg";
import { getContainerRuntimeClient } from "testcontainers";
import { loadConfig } from "../../services/common/config.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { sleep } from "../../services/common/retry.ts";

export type StackProvider = "local" | "containers";
export type Component = "kafka" | "registry" | "postgres";

export function stackProvider(): StackProvider {
  const value = process.env.TALLY_TEST_STACK ?? "local";
  if (value !== "local" && value !== "containers")
    throw new Error(`TALLY_TEST_STACK=${JSON.stringify(value)} is invalid: local or containers`);
  return value;
}

/** What the global setup leaves for the test files (they run in other processes). */
export type ContainerStackState = {
  env: Record<string, string>;
  containers: Record<Component, string>;
};

export const containerStackStateFile = new URL("../../.local/containers/test-stack.json", import.meta.url)
  .pathname;

export function containerStackState(): ContainerStackState {
  try {
    return JSON.parse(readFileSync(containerStackStateFile, "utf8")) as ContainerStackState;
  } catch (error) {
    throw new Error(
      `TALLY_TEST_STACK=containers but ${containerStackStateFile} cannot be read (${(error as Error).message}); ` +
        "the containers project's global setup writes it: run `make test-containers`",
    );
  }
}

// A stopped container answers again within seconds (PostgreSQL 2-4 s, Kafka 4-8 s, Apicurio 5-15 s).
const readyTimeoutMs = 120_000;
const stopTimeoutMs = 20_000;

/** Stops, starts or restarts a component's container; a start returns once it answers again. */
export async function containerCtl(verb: "stop" | "start" | "restart", component: Component): Promise<void> {
  const state = containerStackState();
  const client = await getContainerRuntimeClient();
  const container = client.container.getById(state.containers[component]);
  if (verb !== "start") await client.container.stop(container, { timeout: stopTimeoutMs });
  if (verb === "stop") return;
  await client.container.start(container);
  await waitAnswers(component, state.env);
  // The registry keeps its schemas in PostgreSQL, which comes back on a new address: as with the
  // local stack, PostgreSQL counts as back once what stands on it serves again.
  if (component === "postgres") await waitAnswers("registry", state.env);
}

async function waitAnswers(component: Component, env: Record<string, string>): Promise<void> {
  const deadlineMs = Date.now() + readyTimeoutMs;
  let last: unknown = null;
  while (Date.now() < deadlineMs) {
    try {
      await answers[component](env);
      return;
    } catch (error) {
      last = error;
      await sleep(250);
    }
  }
  throw new Error(`${component} container did not answer within ${readyTimeoutMs} ms: ${String(last)}`);
}

const answers: Record<Component, (env: Record<string, string>) => Promise<void>> = {
  postgres: async (env) => {
    const client = new pg.Client({
      connectionString: `postgres://postgres@127.0.0.1:${env.TALLY_LOCAL_PG_PORT}/postgres`,
      connectionTimeoutMillis: 2_000,
    });
    await client.connect();
    try {
      await client.query("SELECT 1");
    } finally {
      await client.end();
    }
  },
  kafka: async (env) => {
    const admin = createKafka(loadConfig({ ...env, TALLY_LOG_LEVEL: "silent" }), "test-ready").admin();
    await admin.connect();
    try {
      await admin.describeCluster();
    } finally {
      await admin.disconnect();
    }
  },
  registry: async (env) => {
    const response = await fetch(`${env.TALLY_SCHEMA_REGISTRY_URL}/subjects`, {
      signal: AbortSignal.timeout(2_000),
    });
    if (!response.ok) throw new Error(`registry answered ${response.status}`);
  },
};
