// `tally apply`: wires the member to Kafka, the registry and the shards, watches lag, and stops on
// SIGTERM (the current chunk commits or rolls back whole) or, with --until-caught-up, at zero lag.
import type { Admin } from "kafkajs";
import type { Config } from "../common/config.ts";
import { createKafka } from "../common/kafka.ts";
import { createLogger, type Logger } from "../common/log.ts";
import { serveMetrics } from "../common/metrics.ts";
import { createPool } from "../common/pg.ts";
import { createRegistry } from "../common/registry.ts";
import { sleep } from "../common/retry.ts";
import { ShardContext } from "./apply-chunk.ts";
import { EventDecoder } from "./decode.ts";
import { ApplierMember, type MemberTotals } from "./member.ts";
import { type GroupProgress, groupProgress } from "./progress.ts";

export type ApplierOptions = {
  untilCaughtUp?: boolean;
  signal?: AbortSignal;
  /** called about once a second with the group-wide progress */
  onProgress?: (progress: GroupProgress) => void;
  log?: Logger;
};
export type ApplierSummary = MemberTotals & { elapsedMs: number };

const progressIntervalMs = 1000;
const tokensPerPartitionMax = 500_000;

export async function runApplier(config: Config, options: ApplierOptions = {}): Promise<ApplierSummary> {
  const log = options.log ?? createLogger(config.TALLY_LOG_LEVEL, "applier");
  const kafka = createKafka(config, "applier");
  const admin = kafka.admin();
  const shards = config.TALLY_PG_SHARDS.map(
    (url) => new ShardContext(createPool(config, url, "tally-applier")),
  );
  const consumer = kafka.consumer({
    groupId: config.TALLY_GROUP,
    maxBytesPerPartition: config.TALLY_FETCH_PARTITION_BYTES_MAX,
    maxBytes: config.TALLY_FETCH_BYTES_MAX,
    // A member that vanishes (SIGKILL) holds its partitions until this passes.
    sessionTimeout: config.TALLY_KAFKA_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.floor(config.TALLY_KAFKA_SESSION_TIMEOUT_MS / 10),
  });
  const lowWatermarks = new Map<number, bigint>();
  const member = new ApplierMember({
    settings: {
      group: config.TALLY_GROUP,
      topic: config.TALLY_TOPIC,
      batchEventsMax: config.TALLY_BATCH_EVENTS_MAX,
      tokensPerPartitionMax,
      window: { pastDays: config.TALLY_WINDOW_PAST_DAYS, futureDays: config.TALLY_WINDOW_FUTURE_DAYS },
      retry: {
        attemptsMax: config.TALLY_RETRY_ATTEMPTS_MAX,
        backoffMsMax: config.TALLY_RETRY_BACKOFF_MS_MAX,
      },
    },
    shards,
    decoder: new EventDecoder(createRegistry(config)),
    consumer,
    lowWatermarkOf: async (partition) => {
      if (!lowWatermarks.has(partition)) {
        for (const o of await admin.fetchTopicOffsets(config.TALLY_TOPIC))
          lowWatermarks.set(o.partition, BigInt(o.low));
      }
      return lowWatermarks.get(partition) ?? 0n;
    },
    log,
  });
  const startedMs = performance.now();
  let ready = false;
  const server = await serveMetrics(config.TALLY_METRICS_PORT, {
    live: () => member.fatal === null,
    ready: () => ready,
  });
  const stop = () => {
    member.stopping = true;
  };
  options.signal?.addEventListener("abort", stop, { once: true });
  try {
    await admin.connect();
    await consumer.connect();
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const partitions = payload.memberAssignment[config.TALLY_TOPIC] ?? [];
      member
        .onAssigned(partitions)
        .catch((error) =>
          log.warn({ err: error }, "seek on assignment failed; the in-batch check covers it"),
        );
    });
    await consumer.subscribe({ topic: config.TALLY_TOPIC, fromBeginning: true });
    await consumer.run({
      autoCommit: true, // commits only what eachBatch resolved, i.e. what Postgres already committed
      autoCommitInterval: 5_000,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.max(1, Math.min(config.TALLY_PARTITIONS, shards.length)),
      eachBatch: (payload) => member.eachBatch(payload),
    });
    ready = true;
    await watchProgress(config, admin, shards, member, options);
  } finally {
    options.signal?.removeEventListener("abort", stop);
    await shutdown(config, log, [
      () => consumer.disconnect(),
      () => admin.disconnect(),
      ...shards.map((s) => () => s.pool.end()),
    ]);
    server?.close();
  }
  if (member.fatal) throw member.fatal;
  return { ...member.totals, elapsedMs: performance.now() - startedMs };
}

async function watchProgress(
  config: Config,
  admin: Admin,
  shards: ShardContext[],
  member: ApplierMember,
  options: ApplierOptions,
): Promise<void> {
  while (!member.stopping) {
    await sleep(progressIntervalMs, options.signal);
    if (member.stopping) break;
    const progress = await groupProgress(
      config,
      admin,
      shards.map((s) => s.pool),
    ).catch(() => null);
    if (progress === null) continue;
    options.onProgress?.(progress);
    if (options.untilCaughtUp && progress.lagRecords === 0n) member.stopping = true;
  }
}

/** Each step within the shutdown bound; past it the process reports and exits non-zero. */
async function shutdown(config: Config, log: Logger, steps: (() => Promise<unknown>)[]): Promise<void> {
  const timer = new AbortController(); // so a finished shutdown does not keep the process waiting
  const deadline = sleep(config.TALLY_SHUTDOWN_MS_MAX, timer.signal).then(() => "timeout" as const);
  const all = (async () => {
    for (const step of steps) await step().catch((error) => log.warn({ err: error }, "shutdown step failed"));
    return "done" as const;
  })();
  const outcome = await Promise.race([all, deadline]);
  timer.abort();
  if (outcome === "timeout") {
    log.error({ shutdown_ms_max: config.TALLY_SHUTDOWN_MS_MAX }, "shutdown exceeded its bound");
    process.exitCode = 1;
  }
}
