// `tally offsets`: what the stored offsets say against the topic Kafka has now, and the operator's
// explicit, logged decisions when the applier stopped on an incarnation problem. Moves are forward
// only: the ledger's rows are keyed by Kafka coordinates, so a stored offset moved back would let a
// new incarnation's records collide with the old ones' (and the projector's checkpoints with both).
import type { Config } from "../common/config.ts";
import { createKafka } from "../common/kafka.ts";
import type { Logger } from "../common/log.ts";
import { createPool, type Pool } from "../common/pg.ts";
import { shardOf } from "../common/shards.ts";
import { storedPosition } from "../storage/applier-offsets.ts";
import { incarnationProblem, type LogWindow } from "./incarnation.ts";
import { KafkaLog } from "./store.ts";

export type PartitionOffsets = {
  partition: number;
  shard: number;
  stored: { nextOffset: bigint; topicId: string | null } | null;
  log: LogWindow;
  problem: string | null;
};

export type ResetTarget = "earliest" | "latest" | "adopt-topic-id";

async function withSources<T>(
  config: Config,
  work: (log: KafkaLog, pools: Pool[]) => Promise<T>,
): Promise<T> {
  const kafka = createKafka(config, "offsets");
  const pools = config.TALLY_PG_SHARDS.map((url) => createPool(config, url, "tally-offsets", 1));
  const log = new KafkaLog(kafka, config.TALLY_TOPIC);
  try {
    return await work(log, pools);
  } finally {
    await log.close();
    await Promise.all(pools.map((p) => p.end()));
  }
}

function readStored(pool: Pool, config: Config, partition: number) {
  return storedPosition(pool, config.TALLY_GROUP, config.TALLY_TOPIC, partition);
}

async function inspectWith(config: Config, log: KafkaLog, pools: Pool[]): Promise<PartitionOffsets[]> {
  const rows: PartitionOffsets[] = [];
  for (let partition = 0; partition < config.TALLY_PARTITIONS; partition++) {
    const shard = shardOf(partition, pools.length);
    const stored = await readStored(pools[shard]!, config, partition);
    const window = await log.window(partition);
    const where = { topic: config.TALLY_TOPIC, partition };
    const problem = stored === null ? null : (incarnationProblem(where, stored, window)?.message ?? null);
    rows.push({ partition, shard, stored, log: window, problem });
  }
  return rows;
}

export function inspectOffsets(config: Config): Promise<PartitionOffsets[]> {
  return withSources(config, (log, pools) => inspectWith(config, log, pools));
}

/** Why a partition cannot move to `target`, or null. Pure. */
export function refusalOf(row: PartitionOffsets, target: ResetTarget): string | null {
  const stored = row.stored;
  if (stored === null) return "no stored offsets: the applier starts it at the log's start by itself";
  if (target === "adopt-topic-id") {
    if (stored.nextOffset < row.log.lowOffset || stored.nextOffset > row.log.highOffset)
      return `stored offset ${stored.nextOffset} is outside the log [${row.log.lowOffset}, ${row.log.highOffset}]: the offsets are not this log's`;
    return null;
  }
  const to = target === "earliest" ? row.log.lowOffset : row.log.highOffset;
  if (to < stored.nextOffset) {
    return (
      `moving back from ${stored.nextOffset} to ${to} would mix two incarnations' records in one ledger; ` +
      "apply the new topic with its own TALLY_GROUP and databases"
    );
  }
  return null;
}

/** Moves (or re-labels) the stored offsets of `partitions`; every change is logged before and after. */
export async function resetOffsets(
  config: Config,
  target: ResetTarget,
  partitions: readonly number[] | null,
  logger: Logger,
): Promise<{ changed: PartitionOffsets[]; refused: { row: PartitionOffsets; why: string }[] }> {
  return withSources(config, async (log, pools) => {
    const rows = (await inspectWith(config, log, pools)).filter(
      (r) => partitions === null || partitions.includes(r.partition),
    );
    const changed: PartitionOffsets[] = [];
    const refused: { row: PartitionOffsets; why: string }[] = [];
    for (const row of rows) {
      const why = refusalOf(row, target);
      if (why !== null) {
        refused.push({ row, why });
        continue;
      }
      const before = row.stored!;
      const next =
        target === "adopt-topic-id"
          ? before.nextOffset
          : target === "earliest"
            ? row.log.lowOffset
            : row.log.highOffset;
      // Compare-and-set on what was read: an applier that wrote meanwhile makes this a no-op to rerun.
      const result = await pools[row.shard]!.query(
        `UPDATE applier_offsets SET next_offset = $4, topic_id = $5, updated_at = now(),
                skipped_count = skipped_count + ($4::bigint - $6::bigint)
          WHERE "group" = $1 AND topic = $2 AND "partition" = $3 AND next_offset = $6`,
        [
          config.TALLY_GROUP,
          config.TALLY_TOPIC,
          row.partition,
          next.toString(),
          row.log.topicId,
          before.nextOffset.toString(),
        ],
      );
      if (result.rowCount !== 1) {
        refused.push({
          row,
          why: "the stored offset moved while this ran (an applier is running?): run again",
        });
        continue;
      }
      logger.warn(
        {
          group: config.TALLY_GROUP,
          topic: config.TALLY_TOPIC,
          partition: row.partition,
          target,
          next_offset_before: String(before.nextOffset),
          next_offset_after: String(next),
          topic_id_before: before.topicId,
          topic_id_after: row.log.topicId,
        },
        "offsets reset by an operator",
      );
      changed.push({ ...row, stored: { nextOffset: next, topicId: row.log.topicId }, problem: null });
    }
    return { changed, refused };
  });
}
