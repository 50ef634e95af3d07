// rejected_transfers read as an outbox (ddl.ts): per source partition, the rejections at or past the
// relay's checkpoint (dlq_checkpoints), in offset order, and the checkpoint moved past what Kafka
// acknowledged. Why one offset per partition is complete: a chunk's rejections commit in the
// chunk's transaction, and a partition's chunks commit one after the other in offset order (each
// compare-and-sets applier_offsets on the offset the previous one stored), so once a rejection at
// offset o is visible, every rejection of the partition below o is visible too, and none can
// appear below the checkpoint later.
import type { Client, Pool } from "../common/pg.ts";
import type { Rejection } from "./headers.ts";

/** pg_try_advisory_lock(key, hashtext(topic/dlq topic)): one relay per shard, topic and dead-letter topic. */
export const relayLockKey = 0x7a11_0015;

export type OutboxKey = { topic: string; dlqTopic: string };

/** The next offset to publish of each of `partitions`, 0 where no checkpoint exists yet. */
export async function loadDlqCheckpoints(
  pool: Pool | Client,
  key: OutboxKey,
  partitions: readonly number[],
): Promise<Map<number, bigint>> {
  const result = await pool.query<{ kafka_partition: number; next_offset: string }>(
    `SELECT kafka_partition, next_offset::text AS next_offset FROM dlq_checkpoints
      WHERE topic = $1 AND dlq_topic = $2 AND kafka_partition = ANY($3::int[])`,
    [key.topic, key.dlqTopic, partitions],
  );
  const checkpoints = new Map<number, bigint>(partitions.map((p) => [p, 0n]));
  for (const row of result.rows) checkpoints.set(row.kafka_partition, BigInt(row.next_offset));
  return checkpoints;
}

type Row = {
  kafka_partition: number;
  kafka_offset: string;
  reason: string;
  detail: string;
  transfer_id: string | null;
  schema_id: number | null;
  raw_key: Buffer | null;
  raw_value: Buffer | null;
  rejected_at: Date;
};

/** At most `limit` rejections of one partition from `from` on, in offset order (the primary key's). */
export async function readRejections(
  pool: Pool | Client,
  topic: string,
  partition: number,
  from: bigint,
  limit: number,
): Promise<Rejection[]> {
  const result = await pool.query<Row>(
    `SELECT kafka_partition, kafka_offset::text AS kafka_offset, reason, detail, transfer_id, schema_id,
            raw_key, raw_value, rejected_at
       FROM rejected_transfers
      WHERE topic = $1 AND kafka_partition = $2 AND kafka_offset >= $3
      ORDER BY kafka_offset LIMIT $4`,
    [topic, partition, from.toString(), limit],
  );
  return result.rows.map((r) => ({
    topic,
    partition: r.kafka_partition,
    offset: BigInt(r.kafka_offset),
    reason: r.reason,
    detail: r.detail,
    transferId: r.transfer_id,
    schemaId: r.schema_id,
    rawKey: r.raw_key,
    rawValue: r.raw_value,
    rejectedAt: r.rejected_at,
  }));
}

/**
 * After Kafka acknowledged them: each partition's checkpoint moves past its last published
 * rejection, in one transaction. Never backwards (GREATEST), so a stale relay cannot undo progress.
 */
export async function advanceDlqCheckpoints(
  pool: Pool,
  key: OutboxKey,
  published: ReadonlyMap<number, { next: bigint; count: number }>,
): Promise<void> {
  const partitions = [...published.keys()];
  await pool.query(
    `INSERT INTO dlq_checkpoints AS c (topic, dlq_topic, kafka_partition, next_offset, published_count)
     SELECT $1, $2, p, n::bigint, k FROM unnest($3::int[], $4::text[], $5::bigint[]) AS u(p, n, k)
     ON CONFLICT (topic, dlq_topic, kafka_partition) DO UPDATE
       SET next_offset = GREATEST(c.next_offset, excluded.next_offset),
           published_count = c.published_count + excluded.published_count,
           updated_at = now()`,
    [
      key.topic,
      key.dlqTopic,
      partitions,
      partitions.map((p) => published.get(p)!.next.toString()),
      partitions.map((p) => published.get(p)!.count),
    ],
  );
}
