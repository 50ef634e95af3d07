// One chunk of one partition, from consumed records to a committed transaction:
// decode → load the tokens it does not hold → plan in memory → write. Each phase is timed.

import type { Pool } from "../common/pg.ts";
import { ensureDayPartitions, existingDays } from "../storage/partitions.ts";
import type { EventWindow } from "./decide.ts";
import type { EventDecoder } from "./decode.ts";
import { findAppliedIds, loadTokens, type PartitionState } from "./partition-state.ts";
import { type BatchPlan, type DecodedRecord, planBatch } from "./plan.ts";
import { DuplicateTransferIdError, type PartitionRef, writeBatch } from "./write.ts";

export type RawRecord = { offset: bigint; key: Buffer | null; value: Buffer | null; timestampMs: number };
export type PhaseMs = { decode: number; validate: number; write: number; commit: number };
export type ChunkResult = { plan: BatchPlan; phaseMs: PhaseMs };

/** Per shard: the day partitions known to exist, so the write path creates only what is new. */
export class ShardContext {
  readonly pool: Pool;
  private days: Set<number> | null = null;

  constructor(pool: Pool) {
    this.pool = pool;
  }

  async ensureDays(days: Iterable<number>): Promise<void> {
    this.days ??= await existingDays(this.pool);
    const missing = [...days].filter((day) => !this.days!.has(day));
    if (missing.length === 0) return;
    await ensureDayPartitions(this.pool, missing);
    for (const day of missing) this.days.add(day);
  }
}

/** How often a batch may be re-planned because ids turned out applied: each re-plan adds ids, so 3 suffice. */
const replansMax = 3;

export async function applyChunk(
  shard: ShardContext,
  decoder: EventDecoder,
  ref: PartitionRef,
  state: PartitionState,
  raw: readonly RawRecord[],
  window: EventWindow,
): Promise<ChunkResult> {
  const expectedOffset = state.nextOffset;
  if (expectedOffset === null) throw new Error("the partition's stored offset is loaded before a chunk");
  const startedMs = performance.now();
  await decoder.prepare(raw.map((r) => r.value));
  const records: DecodedRecord[] = raw.map((r) => ({ ...r, decoded: decoder.decode(r.value) }));
  const decodedMs = performance.now();

  const tokenIds = records.flatMap((r) => (r.decoded.ok ? [r.decoded.event.token_id] : []));
  await loadTokens(shard.pool, state, state.missing(tokenIds));
  const stateOf = (id: string) => state.stateOf(id);
  let plan = planBatch(records, stateOf, new Set(), window);
  let appliedIds = await findAppliedIds(shard.pool, plan.duplicateCandidates);
  if (appliedIds.size > 0) plan = planBatch(records, stateOf, appliedIds, window);
  await shard.ensureDays(plan.days);
  const plannedMs = performance.now();

  for (let replan = 0; ; replan++) {
    try {
      const { write, commit } = await writeBatch(shard.pool, ref, expectedOffset, plan);
      rememberCommitted(state, plan, new Set(tokenIds));
      return {
        plan,
        phaseMs: { decode: decodedMs - startedMs, validate: plannedMs - decodedMs, write, commit },
      };
    } catch (error) {
      if (!(error instanceof DuplicateTransferIdError) || replan >= replansMax) throw error;
      // Rare: an id that passed the chain check was applied before (a reused id). Learn every
      // applied id of the batch and decide again; the transaction was rolled back whole.
      const ledgerIds = plan.ledger.map((row) => row.event.transfer_id.toLowerCase());
      appliedIds = new Set([...appliedIds, ...(await findAppliedIds(shard.pool, ledgerIds))]);
      plan = planBatch(records, stateOf, appliedIds, window);
    }
  }
}

/** Only after the commit does the member's view move on; a rolled-back batch leaves it as it was. */
function rememberCommitted(state: PartitionState, plan: BatchPlan, batchTokenIds: ReadonlySet<string>): void {
  for (const change of plan.tokenChanges.values()) state.remember(change.tokenId, change.state);
  state.nextOffset = plan.nextOffset;
  state.evictOver(batchTokenIds);
}
