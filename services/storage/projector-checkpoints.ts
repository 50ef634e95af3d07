// Reading projector_checkpoints (ddl.ts, the views database): per partition, the end offset of the
// last batch the views hold, -1 for none. The projector writes them (projector/views-write.ts, a
// compare-and-set in the views transaction); the projector, verify and tally/testing read them here.
import type { Client, Pool } from "../common/pg.ts";

/** The checkpoint of each of `partitions`, -1 where there is no row yet. */
export async function loadCheckpoints(
  client: Client | Pool,
  topic: string,
  partitions: number[],
): Promise<Map<number, bigint>> {
  const result = await client.query<{ kafka_partition: number; end_offset: string }>(
    `SELECT kafka_partition, end_offset::text AS end_offset FROM projector_checkpoints
      WHERE topic = $1 AND kafka_partition = ANY($2::int[])`,
    [topic, partitions],
  );
  const checkpoints = new Map<number, bigint>(partitions.map((p) => [p, -1n]));
  for (const row of result.rows) checkpoints.set(row.kafka_partition, BigInt(row.end_offset));
  return checkpoints;
}
