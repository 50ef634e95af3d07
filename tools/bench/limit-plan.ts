// The limit case's chunks, planned without the applier: the load's records routed to their Kafka
// partition (the producer's murmur2 of the token id) and numbered per partition, cut into chunks of
// the applier's size, each turned into the ChunkPlan the applier would write for it. Which records
// are applied, duplicates or double spends comes from the generator, not from rules. Pure: unit tested.

import { addBalanceDeltas, type ChunkPlan, emptyChunkPlan } from "../../services/applier/plan.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { partitionOfKey } from "../../services/common/partitioner.ts";
import { shardOf } from "../../services/common/shards.ts";
import { dayOf } from "../../services/storage/partitions.ts";
import { createLoad, type LoadOptions } from "../load/load.ts";

export type LoadRecord = { event: TransferEvent; kind: "applied" | "duplicate" | "double_spend" };
/** One chunk of one partition: what writeChunk takes, and where the partition stood before it. */
export type LimitChunk = { partition: number; expectedOffset: bigint; plan: ChunkPlan };

/** The load's records in order, each with what the generator says becomes of it. */
export function* loadRecords(load: LoadOptions): Generator<LoadRecord> {
  const run = createLoad(load);
  let applied = 0;
  let duplicates = 0;
  for (const event of run.events()) {
    const outcome = run.outcome;
    const kind =
      outcome.applied > applied ? "applied" : outcome.duplicates > duplicates ? "duplicate" : "double_spend";
    applied = outcome.applied;
    duplicates = outcome.duplicates;
    yield { event, kind };
  }
}

/** An applied event's rows: its ledger row, its token's state (collapsed per chunk), its deltas. */
function addApplied(plan: ChunkPlan, event: TransferEvent, offset: bigint, minted: Set<string>): void {
  plan.ledger.push({ event, offset, schemaId: 1 });
  plan.days.add(dayOf(event.occurred_at));
  const { token_id: tokenId, asset, amount, to_wallet: to } = event;
  // existedBefore: minted in an earlier chunk, so the applier would UPDATE rather than INSERT it.
  const existedBefore = plan.tokenChanges.get(tokenId)?.existedBefore ?? minted.has(tokenId);
  const state = { asset, amount, owner: to, state: event.next_state, retired: to === null };
  plan.tokenChanges.set(tokenId, { tokenId, state, existedBefore, lastOffset: offset });
  addBalanceDeltas(plan, event);
}

/** A double spend as the applier records it; the raw bytes are the key alone (no Avro here). */
function addRejected(plan: ChunkPlan, event: TransferEvent, offset: bigint): void {
  plan.rejections.push({
    offset,
    reason: "state_conflict",
    detail: "prev_state is not the token's current state",
    transferId: event.transfer_id,
    tokenId: event.token_id,
    schemaId: 1,
    key: Buffer.from(event.token_id),
    value: null,
  });
}

/**
 * Per partition, chunks of at most `chunkEventsMax` records in offset order, as one applier cuts a
 * partition's backlog: a chunk's records are consecutive, and its plan ends at its next offset.
 */
export function limitChunksOf(
  records: Iterable<LoadRecord>,
  partitions: number,
  chunkEventsMax: number,
): LimitChunk[][] {
  const perPartition: LimitChunk[][] = Array.from({ length: partitions }, () => []);
  const open: { chunk: LimitChunk; records: number }[] = [];
  const minted = new Set<string>();
  for (const { event, kind } of records) {
    const partition = partitionOfKey(Buffer.from(event.token_id), partitions);
    let current = open[partition];
    if (current === undefined || current.records === chunkEventsMax) {
      const expectedOffset = current?.chunk.plan.nextOffset ?? 0n;
      current = { chunk: { partition, expectedOffset, plan: emptyChunkPlan(expectedOffset) }, records: 0 };
      open[partition] = current;
      perPartition[partition]!.push(current.chunk);
    }
    const { plan } = current.chunk;
    const offset = plan.nextOffset;
    if (kind === "applied") addApplied(plan, event, offset, minted);
    else if (kind === "duplicate") plan.duplicates += 1;
    else addRejected(plan, event, offset);
    if (kind === "applied" && event.from_wallet === null) minted.add(event.token_id);
    plan.nextOffset = offset + 1n;
    current.records += 1;
  }
  return perPartition;
}

/**
 * The chunks each shard's writer commits, in turn over its partitions (as an applier alternates
 * among the partitions it owns): one writer per shard, partition p on shard p mod shards.
 */
export function writerQueues(perPartition: readonly LimitChunk[][], shards: number): LimitChunk[][] {
  const queues: LimitChunk[][] = Array.from({ length: shards }, () => []);
  const longest = Math.max(0, ...perPartition.map((chunks) => chunks.length));
  for (let k = 0; k < longest; k++)
    for (const [partition, chunks] of perPartition.entries()) {
      const chunk = chunks[k];
      if (chunk) queues[shardOf(partition, shards)]!.push(chunk);
    }
  return queues;
}

/**
 * The rows the chunks write per table, to check against what the database counts afterwards; the
 * balance deltas as entries (a non-zero wallet delta, or a supply change, per chunk), however stored.
 */
export function expectedRowsOf(chunks: Iterable<LimitChunk>): Record<string, number> {
  const rows = {
    transfers: 0,
    transfer_ids: 0,
    token_state: 0,
    rejected_transfers: 0,
    balance_delta_entries: 0,
  };
  const tokens = new Set<string>();
  for (const { plan } of chunks) {
    rows.transfers += plan.ledger.length;
    rows.transfer_ids += plan.ledger.length;
    rows.rejected_transfers += plan.rejections.length;
    for (const change of plan.tokenChanges.values()) tokens.add(change.tokenId);
    for (const perWallet of plan.balanceDeltas.values())
      for (const delta of perWallet.values()) if (delta !== 0n) rows.balance_delta_entries += 1;
    rows.balance_delta_entries += plan.supplyDeltas.size;
  }
  rows.token_state = tokens.size;
  return rows;
}
