// Reading one shard for a round: the applier's offsets and the pending balance deltas (chunk rows,
// and the legacy per-(wallet, asset) rows an older applier wrote), in one REPEATABLE READ snapshot,
// so that "everything pending taken" and "next_offset" describe the same moment (the applier writes
// both in one transaction).
import { type Client, inTransaction, type Pool } from "../common/pg.ts";
import { nextOffsets } from "../storage/applier-offsets.ts";
import {
  type ChunkRow,
  type DeltaRow,
  type PartitionRead,
  perPartitionLimit,
  type Take,
  takePending,
} from "./aggregate.ts";

type RawDelta = {
  kafka_partition: number;
  end_offset: string;
  wallet: string | null;
  asset: string;
  delta: string;
  minted: string;
  burned: string;
};

const deltaOf = (raw: RawDelta): DeltaRow => ({
  partition: raw.kafka_partition,
  endOffset: BigInt(raw.end_offset),
  wallet: raw.wallet,
  asset: raw.asset,
  delta: BigInt(raw.delta),
  minted: BigInt(raw.minted),
  burned: BigInt(raw.burned),
});

// Numbers leave the database as text: numeric and bigint are exact there, and must stay so here.
const deltaColumns = `d.kafka_partition, d.end_offset::text AS end_offset, d.wallet, d.asset,
  d.delta::text AS delta, d.minted::text AS minted, d.burned::text AS burned`;

/** Runs `work` in a read-only REPEATABLE READ snapshot of the shard. */
export function inSnapshot<T>(pool: Pool, work: (client: Client) => Promise<T>): Promise<T> {
  return inTransaction(pool, work, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

export type ShardReadInput = {
  group: string;
  topic: string;
  partitions: number[];
  checkpoints: Map<number, bigint>;
  deltasMax: number;
};

type RawChunk = { kafka_partition: number; end_offset: string; entry_count: number; entries: string | null };

/** The pending deltas of every partition of the shard, bounded, batches whole. */
export async function readShard(pool: Pool, input: ShardReadInput): Promise<PartitionRead[]> {
  const limit = perPartitionLimit(input.deltasMax, input.partitions.length);
  return inSnapshot(pool, async (client) => {
    const applied = await nextOffsets(client, input.group, input.topic);
    const checkpoints = input.partitions.map((p) => (input.checkpoints.get(p) ?? -1n).toString());
    const legacy = await readLegacyRows(client, input, checkpoints, limit);
    const chunks = await readChunks(client, input, checkpoints, limit);
    const reads: PartitionRead[] = [];
    for (const partition of input.partitions) {
      let take = takePending(legacy.get(partition)!, chunks.get(partition)!, limit);
      if (take.kind === "oversized") take = await wholeBatch(client, input.topic, partition, take.endOffset);
      reads.push({
        partition,
        checkpoint: input.checkpoints.get(partition) ?? -1n,
        appliedUpTo: applied.get(partition) ?? null,
        take,
      });
    }
    return reads;
  });
}

function byPartition<T extends { partition: number }>(partitions: number[], items: T[]): Map<number, T[]> {
  const out = new Map<number, T[]>(partitions.map((p) => [p, []]));
  for (const item of items) out.get(item.partition)!.push(item);
  return out;
}

/**
 * Up to `limit + 1` legacy rows per partition. One index range scan per partition (LATERAL +
 * LIMIT), so a backlog on one partition neither starves the others nor makes the round read more
 * than the bound.
 */
async function readLegacyRows(
  client: Client,
  input: ShardReadInput,
  checkpoints: string[],
  limit: number,
): Promise<Map<number, DeltaRow[]>> {
  const result = await client.query<RawDelta>(
    `SELECT ${deltaColumns}
       FROM unnest($2::int[], $3::bigint[]) AS c(p, checkpoint)
       CROSS JOIN LATERAL (
         SELECT * FROM balance_deltas b
          WHERE b.topic = $1 AND b.kafka_partition = c.p AND b.end_offset > c.checkpoint
          ORDER BY b.end_offset LIMIT $4) d
      ORDER BY d.kafka_partition, d.end_offset`,
    [input.topic, input.partitions, checkpoints, limit + 1],
  );
  return byPartition(input.partitions, result.rows.map(deltaOf));
}

/**
 * Up to `limit + 1` chunk rows per partition (each holds at least one entry, so that covers the
 * bound), their entries only while the chunks before them hold fewer than `limit` entries: those
 * past it cannot be taken this round, and their text is left in the shard (EXTERNAL storage: not
 * even fetched).
 */
async function readChunks(
  client: Client,
  input: ShardReadInput,
  checkpoints: string[],
  limit: number,
): Promise<Map<number, ChunkRow[]>> {
  const result = await client.query<RawChunk>(
    `SELECT k.kafka_partition, k.end_offset::text AS end_offset, k.entry_count,
            CASE WHEN k.entries_before < $4 THEN k.entries END AS entries
       FROM unnest($2::int[], $3::bigint[]) AS c(p, checkpoint)
       CROSS JOIN LATERAL (
         SELECT b.*, sum(b.entry_count) OVER (ORDER BY b.end_offset) - b.entry_count AS entries_before
           FROM (SELECT * FROM balance_delta_chunks b
                  WHERE b.topic = $1 AND b.kafka_partition = c.p AND b.end_offset > c.checkpoint
                  ORDER BY b.end_offset LIMIT $5) b) k
      ORDER BY k.kafka_partition, k.end_offset`,
    [input.topic, input.partitions, checkpoints, limit, limit + 1],
  );
  const chunks = result.rows.map(
    (raw): ChunkRow => ({
      partition: raw.kafka_partition,
      endOffset: BigInt(raw.end_offset),
      entryCount: raw.entry_count,
      entries: raw.entries,
    }),
  );
  return byPartition(input.partitions, chunks);
}

/** One legacy batch larger than the bound: taken whole, since half a batch cannot be checkpointed. */
async function wholeBatch(
  client: Client,
  topic: string,
  partition: number,
  endOffset: bigint,
): Promise<Take> {
  const result = await client.query<RawDelta>(
    `SELECT ${deltaColumns} FROM balance_deltas d
      WHERE d.topic = $1 AND d.kafka_partition = $2 AND d.end_offset = $3`,
    [topic, partition, endOffset.toString()],
  );
  return { kind: "prefix", rows: result.rows.map(deltaOf), chunks: [], lastEndOffset: endOffset };
}

/**
 * Deletes deltas (chunk rows and legacy rows) at or below the committed checkpoints: they are in
 * the views already. At most `rowsMax` rows of each table per partition per call, so a prune
 * never holds a long transaction.
 */
export async function pruneShard(
  pool: Pool,
  topic: string,
  checkpoints: Map<number, bigint>,
  rowsMax: number,
): Promise<number> {
  let deleted = 0;
  for (const [partition, checkpoint] of checkpoints) {
    if (checkpoint < 0n) continue;
    for (const table of ["balance_delta_chunks", "balance_deltas"]) {
      const result = await pool.query(
        `DELETE FROM ${table} WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM ${table}
            WHERE topic = $1 AND kafka_partition = $2 AND end_offset <= $3 LIMIT $4))`,
        [topic, partition, checkpoint.toString(), rowsMax],
      );
      deleted += result.rowCount ?? 0;
    }
  }
  return deleted;
}
