// The one reader of applier_offsets (ddl.ts): the applier's stored position, per partition of a
// group and topic, and its counters. The applier writes the table inside its transactions
// (partition-state.ts, write.ts); everyone else, the applier's own reads included, reads it here:
// the applier (progress, `tally offsets`, loading a partition), the projector, verify, the
// tools (demo, bench) and tally/testing. Every statement takes the group and topic as parameters.
import type { Pool } from "../common/pg.ts";

/** A pool or a client (inside a transaction, for a read in its snapshot). */
export type Queryable = Pick<Pool, "query">;

/** What the applier stored for one partition: where it resumes, and the topic it applied. */
export type StoredPosition = { nextOffset: bigint; topicId: string | null };

/** The applier's counters of one partition (next - first = applied + duplicates + rejected + skipped). */
export type PartitionCounters = {
  next: bigint;
  first: bigint;
  applied: bigint;
  duplicates: bigint;
  rejected: bigint;
  skipped: bigint;
};

/** The counters of the records applied, summed over the partitions. */
export type OutcomeTotals = { applied: bigint; duplicates: bigint; rejected: bigint };

/** next_offset per partition of the group's topic that has a row (on the shard `client` reaches). */
export async function nextOffsets(
  client: Queryable,
  group: string,
  topic: string,
): Promise<Map<number, bigint>> {
  const result = await client.query<{ partition: number; next_offset: string }>(
    `SELECT "partition", next_offset::text AS next_offset FROM applier_offsets
      WHERE "group" = $1 AND topic = $2`,
    [group, topic],
  );
  return new Map(result.rows.map((r) => [r.partition, BigInt(r.next_offset)]));
}

/** The stored position of one partition, or null when the applier has no row for it yet. */
export async function storedPosition(
  client: Queryable,
  group: string,
  topic: string,
  partition: number,
): Promise<StoredPosition | null> {
  const result = await client.query<{ next_offset: string; topic_id: string | null }>(
    `SELECT next_offset::text AS next_offset, topic_id FROM applier_offsets
      WHERE "group" = $1 AND topic = $2 AND "partition" = $3`,
    [group, topic, partition],
  );
  const row = result.rows[0];
  return row === undefined ? null : { nextOffset: BigInt(row.next_offset), topicId: row.topic_id };
}

/** Every counter of every partition of the group's topic that has a row. */
export async function partitionCounters(
  client: Queryable,
  group: string,
  topic: string,
): Promise<Map<number, PartitionCounters>> {
  const result = await client.query<{ partition: number } & Record<keyof PartitionCounters, string>>(
    `SELECT "partition", next_offset::text AS next, first_offset::text AS first,
            applied_count::text AS applied, duplicate_count::text AS duplicates,
            rejected_count::text AS rejected, skipped_count::text AS skipped
       FROM applier_offsets WHERE "group" = $1 AND topic = $2`,
    [group, topic],
  );
  return new Map(
    result.rows.map((r) => [
      r.partition,
      {
        next: BigInt(r.next),
        first: BigInt(r.first),
        applied: BigInt(r.applied),
        duplicates: BigInt(r.duplicates),
        rejected: BigInt(r.rejected),
        skipped: BigInt(r.skipped),
      },
    ]),
  );
}

/** applied, duplicate and rejected counts summed over the group's topic's partitions (0 when none). */
export async function outcomeTotals(client: Queryable, group: string, topic: string): Promise<OutcomeTotals> {
  const result = await client.query<{ a: string; d: string; r: string }>(
    `SELECT coalesce(sum(applied_count), 0)::text a, coalesce(sum(duplicate_count), 0)::text d,
            coalesce(sum(rejected_count), 0)::text r
       FROM applier_offsets WHERE "group" = $1 AND topic = $2`,
    [group, topic],
  );
  const row = result.rows[0]!;
  return { applied: BigInt(row.a), duplicates: BigInt(row.d), rejected: BigInt(row.r) };
}
