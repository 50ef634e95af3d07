// `tally transfer <id>` as a library call: what became of one transfer id, across every shard.
// What the tables hold, and only that: a ledger row (applied), rejections found by their id or, for
// records that never decoded, by the id's bytes in their raw value, and what each re-drive became.
// Duplicates are counted per partition (applier_offsets.duplicate_count), not stored per record: a
// copy's coordinates are known only where reprocess recorded them.
import type { Config } from "../common/config.ts";
import { isUuid } from "../common/event.ts";
import type { Pool } from "../common/pg.ts";
import { partitionCounters } from "../storage/applier-offsets.ts";
import {
  type Coordinates,
  type RejectedRecord,
  type RejectedRow,
  rejectedColumns,
  rejectedRecordOf,
} from "./records.ts";
import { type OutcomeSource, poolOfPartition, withSource } from "./sources.ts";

export type AppliedRecord = {
  shard: number;
  coordinates: Coordinates;
  /** the ledger's day partition (UTC) */
  day: string;
  tokenId: string;
  batchId: string | null;
  asset: string;
  amount: bigint;
  fromWallet: string | null;
  toWallet: string | null;
  prevState: string | null;
  nextState: string;
  /** ISO 8601; the ledger keeps no time of application, only the event's own time */
  occurredAt: string;
  schemaId: number;
};

/** What the re-driven copy of a rejection became, judged from the tables. */
export type RedriveFate =
  | { kind: "applied" }
  | { kind: "rejected"; reason: string }
  /** consumed, yet neither a ledger row nor a rejection: a duplicate (or, when `certain` is false, possibly passed over by `tally offsets reset`) */
  | { kind: "duplicate"; certain: boolean }
  | { kind: "not_consumed_yet" };

export type FoundRejection = RejectedRecord & {
  /** by its transfer_id column, or by the id's bytes in a raw value that never decoded */
  foundBy: "transfer_id" | "raw_bytes";
  redriveFate: RedriveFate | null;
};

export type TransferOutcome = {
  transferId: string;
  /** applied wins: a transfer rejected first and applied later (a re-drive, a corrected resend) is applied */
  status: "applied" | "rejected" | "unknown";
  /** more than one is a breach `tally verify` reports */
  applied: AppliedRecord[];
  /** shards whose transfer_ids hold the id while no attached day partition holds its row (archived day) */
  appliedWithoutRow: number[];
  rejections: FoundRejection[];
  /** per partition of an applied record: the duplicates counted there in all, by anyone's copy */
  duplicateCounts: { partition: number; counted: bigint }[];
};

/** Rejections listed per shard at most: a transfer id with more is a producer's loop. */
export const rejectionsPerShardMax = 100;

export async function transferOutcome(
  from: Config | OutcomeSource,
  transferId: string,
): Promise<TransferOutcome> {
  return withSource(from, async (source) => {
    const applied: AppliedRecord[] = [];
    const appliedWithoutRow: number[] = [];
    const rejections: FoundRejection[] = [];
    for (const [shard, pool] of source.shards.entries()) {
      if (isUuid(transferId)) {
        const rows = await appliedOn(pool, shard, source.topic, transferId);
        if (rows === null) appliedWithoutRow.push(shard);
        else applied.push(...rows);
      }
      rejections.push(...(await rejectionsOn(pool, shard, source.topic, transferId)));
    }
    for (const rejection of rejections)
      rejection.redriveFate = await redriveFateOf(source, rejection, applied);
    const duplicateCounts = [];
    for (const partition of new Set(applied.map((a) => a.coordinates.partition))) {
      const offsets = await offsetsOf(source, partition);
      duplicateCounts.push({ partition, counted: offsets?.duplicates ?? 0n });
    }
    const status =
      applied.length > 0 || appliedWithoutRow.length > 0
        ? "applied"
        : rejections.length > 0
          ? "rejected"
          : "unknown";
    return { transferId, status, applied, appliedWithoutRow, rejections, duplicateCounts };
  });
}

/** The ledger rows of the id on one shard: [] when not applied there, null when only its id is (archived day). */
async function appliedOn(
  pool: Pool,
  shard: number,
  topic: string,
  id: string,
): Promise<AppliedRecord[] | null> {
  const known = await pool.query("SELECT 1 FROM transfer_ids WHERE transfer_id = $1", [id]);
  if (known.rowCount === 0) return [];
  // transfers has no index on transfer_id (the write path pays for none): one scan of this shard's
  // attached days, run only where transfer_ids (its primary key) says the row exists.
  const result = await pool.query<{
    batch_id: string | null;
    token_id: string;
    asset: string;
    amount: string;
    from_wallet: string | null;
    to_wallet: string | null;
    prev_state: string | null;
    next_state: string;
    occurred_at: Date;
    day: string;
    kafka_partition: number;
    kafka_offset_text: string;
    schema_id: number;
  }>(
    `SELECT batch_id, token_id, asset, amount::text AS amount, from_wallet, to_wallet, prev_state, next_state,
            occurred_at, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
            kafka_partition, kafka_offset::text AS kafka_offset_text, schema_id
       FROM transfers WHERE transfer_id = $1 ORDER BY kafka_partition, kafka_offset`,
    [id],
  );
  if (result.rows.length === 0) return null;
  return result.rows.map((r) => ({
    shard,
    coordinates: { topic, partition: r.kafka_partition, offset: BigInt(r.kafka_offset_text) },
    day: r.day,
    tokenId: r.token_id,
    batchId: r.batch_id,
    asset: r.asset,
    amount: BigInt(r.amount),
    fromWallet: r.from_wallet,
    toWallet: r.to_wallet,
    prevState: r.prev_state,
    nextState: r.next_state,
    occurredAt: r.occurred_at.toISOString(),
    schemaId: r.schema_id,
  }));
}

async function rejectionsOn(pool: Pool, shard: number, topic: string, id: string): Promise<FoundRejection[]> {
  const byId = await pool.query<RejectedRow>(
    `SELECT ${rejectedColumns} FROM rejected_transfers
      WHERE topic = $1 AND lower(transfer_id) = lower($2)
      ORDER BY kafka_partition, kafka_offset LIMIT ${rejectionsPerShardMax}`,
    [topic, id],
  );
  const found: FoundRejection[] = byId.rows.map((row) => ({
    ...rejectedRecordOf(row, shard),
    foundBy: "transfer_id",
    redriveFate: null,
  }));
  if (!isUuid(id)) return found;
  // A record that never decoded has no transfer_id; an Avro string is its UTF-8 bytes, so a uuid
  // written in either case is found in the raw value (a match in the bytes, not a decode).
  const byBytes = await pool.query<RejectedRow>(
    `SELECT ${rejectedColumns} FROM rejected_transfers
      WHERE topic = $1 AND transfer_id IS NULL
        AND (position(convert_to($2, 'UTF8') IN raw_value) > 0 OR position(convert_to($3, 'UTF8') IN raw_value) > 0)
      ORDER BY kafka_partition, kafka_offset LIMIT ${rejectionsPerShardMax}`,
    [topic, id.toLowerCase(), id.toUpperCase()],
  );
  for (const row of byBytes.rows)
    found.push({ ...rejectedRecordOf(row, shard), foundBy: "raw_bytes", redriveFate: null });
  return found;
}

async function offsetsOf(
  source: OutcomeSource,
  partition: number,
): Promise<{ next: bigint; duplicates: bigint; skipped: bigint } | null> {
  const counters = await partitionCounters(poolOfPartition(source, partition), source.group, source.topic);
  return counters.get(partition) ?? null;
}

/**
 * A re-drive's copy sits at recorded coordinates: the ledger row of this id there, a rejection
 * there, or, once consumed, neither, which the applier's counts make a duplicate.
 */
async function redriveFateOf(
  source: OutcomeSource,
  rejection: FoundRejection,
  applied: readonly AppliedRecord[],
): Promise<RedriveFate | null> {
  if (rejection.redriven === null) return null;
  const { partition, offset } = rejection.redriven.to;
  if (applied.some((a) => a.coordinates.partition === partition && a.coordinates.offset === offset))
    return { kind: "applied" };
  const there = await poolOfPartition(source, partition).query<{ reason: string }>(
    "SELECT reason FROM rejected_transfers WHERE topic = $1 AND kafka_partition = $2 AND kafka_offset = $3",
    [source.topic, partition, offset.toString()],
  );
  if (there.rows[0]) return { kind: "rejected", reason: there.rows[0].reason };
  const offsets = await offsetsOf(source, partition);
  if (offsets === null || offsets.next <= offset) return { kind: "not_consumed_yet" };
  return { kind: "duplicate", certain: offsets.skipped === 0n };
}
