// `tally dlq-relay`: every rejection also goes to the dead-letter topic (TALLY_DLQ_TOPIC), fed from
// rejected_transfers as an outbox (outbox.ts). A poll takes, per shard, at most one batch of the
// rejections past the checkpoints, in (partition, offset) order; produces them (acks all) and only
// after Kafka's acknowledgement advances the checkpoints. A crash between the two repeats that
// batch once the relay runs again; nothing is ever skipped. So a dead-letter record is published at
// least once, and repeats are at most one batch per crash.
import { type Config, ConfigError } from "../common/config.ts";
import { createLogger, type Logger } from "../common/log.ts";
import { metricsHostOf, retriesTotal, retryCauseOf, serveMetrics } from "../common/metrics.ts";
import { type Client, createPool, type Pool } from "../common/pg.ts";
import { RetriesExhaustedError, sleep, withRetry } from "../common/retry.ts";
import { partitionsOfShard } from "../common/shards.ts";
import { deadLetterOf, type Rejection, rejectionReasons } from "./headers.ts";
import { dlqBatchSeconds, dlqCaughtUp, dlqPublishedTotal, initDlqMetrics } from "./metrics.ts";
import {
  advanceDlqCheckpoints,
  loadDlqCheckpoints,
  type OutboxKey,
  readRejections,
  relayLockKey,
} from "./outbox.ts";
import { DeadLetterProducer } from "./producer.ts";

export const batchMaxDefault = 500;

export type RelayOptions = {
  /** exit once a pass over every shard found less than a batch (everything visible is published) */
  untilCaughtUp?: boolean;
  /** rejections per shard per poll (default 500) */
  batchMax?: number;
  /** abort = stop after the current batch */
  signal?: AbortSignal;
  logger?: Logger;
};

export type RelaySummary = {
  published: number;
  batches: number;
  reason: "stopped" | "caught-up";
};

type Shard = { shard: number; pool: Pool; partitions: number[]; lock: Client | null; rotation: number };

export async function runDlqRelay(config: Config, options: RelayOptions = {}): Promise<RelaySummary> {
  if (config.TALLY_DLQ_TOPIC === "")
    throw new ConfigError("TALLY_DLQ_TOPIC is not set: the dead-letter topic is off, nothing to relay");
  const log = options.logger ?? createLogger(config.TALLY_LOG_LEVEL, "tally-dlq-relay");
  const signal = options.signal ?? new AbortController().signal;
  const batchMax = options.batchMax ?? batchMaxDefault;
  const key: OutboxKey = { topic: config.TALLY_TOPIC, dlqTopic: config.TALLY_DLQ_TOPIC };
  const summary: RelaySummary = { published: 0, batches: 0, reason: "stopped" };
  let fatal: unknown = null;
  let ready = false;
  initDlqMetrics(rejectionReasons);
  // Ready once it holds every shard's lock: a second relay stands by, alive but not ready.
  const server = await serveMetrics(
    config.TALLY_METRICS_PORT,
    { live: () => fatal === null, ready: () => ready && !signal.aborted && fatal === null },
    metricsHostOf(config),
  );
  const shardCount = config.TALLY_PG_SHARDS.length;
  const shards: Shard[] = config.TALLY_PG_SHARDS.map((url, shard) => ({
    shard,
    pool: createPool(config, url, "tally-dlq-relay", 2),
    partitions: partitionsOfShard(shard, shardCount, config.TALLY_PARTITIONS),
    lock: null,
    rotation: 0,
  })).filter((s) => s.partitions.length > 0);
  const producer = new DeadLetterProducer(config);
  const policy = {
    attemptsMax: config.TALLY_RETRY_ATTEMPTS_MAX,
    backoffMsMax: config.TALLY_RETRY_BACKOFF_MS_MAX,
  };
  const onRetry = (what: string) => (error: unknown, attempt: number, delayMs: number) => {
    const cause = retryCauseOf(error);
    retriesTotal.inc({ cause });
    log.warn({ what, cause, attempt, delayMs, err: String(error) }, "dlq: retrying");
  };
  try {
    const topic = await withRetry(
      "dead-letter topic",
      policy,
      () => producer.ensureTopic(),
      onRetry("topic"),
      signal,
    );
    log.info({ dlq_topic: key.dlqTopic, ...topic, batch_max: batchMax }, "dlq: relay starting");
    for (const s of shards) await lockShard(s, key, config, log, signal, onRetry(`lock shard ${s.shard}`));
    if (signal.aborted) return summary;
    ready = true;
    while (!signal.aborted) {
      let full = false;
      for (const s of shards) {
        if (signal.aborted) break;
        const count = await withRetry(
          `dlq shard ${s.shard}`,
          policy,
          () => relayBatch(s, key, producer, batchMax, config.TALLY_GROUP, log),
          onRetry(`shard ${s.shard}`),
          signal,
        );
        if (count > 0) {
          summary.published += count;
          summary.batches++;
        }
        if (count >= batchMax) full = true;
      }
      dlqCaughtUp.set(full ? 0 : 1);
      if (full) continue;
      if (options.untilCaughtUp) {
        summary.reason = "caught-up";
        break;
      }
      await sleep(config.TALLY_DLQ_POLL_MS, signal);
    }
  } catch (error) {
    // Retries cut short by a stop request: the batch is abandoned whole, its checkpoint unmoved.
    if (!(error instanceof RetriesExhaustedError && signal.aborted)) {
      fatal = error;
      throw error;
    }
    log.warn({ err: String(error) }, "dlq: stopped while retrying");
  } finally {
    ready = false;
    await producer.close().catch(() => {});
    for (const s of shards) s.lock?.release();
    await Promise.all(shards.map((s) => s.pool.end()));
    await server?.close();
  }
  log.info(summary, "dlq: relay stopped");
  return summary;
}

/**
 * One relay per shard, topic and dead-letter topic: a session advisory lock on a connection kept for
 * the run. Another relay holding it makes this one wait (a rolling update's overlap). If the lock's
 * connection is lost, two relays may run at once for a while: that repeats records, never loses one
 * (checkpoints only move forward).
 */
async function lockShard(
  s: Shard,
  key: OutboxKey,
  config: Config,
  log: Logger,
  signal: AbortSignal,
  onRetry: (error: unknown, attempt: number, delayMs: number) => void,
): Promise<void> {
  const policy = {
    attemptsMax: config.TALLY_RETRY_ATTEMPTS_MAX,
    backoffMsMax: config.TALLY_RETRY_BACKOFF_MS_MAX,
  };
  let said = false;
  while (!signal.aborted) {
    const locked = await withRetry(
      `lock shard ${s.shard}`,
      policy,
      async () => {
        const client = await s.pool.connect();
        try {
          const result = await client.query<{ locked: boolean }>(
            "SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS locked",
            [relayLockKey, `${key.topic}/${key.dlqTopic}`],
          );
          if (result.rows[0]?.locked) {
            s.lock = client;
            return true;
          }
          client.release();
          return false;
        } catch (error) {
          client.release(true);
          throw error;
        }
      },
      onRetry,
      signal,
    );
    if (locked) return;
    if (!said) log.warn({ shard: s.shard }, "dlq: another relay holds this shard; standing by");
    said = true;
    await sleep(config.TALLY_DLQ_POLL_MS, signal);
  }
}

/** One batch of one shard: read, produce (acks all), then advance the checkpoints. Returns its size. */
async function relayBatch(
  s: Shard,
  key: OutboxKey,
  producer: DeadLetterProducer,
  batchMax: number,
  group: string,
  log: Logger,
): Promise<number> {
  const startMs = performance.now();
  const checkpoints = await loadDlqCheckpoints(s.pool, key, s.partitions);
  // Each poll starts at the next partition, so a partition with a long backlog cannot hold the others.
  const start = s.rotation++ % s.partitions.length;
  const order = [...s.partitions.slice(start), ...s.partitions.slice(0, start)];
  const rejections: Rejection[] = [];
  for (const partition of order) {
    const budget = batchMax - rejections.length;
    if (budget <= 0) break;
    rejections.push(
      ...(await readRejections(s.pool, key.topic, partition, checkpoints.get(partition)!, budget)),
    );
  }
  if (rejections.length === 0) return 0;
  await producer.send(
    rejections.map((r) => ({ letter: deadLetterOf(r, group), sourcePartition: r.partition })),
  );
  // Acknowledged, not yet checkpointed: a crash from here on repeats this batch (the kill test's mark).
  log.debug({ shard: s.shard, records: rejections.length }, "dlq: batch acknowledged");
  const published = new Map<number, { next: bigint; count: number }>();
  for (const r of rejections) {
    const seen = published.get(r.partition);
    published.set(r.partition, { next: r.offset + 1n, count: (seen?.count ?? 0) + 1 });
  }
  await advanceDlqCheckpoints(s.pool, key, published);
  for (const r of rejections) dlqPublishedTotal.inc({ reason: r.reason });
  const ms = performance.now() - startMs;
  dlqBatchSeconds.observe(ms / 1000);
  log.info(
    {
      shard: s.shard,
      records: rejections.length,
      next_offsets: Object.fromEntries([...published].map(([p, x]) => [p, x.next.toString()])),
      batch_ms: Math.round(ms * 10) / 10,
    },
    "dlq: batch published",
  );
  return rejections.length;
}
