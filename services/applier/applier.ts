// `tally apply`: wires the member to Kafka, the registry and the shards, watches lag, serves metrics
// and health, and drains on SIGTERM: the chunk in flight commits or rolls back whole, the member
// leaves the group (so its partitions move at once, not after the session timeout), and the process
// exits within TALLY_SHUTDOWN_MS_MAX. With --until-caught-up it stops the same way at zero lag.
import type { Admin, Consumer, Kafka } from "kafkajs";
import type { Config } from "../common/config.ts";
import { createKafka } from "../common/kafka.ts";
import { createLogger, type Logger } from "../common/log.ts";
import { metricsHostOf, retriesTotal, serveMetrics } from "../common/metrics.ts";
import { keyPartitioner } from "../common/partitioner.ts";
import { createPool } from "../common/pg.ts";
import { createRegistry } from "../common/registry.ts";
import { sleep } from "../common/retry.ts";
import { type GroupProgress, groupProgress } from "../storage/progress.ts";
import { ShardContext } from "./apply-chunk.ts";
import { rejectionReasons } from "./decide.ts";
import { EventDecoder } from "./decode.ts";
import { IncarnationError } from "./incarnation.ts";
import { ApplierMember, type MemberTotals } from "./member.ts";
import { consumerLag, initApplierMetrics } from "./metrics.ts";
import { KafkaLog, PgPartitionStore, TopicCheckedStore } from "./store.ts";
import { TokenBudget } from "./token-budget.ts";
import { waitForTopic } from "./topic-wait.ts";

export type ApplierOptions = {
  untilCaughtUp?: boolean;
  signal?: AbortSignal;
  /** called about once a second with the group-wide progress */
  onProgress?: (progress: GroupProgress) => void;
  log?: Logger;
};
/** cpuMs: user + system CPU of the whole process, start-up included. */
export type ApplierSummary = MemberTotals & { elapsedMs: number; maxRssBytes: number; cpuMs: number };

const progressIntervalMs = 1000;
/**
 * How long a fetch waits on a caught-up partition. A drain waits for the fetch in flight, so this
 * bounds the idle part of a drain; 1 s costs one empty fetch per second per broker when idle.
 */
const fetchWaitMsMax = 1000;

export async function runApplier(config: Config, options: ApplierOptions = {}): Promise<ApplierSummary> {
  const log = options.log ?? createLogger(config.TALLY_LOG_LEVEL, "applier");
  const kafka = createKafka(config, "applier");
  const admin = kafka.admin();
  const shards = config.TALLY_PG_SHARDS.map(
    (url) => new ShardContext(createPool(config, url, "tally-applier")),
  );
  const consumer = createConsumer(config, kafka);
  const kafkaLog = new KafkaLog(kafka, config.TALLY_TOPIC);
  const member = createMember(config, kafkaLog, shards, consumer, log);
  initApplierMetrics(rejectionReasons);
  const startedMs = performance.now();
  let stopRequestedMs: number | null = null;
  const server = await serveMetrics(
    config.TALLY_METRICS_PORT,
    {
      live: () => member.fatal === null,
      ready: () => member.assignmentLoaded && !member.stopping,
    },
    metricsHostOf(config),
  );
  const stop = () => {
    stopRequestedMs ??= performance.now();
    member.stop();
  };
  options.signal?.addEventListener("abort", stop, { once: true });
  if (options.signal?.aborted) stop();
  try {
    await admin.connect();
    if (await waitForTopic(admin, config.TALLY_TOPIC, config.TALLY_PARTITIONS, member.stopped, log)) {
      await consumer.connect();
      watchConsumer(config, consumer, member, log);
      await consumer.subscribe({ topic: config.TALLY_TOPIC, fromBeginning: true });
      // run() resolves once the member has joined; joining a group that still lists a vanished
      // member takes up to its session timeout, and a stop must not wait for that.
      const running = consumer.run({
        autoCommit: true, // commits only what eachBatch resolved, i.e. what Postgres already committed
        autoCommitInterval: 5_000,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.max(1, Math.min(config.TALLY_PARTITIONS, shards.length)),
        eachBatch: (payload) => member.eachBatch(payload),
      });
      running.catch(() => {}); // a failure after a stop has nothing left to stop
      await Promise.race([running, untilAborted(member.stopped)]);
      await watchProgress(config, admin, kafkaLog, shards, member, options);
    }
  } finally {
    options.signal?.removeEventListener("abort", stop);
    stopRequestedMs ??= performance.now();
    await shutdown(config, log, [
      // Waits for the chunk in flight, then LeaveGroup: the group rebalances at once. While still
      // joining there is nothing in flight, and a JoinGroup the coordinator holds may keep
      // disconnect waiting: past leaveMsMax the process goes without a LeaveGroup (the group
      // drops it after the session timeout), nothing lost.
      () => withinMs(consumer.disconnect(), member.chunksInFlight() === 0 ? leaveMsMax : null, log),
      () => admin.disconnect(),
      () => kafkaLog.close(),
      ...shards.map((s) => () => s.pool.end()),
    ]);
    await server?.close();
    log.info({ drain_ms: Math.round(performance.now() - stopRequestedMs) }, "applier stopped");
  }
  if (member.fatal) throw member.fatal;
  const usage = process.resourceUsage();
  const cpuMs = (usage.userCPUTime + usage.systemCPUTime) / 1000;
  return {
    ...member.totals,
    elapsedMs: performance.now() - startedMs,
    maxRssBytes: usage.maxRSS * 1024,
    cpuMs,
  };
}

const heartbeatIntervalMsMax = 1_000;

function createConsumer(config: Config, kafka: Kafka): Consumer {
  return kafka.consumer({
    groupId: config.TALLY_GROUP,
    maxBytesPerPartition: config.TALLY_FETCH_PARTITION_BYTES_MAX,
    maxBytes: config.TALLY_FETCH_BYTES_MAX,
    maxWaitTimeInMs: fetchWaitMsMax,
    // A member that vanishes (SIGKILL) holds its partitions until this passes; one that drains
    // leaves the group and holds nothing.
    sessionTimeout: config.TALLY_KAFKA_SESSION_TIMEOUT_MS,
    // A member learns of a rebalance only from a heartbeat, and a joining member waits for every
    // current one to rejoin: at 1 s, a new member starts working within about a second.
    heartbeatInterval: Math.min(
      heartbeatIntervalMsMax,
      Math.floor(config.TALLY_KAFKA_SESSION_TIMEOUT_MS / 10),
    ),
  });
}

function createMember(
  config: Config,
  kafkaLog: KafkaLog,
  shards: ShardContext[],
  consumer: Consumer,
  log: Logger,
): ApplierMember {
  const pgStore = new PgPartitionStore(
    {
      group: config.TALLY_GROUP,
      topic: config.TALLY_TOPIC,
      tokenBudget: new TokenBudget(config.TALLY_TOKEN_CACHE_MAX),
      window: { pastDays: config.TALLY_WINDOW_PAST_DAYS, futureDays: config.TALLY_WINDOW_FUTURE_DAYS },
      partitionOfKey: keyPartitioner(config.TALLY_PARTITIONS),
    },
    shards,
    new EventDecoder(createRegistry(config)),
  );
  const store = new TopicCheckedStore(pgStore, kafkaLog, config.TALLY_TOPIC);
  return new ApplierMember({
    settings: {
      group: config.TALLY_GROUP,
      topic: config.TALLY_TOPIC,
      chunkEventsMax: config.TALLY_BATCH_EVENTS_MAX,
      retry: {
        attemptsMax: config.TALLY_RETRY_ATTEMPTS_MAX,
        backoffMsMax: config.TALLY_RETRY_BACKOFF_MS_MAX,
      },
    },
    store,
    log: kafkaLog,
    consumer,
    logger: log,
  });
}

/** Assignments load stored offsets (readiness); consumer crashes count as Kafka retries or end the run. */
function watchConsumer(config: Config, consumer: Consumer, member: ApplierMember, log: Logger): void {
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const partitions = payload.memberAssignment[config.TALLY_TOPIC] ?? [];
    // onAssigned handles its own failures (an incarnation problem stops the member).
    void member.onAssigned(partitions);
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart) {
      // kafkajs disconnects, waits and rejoins; what committed stays committed.
      retriesTotal.inc({ cause: "kafka" });
      log.warn(
        { err: String(payload.error.message) },
        "consumer crashed on a retriable Kafka error; restarting",
      );
      return;
    }
    // The consumer will not run again: stop, so the process exits and the supervisor restarts it.
    member.fail(payload.error);
    log.error({ err: payload.error }, "consumer stopped on a Kafka error it will not retry");
  });
}

/** Every this many progress ticks, the topic's id is compared with the one the views were loaded for. */
const topicIdCheckTicks = 5;

async function watchProgress(
  config: Config,
  admin: Admin,
  kafkaLog: KafkaLog,
  shards: ShardContext[],
  member: ApplierMember,
  options: ApplierOptions,
): Promise<void> {
  for (let tick = 1; !member.stopping; tick++) {
    await sleep(progressIntervalMs, member.stopped);
    if (member.stopping) break;
    if (tick % topicIdCheckTicks === 0) await checkTopicId(kafkaLog, member);
    const progress = await groupProgress(
      config,
      admin,
      shards.map((s) => s.pool),
    ).catch(() => null); // a broker or shard away for a moment: the next tick tries again
    if (progress === null) continue;
    // Only appliers export the group's lag (a probe elsewhere reads the same numbers silently).
    for (const [partition, lag] of progress.lagByPartition)
      consumerLag.set({ partition: String(partition) }, Number(lag));
    options.onProgress?.(progress);
    if (options.untilCaughtUp && progress.lagRecords === 0n) member.stop();
  }
}

/**
 * A topic deleted or re-created under an idle applier stops it within a few seconds (a busy one
 * stops at its next chunk: TopicCheckedStore asks before every chunk).
 */
async function checkTopicId(kafkaLog: KafkaLog, member: ApplierMember): Promise<void> {
  try {
    member.checkTopicId(await kafkaLog.topicId());
  } catch (error) {
    if (error instanceof IncarnationError) member.fail(error); // the topic was deleted
    // else Kafka is away for a moment: the next check asks again
  }
}

const leaveMsMax = 3_000;

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** The step, or its end after `boundMs` (null: no bound of its own). */
async function withinMs(step: Promise<unknown>, boundMs: number | null, log: Logger): Promise<void> {
  if (boundMs === null) {
    await step;
    return;
  }
  const timer = new AbortController();
  const outcome = await Promise.race([
    step.then(() => "done" as const),
    sleep(boundMs, timer.signal).then(() => "timeout" as const),
  ]);
  timer.abort();
  if (outcome === "timeout")
    log.warn({ leave_ms_max: boundMs }, "left without LeaveGroup (still joining); nothing was in flight");
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
