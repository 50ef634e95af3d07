// startTally: a throwaway Tally in containers for a test, with everything behind it. Kafka, the
// registry and PostgreSQL (shard and views databases) start first; `tally migrate` and `tally
// topics` run from Tally's image, then the appliers and the projector; the caller gets the
// endpoints, a connected producer and the reads a test asserts on. stop() removes everything, and
// a start that fails removes what it had started before it throws.

import { randomUUID } from "node:crypto";
import { Network, type StartedNetwork, type StartedTestContainer } from "testcontainers";
import { assert } from "../common/assert.ts";
import { type Config, loadConfig } from "../common/config.ts";
import { TransferProducer } from "../producer/producer.ts";
import { readBalances } from "../projector/index.ts";
import { type VerifyReport, verify as verifyState } from "../verify/index.ts";
import { type ComponentPorts, type Components, pickPorts, startComponents } from "./components.ts";
import {
  containerEngine,
  instanceLabels,
  removeInstance,
  requireLocalImages,
  TallyStartError,
} from "./engine.ts";
import { type Images, resolveImages } from "./images.ts";
import { runTallyOnce, startTallyProcess, type TallyProcess } from "./processes.ts";
import { readCatchUp } from "./progress.ts";
import { ensureTallyImage } from "./tally-image.ts";

export type StartTallyOptions = {
  /** Shard databases (1 to 16); a token's shard is its partition mod this. Default 2. */
  shards?: number;
  /** Partitions of the topic (1 to 64). Default 6. */
  partitions?: number;
  /** Applier containers in the consumer group (0 to partitions). Default 1. */
  appliers?: number;
  /** Whether a projector container keeps the balance views. Default true. */
  projector?: boolean;
  /** Topic name. Default "transfers". */
  topic?: string;
  /**
   * Images to run instead of the defaults (see images.ts and TALLY_TEST_IMAGE_*). A missing Tally
   * image with a localhost/ name is built from the package's recipe (tally-image.ts).
   */
  images?: Partial<Images>;
  /** More TALLY_* settings for Tally's processes, e.g. { TALLY_BATCH_EVENTS_MAX: "500" }. */
  settings?: Record<string, string>;
  /** Host ports to bind; free ones by default. */
  ports?: Partial<ComponentPorts>;
  /** Called after each step of the start (it takes about a minute), e.g. `(line) => console.error(line)`. */
  onProgress?: (line: string) => void;
};

export type TallyEndpoints = {
  kafkaBrokers: string;
  /** The Confluent-compatible base, as TALLY_SCHEMA_REGISTRY_URL wants it. */
  schemaRegistryUrl: string;
  pgShards: string[];
  pgViews: string;
};

export type StartedTally = {
  endpoints: TallyEndpoints;
  /** TALLY_* settings that point a process on the host (bin/tally, your service) at this Tally. */
  env: Record<string, string>;
  config: Config;
  /** Connected; send() checks each event and returns where it landed. Closed by stop(). */
  producer: TransferProducer;
  appliers: TallyProcess[];
  projector: TallyProcess | null;
  /** Balances of one wallet from the views, by asset, in minor units. */
  balance: (wallet: string) => Promise<Record<string, bigint>>;
  /** Until every record produced so far is applied and projected, or throws after timeoutMs. */
  waitUntilCaughtUp: (options?: { timeoutMs?: number }) => Promise<void>;
  /** Every invariant of docs/design.md, checked over the ledger and the views. */
  verify: () => Promise<VerifyReport>;
  stop: () => Promise<void>;
};

const caughtUpTimeoutMsDefault = 60_000;
const caughtUpPollMs = 200;
const limits = { shards: 16, partitions: 64 } as const;

function checkOptions(
  options: StartTallyOptions,
): Required<Pick<StartTallyOptions, "shards" | "partitions" | "appliers">> {
  const shards = options.shards ?? 2;
  const partitions = options.partitions ?? 6;
  const appliers = options.appliers ?? 1;
  const whole = (name: string, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max)
      throw new TallyStartError(
        `startTally: ${name} must be a whole number from ${min} to ${max}, got ${value}`,
      );
  };
  whole("shards", shards, 1, limits.shards);
  whole("partitions", partitions, 1, limits.partitions);
  // A member beyond the partition count gets nothing to do and never reports ready.
  whole("appliers", appliers, 0, partitions);
  return { shards, partitions, appliers };
}

/** The TALLY_* settings of this Tally, with endpoints as seen from the host or from the network. */
function settingsOf(
  urls: Components["host"],
  options: StartTallyOptions,
  shape: { shards: number; partitions: number },
): Record<string, string> {
  return {
    TALLY_KAFKA_BROKERS: urls.kafkaBrokers,
    TALLY_SCHEMA_REGISTRY_URL: urls.registryUrl,
    TALLY_TOPIC: options.topic ?? "transfers",
    TALLY_PARTITIONS: String(shape.partitions),
    TALLY_PG_SHARDS: Array.from({ length: shape.shards }, (_, k) =>
      urls.postgresUrl(`tally_shard_${k}`),
    ).join(","),
    TALLY_PG_VIEWS: urls.postgresUrl("tally_views"),
    ...options.settings,
  };
}

/** Bad settings fail here, before any container starts, with the config module's message. */
function checkSettings(options: StartTallyOptions, shape: { shards: number; partitions: number }): void {
  const placeholder = {
    kafkaBrokers: "127.0.0.1:9092",
    registryUrl: "http://127.0.0.1:8080",
    postgresUrl: (database: string) => `postgres://postgres@127.0.0.1:5432/${database}`,
  };
  try {
    loadConfig(settingsOf(placeholder, options, shape));
  } catch (error) {
    throw new TallyStartError(`startTally: ${(error as Error).message}`, { cause: error });
  }
}

export async function startTally(options: StartTallyOptions = {}): Promise<StartedTally> {
  const shape = checkOptions(options);
  checkSettings(options, shape);
  const client = await containerEngine();
  const images = await resolveImages(options.images);
  const startedMs = Date.now();
  const progress = (step: string) =>
    options.onProgress?.(`tally/testing: ${step} (${((Date.now() - startedMs) / 1000).toFixed(1)} s)`);
  // Tally's image is built from the package's own recipe when missing; the others must exist.
  await ensureTallyImage(client, images.tally, { onProgress: progress });
  await requireLocalImages(client, Object.values(images));
  const instanceId = randomUUID();
  const labels = instanceLabels(instanceId);
  const containers: StartedTestContainer[] = [];
  let network: StartedNetwork | null = null;
  let producer: TransferProducer | null = null;
  const teardown = async () => {
    await producer?.disconnect().catch(() => {});
    // Tally's processes first (they drain on SIGTERM), then what they stand on.
    for (const container of containers.reverse()) await container.stop({ timeout: 10_000 }).catch(() => {});
    await removeInstance(client, instanceId);
    await network?.stop().catch(() => {});
  };
  try {
    network = await new Network().start();
    const components = await startComponents({
      network,
      images,
      labels,
      ports: await pickPorts(options.ports),
      host: client.info.containerRuntime.host,
      started: (c) => containers.push(c),
    });
    progress(
      `PostgreSQL, Kafka and the registry up (${images.postgres}, ${images.kafka}, ${images.registry})`,
    );
    // The test's own process logs only problems (verify, the producer); the containers log info.
    const hostEnv = { TALLY_LOG_LEVEL: "warn", ...settingsOf(components.host, options, shape) };
    const innerEnv = settingsOf(components.internal, options, shape);
    const config = loadConfig(hostEnv);
    const run = { image: images.tally, network, labels, env: innerEnv };
    // One container at a time: under podman 4.3 a name looked up while another container joins
    // the network can fail for a moment (EAI_AGAIN seen from `tally topics`).
    await runTallyOnce(run, ["migrate"]);
    await runTallyOnce(run, ["topics"]);
    progress(`migrate and topics done (${images.tally})`);
    const track = (process: TallyProcess) => {
      containers.push(process.container);
      return process;
    };
    const appliers: TallyProcess[] = [];
    for (let k = 0; k < shape.appliers; k++)
      appliers.push(track(await startTallyProcess(run, "apply", `applier-${k}`)));
    progress(`${shape.appliers} applier(s) ready`);
    const projector =
      options.projector === false ? null : track(await startTallyProcess(run, "project", "projector"));
    producer = new TransferProducer(config);
    await producer.connect();
    progress(projector === null ? "producer connected" : "projector ready, producer connected");
    return started({ components, config, hostEnv, producer, appliers, projector, teardown });
  } catch (error) {
    await teardown();
    throw error;
  }
}

type Parts = {
  components: Components;
  config: Config;
  hostEnv: Record<string, string>;
  producer: TransferProducer;
  appliers: TallyProcess[];
  projector: TallyProcess | null;
  teardown: () => Promise<void>;
};

function started(parts: Parts): StartedTally {
  const { config } = parts;
  let stopped = false;
  return {
    endpoints: {
      kafkaBrokers: parts.components.host.kafkaBrokers,
      schemaRegistryUrl: parts.components.host.registryUrl,
      pgShards: config.TALLY_PG_SHARDS,
      pgViews: config.TALLY_PG_VIEWS,
    },
    env: parts.hostEnv,
    config,
    producer: parts.producer,
    appliers: parts.appliers,
    projector: parts.projector,
    balance: async (wallet) =>
      Object.fromEntries((await readBalances(config, wallet)).map((b) => [b.asset, b.balance])),
    waitUntilCaughtUp: async ({ timeoutMs = caughtUpTimeoutMsDefault } = {}) => {
      assert(parts.appliers.length > 0, "waitUntilCaughtUp needs at least one applier");
      const deadlineMs = Date.now() + timeoutMs;
      for (;;) {
        const state = await readCatchUp(config);
        if (state.applierLag === 0n && (parts.projector === null || state.projectorLag === 0n)) return;
        if (Date.now() > deadlineMs) {
          throw new Error(
            `not caught up within ${timeoutMs} ms: applier lag ${state.applierLag} records, projector lag ${state.projectorLag} records`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, caughtUpPollMs));
      }
    },
    verify: () => verifyState(config),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await parts.teardown();
    },
  };
}
