// THE WRITE PATH. One chunk of one partition becomes one transaction on the partition's shard:
// offsets compare-and-set first (the fence), then ledger and ids by COPY, token states, rejections,
// balance deltas for the projector, and a NOTIFY. Everything or nothing.
import { beginKeyLookups, type Client, type Pool } from "../common/pg.ts";
import { arrayLiteral, boolArrayLiteral } from "../common/pg-arrays.ts";
import { copyBinaryInto, copyBytea, copyField, copyInto, copyLine } from "./copy.ts";
import { BinaryCopyWriter } from "./copy-binary.ts";
import { writeBalanceDeltas } from "./delta-rows.ts";
import type { ChunkPlan, LedgerRow } from "./plan.ts";

export type PartitionRef = { group: string; topic: string; partition: number };

/** Another writer advanced this partition: this member must drop its view and re-read. */
export class OffsetFenceError extends Error {
  override name = "OffsetFenceError";
}

/** A transfer id of the chunk was applied before: the chunk must be re-planned with that knowledge. */
export class DuplicateTransferIdError extends Error {
  override name = "DuplicateTransferIdError";
}

/**
 * Tokens the chunk would mint exist already, on another partition (minted there before records
 * were checked for their partition): the chunk must be re-planned knowing where they live.
 */
export class TokenElsewhereError extends Error {
  override name = "TokenElsewhereError";
  readonly tokenIds: string[];
  constructor(tokenIds: string[]) {
    super(`tokens already exist on another partition: ${tokenIds.slice(0, 5).join(", ")}`);
    this.tokenIds = tokenIds;
  }
}

export type PhaseTimingsMs = { write: number; commit: number };

const ledgerColumns = [
  "transfer_id",
  "batch_id",
  "token_id",
  "asset",
  "amount",
  "from_wallet",
  "to_wallet",
  "prev_state",
  "next_state",
  "occurred_at",
  "kafka_partition",
  "kafka_offset",
  "schema_id",
] as const;
const rejectionColumns = [
  "topic",
  "kafka_partition",
  "kafka_offset",
  "reason",
  "detail",
  "transfer_id",
  "token_id",
  "schema_id",
  "raw_key",
  "raw_value",
] as const;
/** Ids, names and details from rejected input can be any size; the raw bytes keep the whole. */
const rejectedTextLengthMax = 500;

export async function writeChunk(
  pool: Pool,
  ref: PartitionRef,
  expectedOffset: bigint,
  plan: ChunkPlan,
): Promise<PhaseTimingsMs> {
  const client = await pool.connect();
  const startedMs = performance.now();
  try {
    await client.query(beginKeyLookups);
    await advanceOffsets(client, ref, expectedOffset, plan);
    await copyLedger(client, ref, plan);
    await writeTokenStates(client, ref, plan);
    await copyRejections(client, ref, plan);
    await writeBalanceDeltas(pool, client, ref, plan);
    await client.query("NOTIFY tally_applied");
    const commitStartedMs = performance.now();
    await client.query("COMMIT");
    const doneMs = performance.now();
    return { write: commitStartedMs - startedMs, commit: doneMs - commitStartedMs };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    const e = error as { code?: string; table?: string };
    if (e.code === "23505" && e.table === "transfer_ids")
      throw new DuplicateTransferIdError("a transfer id was applied before", { cause: error });
    throw error;
  } finally {
    client.release();
  }
}

async function advanceOffsets(
  client: Client,
  ref: PartitionRef,
  expectedOffset: bigint,
  plan: ChunkPlan,
): Promise<void> {
  // First statement of the transaction: it takes the partition's row lock, so a racing writer
  // waits here and then fails the compare, rather than interleaving with this chunk. The stored
  // offset only ever moves forward: a plan ending at or below it is refused like a lost fence.
  const result = await client.query(
    `UPDATE applier_offsets
        SET next_offset = $5, applied_count = applied_count + $6, duplicate_count = duplicate_count + $7,
            rejected_count = rejected_count + $8, updated_at = now()
      WHERE "group" = $1 AND topic = $2 AND "partition" = $3 AND next_offset = $4 AND $5::bigint > $4::bigint`,
    [
      ref.group,
      ref.topic,
      ref.partition,
      expectedOffset.toString(),
      plan.nextOffset.toString(),
      plan.ledger.length,
      plan.duplicates,
      plan.rejections.length,
    ],
  );
  if (result.rowCount !== 1)
    throw new OffsetFenceError(`partition ${ref.partition} is no longer at offset ${expectedOffset}`);
}

async function copyLedger(client: Client, ref: PartitionRef, plan: ChunkPlan): Promise<void> {
  if (plan.ledger.length === 0) return;
  const { ids, rows } = encodeLedger(ref, plan.ledger);
  // The ids first: a repeated id fails here, before the larger ledger COPY is sent.
  await copyBinaryInto(client, "transfer_ids", ["transfer_id"], ids);
  await copyBinaryInto(client, "transfers", ledgerColumns, rows);
}

/** The chunk's ledger rows and their ids as binary COPY payloads, built in memory (pure). */
export function encodeLedger(ref: PartitionRef, ledger: readonly LedgerRow[]): { ids: Buffer; rows: Buffer } {
  const ids = new BinaryCopyWriter(1, ledger.length * 24);
  const rows = new BinaryCopyWriter(ledgerColumns.length, ledger.length * 256);
  for (const { event, offset, schemaId } of ledger) {
    ids.row().uuid(event.transfer_id);
    rows.row().uuid(event.transfer_id).text(event.batch_id).text(event.token_id).text(event.asset);
    rows.numeric(event.amount).text(event.from_wallet).text(event.to_wallet).text(event.prev_state);
    rows
      .text(event.next_state)
      .timestamptz(event.occurred_at)
      .int4(ref.partition)
      .int8(offset)
      .int4(schemaId);
  }
  return { ids: ids.finish(), rows: rows.finish() };
}

async function writeTokenStates(client: Client, ref: PartitionRef, plan: ChunkPlan): Promise<void> {
  const updates = {
    id: [] as string[],
    owner: [] as (string | null)[],
    state: [] as string[],
    retired: [] as boolean[],
    offset: [] as string[],
  };
  const inserts = { ...structuredClone(updates), asset: [] as string[], amount: [] as string[] };
  for (const change of plan.tokenChanges.values()) {
    const target = change.existedBefore ? updates : inserts;
    target.id.push(change.tokenId);
    target.owner.push(change.state.owner);
    target.state.push(change.state.state);
    target.retired.push(change.state.retired);
    target.offset.push(change.lastOffset.toString());
    if (!change.existedBefore) {
      inserts.asset.push(change.state.asset);
      inserts.amount.push(change.state.amount.toString());
    }
  }
  if (updates.id.length > 0) {
    // UPDATE ... FROM unnest measured faster than INSERT ... ON CONFLICT (STACK.md); tokens are
    // collapsed to one change each by the planner, so no row is matched twice.
    const result = await client.query(
      `UPDATE token_state t SET owner = u.owner, state = u.state, retired = u.retired, last_offset = u.last_offset
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bigint[]) AS u(token_id, owner, state, retired, last_offset)
        WHERE t.token_id = u.token_id`,
      [
        arrayLiteral(updates.id),
        arrayLiteral(updates.owner),
        arrayLiteral(updates.state),
        boolArrayLiteral(updates.retired),
        arrayLiteral(updates.offset),
      ],
    );
    if (result.rowCount !== updates.id.length)
      throw new OffsetFenceError("token states differ from what this member holds");
  }
  if (inserts.id.length > 0) {
    // ON CONFLICT: a token this view holds as never minted can only exist on another partition (on
    // this one, the offsets compare-and-set above would have failed first); the chunk is re-planned.
    const result = await client.query<{ token_id: string }>(
      `INSERT INTO token_state (token_id, asset, amount, owner, state, retired, kafka_partition, last_offset)
       SELECT u.token_id, u.asset, u.amount, u.owner, u.state, u.retired, $8, u.last_offset
         FROM unnest($1::text[], $2::text[], $3::numeric[], $4::text[], $5::text[], $6::bool[], $7::bigint[])
           AS u(token_id, asset, amount, owner, state, retired, last_offset)
       ON CONFLICT (token_id) DO NOTHING RETURNING token_id`,
      [
        arrayLiteral(inserts.id),
        arrayLiteral(inserts.asset),
        arrayLiteral(inserts.amount),
        arrayLiteral(inserts.owner),
        arrayLiteral(inserts.state),
        boolArrayLiteral(inserts.retired),
        arrayLiteral(inserts.offset),
        ref.partition,
      ],
    );
    if (result.rowCount !== inserts.id.length) {
      const inserted = new Set(result.rows.map((row) => row.token_id));
      throw new TokenElsewhereError(inserts.id.filter((id) => !inserted.has(id)));
    }
  }
}

const clip = (text: string | null) => (text === null ? null : text.slice(0, rejectedTextLengthMax));

async function copyRejections(client: Client, ref: PartitionRef, plan: ChunkPlan): Promise<void> {
  let rows = "";
  for (const r of plan.rejections) {
    rows += copyLine([
      copyField(ref.topic),
      String(ref.partition),
      r.offset.toString(),
      r.reason,
      copyField(clip(r.detail)),
      copyField(clip(r.transferId)),
      copyField(clip(r.tokenId)),
      copyField(r.schemaId),
      copyBytea(r.key),
      copyBytea(r.value),
    ]);
  }
  await copyInto(client, "rejected_transfers", rejectionColumns, rows);
}
