// One round on one shard: checkpoints from the views, pending deltas from the shard (chunk rows
// and legacy rows), the sums, and the views transaction. Idempotent as a whole, so a transient
// failure retries it from the top.
import type { Config } from "../common/config.ts";
import type { Pool } from "../common/pg.ts";
import { partitionsOfShard } from "../common/shards.ts";
import { loadCheckpoints } from "../storage/projector-checkpoints.ts";
import { aggregateDeltas, checkpointAfter, isComplete } from "./aggregate.ts";
import { readShard } from "./shard-read.ts";
import { type CheckpointMove, commitProjection } from "./views-write.ts";

/** What one round did, for the log line, the metrics and ProjectorOptions.onProgress. */
export type RoundProgress = {
  round: number;
  rows: number;
  projectMs: number;
  lagRecords: bigint;
  conflicts: number;
  level: boolean;
};

export type ShardRound = {
  shard: number;
  /** delta entries projected, a legacy row counting one (0 when nothing was pending or another projector won the race) */
  rows: number;
  /** every pending row was taken: the shard's checkpoints equal the applier's offsets */
  level: boolean;
  /** another projector moved a checkpoint first; nothing was written, the next round reloads */
  conflict: boolean;
  /** records the applier has and the views do not yet, summed over the shard's partitions */
  lagRecords: bigint;
  /** the same per partition, once the round is over (0 for a partition the applier has not reached) */
  lagByPartition: Map<number, bigint>;
  /** the shard's checkpoints once the round is over */
  checkpoints: Map<number, bigint>;
  readMs: number;
  writeMs: number;
};

export type ShardContext = {
  config: Config;
  shard: number;
  partitions: number[];
  shardPool: Pool;
  viewsPool: Pool;
};

export async function projectShardOnce(context: ShardContext): Promise<ShardRound> {
  const { config, shard, partitions } = context;
  const topic = config.TALLY_TOPIC;
  const readStartMs = performance.now();
  const checkpoints = await loadCheckpoints(context.viewsPool, topic, partitions);
  const reads = await readShard(context.shardPool, {
    group: config.TALLY_GROUP,
    topic,
    partitions,
    checkpoints,
    deltasMax: config.TALLY_PROJECT_DELTAS_MAX,
  });
  const readMs = performance.now() - readStartMs;

  const moves: CheckpointMove[] = [];
  const after = new Map<number, bigint>();
  const lagByPartition = new Map<number, bigint>();
  let lagRecords = 0n;
  for (const read of reads) {
    const to = checkpointAfter(read);
    after.set(read.partition, to);
    if (to !== read.checkpoint) moves.push({ partition: read.partition, from: read.checkpoint, to });
    const lag = read.appliedUpTo === null ? 0n : read.appliedUpTo - to;
    lagByPartition.set(read.partition, lag);
    lagRecords += lag;
  }
  const level = reads.every(isComplete);
  const result = { shard, level, lagRecords, lagByPartition, readMs, writeMs: 0 };
  if (moves.length === 0) return { ...result, rows: 0, conflict: false, checkpoints };

  const writeStartMs = performance.now();
  const takes = reads.flatMap((r) => (r.take.kind === "oversized" ? [] : [r.take]));
  const projection = aggregateDeltas(
    takes.flatMap((take) => take.rows),
    takes.flatMap((take) => take.chunks),
  );
  const outcome = await commitProjection(context.viewsPool, topic, moves, projection);
  const writeMs = performance.now() - writeStartMs;
  if (outcome === "conflict") {
    return { ...result, rows: 0, level: false, conflict: true, checkpoints, writeMs };
  }
  return { ...result, rows: projection.rows, conflict: false, checkpoints: after, writeMs };
}

/** Retry policy of one shard round: the configured bound, never "skip and go on". */
export const retryPolicyOf = (config: Config) => ({
  attemptsMax: config.TALLY_RETRY_ATTEMPTS_MAX,
  backoffMsMax: config.TALLY_RETRY_BACKOFF_MS_MAX,
});

export function partitionsByShard(config: Config): number[][] {
  const shardCount = config.TALLY_PG_SHARDS.length;
  return config.TALLY_PG_SHARDS.map((_, k) => partitionsOfShard(k, shardCount, config.TALLY_PARTITIONS));
}
