// Where the outcomes are read: one pool per shard, the topic and the consumer group. A caller with
// pools of its own (an HTTP or admin front end) passes them; given a Config, pools are opened for
// the call and closed after it.
import type { Config } from "../common/config.ts";
import { createPool, type Pool } from "../common/pg.ts";
import { shardOf } from "../common/shards.ts";

export type OutcomeSource = {
  /** TALLY_TOPIC: rows of other topics in the same databases are not this deployment's */
  topic: string;
  /** TALLY_GROUP: whose applier_offsets say what was consumed */
  group: string;
  /** one pool per shard, in TALLY_PG_SHARDS order */
  shards: readonly Pool[];
};

export function isOutcomeSource(value: Config | OutcomeSource): value is OutcomeSource {
  return "shards" in value;
}

/** Runs `work` on `from` as given, or on pools opened from a Config and closed afterwards. */
export async function withSource<T>(
  from: Config | OutcomeSource,
  work: (source: OutcomeSource) => Promise<T>,
): Promise<T> {
  if (isOutcomeSource(from)) return work(from);
  const shards = from.TALLY_PG_SHARDS.map((url) => createPool(from, url, "tally-outcomes", 2));
  try {
    return await work({ topic: from.TALLY_TOPIC, group: from.TALLY_GROUP, shards });
  } finally {
    await Promise.all(shards.map((pool) => pool.end()));
  }
}

/** The pool of the shard that holds `partition`'s rows. */
export function poolOfPartition(source: OutcomeSource, partition: number): Pool {
  return source.shards[shardOf(partition, source.shards.length)]!;
}
