// One chunk of one partition, from consumed records to a committed transaction:
// decode → load the tokens it does not hold → plan in memory → write. Each phase is timed.

import { assert } from "../common/assert.ts";
import type { Pool } from "../common/pg.ts";
import { dayCatalogue, prepareDays } from "../storage/partitions.ts";
import type { EventWindow } from "./decide.ts";
import type { EventDecoder } from "./decode.ts";
import { findAppliedIds, loadTokens, type PartitionState } from "./partition-state.ts";
import { type ChunkPlan, type DecodedRecord, type PlanRouting, planChunk, withAppliedIds } from "./plan.ts";
import { DuplicateTransferIdError, type PartitionRef, TokenElsewhereError, writeChunk } from "./write.ts";

export type RawRecord = { offset: bigint; key: Buffer | null; value: Buffer | null; timestampMs: number };
export type PhaseMs = { decode: number; validate: number; write: number; commit: number };
export type ChunkResult = { plan: ChunkPlan; phaseMs: PhaseMs };

/** Per shard: the day partitions known to exist or to be detached, so the write path creates only what is new. */
export class ShardContext {
  readonly pool: Pool;
  private attached: Set<number> | null = null;
  private readonly detached = new Set<number>();

  constructor(pool: Pool) {
    this.pool = pool;
  }

  /**
   * Creates the missing day partitions (in bounded steps); returns the days that are detached. A day
   * known as detached is looked up again before it rejects anything: an operator may have attached it.
   */
  async ensureDays(days: Iterable<number>, afterStep?: () => Promise<void>): Promise<ReadonlySet<number>> {
    const wanted = [...days];
    if (this.attached === null || wanted.some((day) => this.detached.has(day))) {
      const catalogue = await dayCatalogue(this.pool);
      this.attached = catalogue.attached;
      this.detached.clear();
      for (const day of catalogue.detached) this.detached.add(day);
    }
    const missing = wanted.filter((day) => !this.attached!.has(day) && !this.detached.has(day));
    if (missing.length > 0) {
      const { created, detached } = await prepareDays(this.pool, missing, afterStep);
      for (const day of created) this.attached.add(day);
      for (const day of detached) this.detached.add(day);
    }
    return this.detached;
  }

  /** Forget what is known of the catalogue: an operator may have attached or detached a day. */
  forgetDays(): void {
    this.attached = null;
    this.detached.clear();
  }
}

export type ChunkContext = {
  shard: ShardContext;
  decoder: EventDecoder;
  ref: PartitionRef;
  window: EventWindow;
  partitionOfKey: (key: Buffer) => number;
  /** Called between long steps (day partitions of a backfill): the member's group heartbeat. */
  heartbeat?: () => Promise<void>;
};

/** How often a chunk may be re-planned on what the write found: each re-plan learns more, so a few suffice. */
const replansMax = 4;

/** A chunk's records with their values decoded (the decode phase; the bench's path runs it too). */
export async function decodeChunk(
  decoder: EventDecoder,
  raw: readonly RawRecord[],
): Promise<DecodedRecord[]> {
  await decoder.prepare(raw.map((r) => r.value));
  return raw.map((r) => ({ ...r, decoded: decoder.decode(r.value) }));
}

export async function applyChunk(
  context: ChunkContext,
  state: PartitionState,
  raw: readonly RawRecord[],
): Promise<ChunkResult> {
  const { shard, decoder, ref, window } = context;
  const expectedOffset = state.nextOffset;
  if (expectedOffset === null) throw new Error("the partition's stored offset is loaded before a chunk");
  // A record below the view's offset was applied before: writing it again would double it and move
  // the stored offset back. The member never passes one; this is the last line before the write.
  assert(raw.length > 0 && raw[0]!.offset >= expectedOffset, "a chunk starts at or above its view's offset");
  const startedMs = performance.now();
  const records = await decodeChunk(decoder, raw);
  const decodedMs = performance.now();

  // A loop, not flatMap: flatMap's callback made an array per record.
  const tokenIds: string[] = [];
  for (const r of records) if (r.decoded.ok) tokenIds.push(r.decoded.event.token_id);
  await loadTokens(shard.pool, state, ref.partition, state.missing(tokenIds));
  let appliedIds = new Set<string>();
  let archivedDays: ReadonlySet<number> = new Set();
  const routing = (): PlanRouting => ({
    partition: ref.partition,
    partitionOfKey: context.partitionOfKey,
    homeOf: (id) => state.homeOf(id),
    archivedDays,
  });
  const planOnce = () => planChunk(records, (id) => state.stateOf(id), appliedIds, window, routing());
  // Days are made before the write; a day found detached is planned again, as a rejection.
  const withDays = async (planned: ChunkPlan): Promise<ChunkPlan> => {
    archivedDays = await shard.ensureDays(planned.days, context.heartbeat);
    for (const day of planned.days) if (archivedDays.has(day)) return planOnce();
    return planned;
  };
  let planned = planOnce();
  appliedIds = await findAppliedIds(shard.pool, planned.duplicateCandidates);
  // A re-sent record is rejected by the rules first, then found applied: with 1 % re-sends nearly
  // every chunk has some, and turning them into duplicates costs a pass over the rejections, not a
  // second plan of every record.
  if (appliedIds.size > 0) planned = withAppliedIds(planned, appliedIds) ?? planOnce();
  planned = await withDays(planned);
  const plannedMs = performance.now();

  for (let replan = 0; ; replan++) {
    try {
      const { write, commit } = await writeChunk(shard.pool, ref, expectedOffset, planned);
      rememberCommitted(state, planned, new Set(tokenIds));
      return {
        plan: planned,
        phaseMs: { decode: decodedMs - startedMs, validate: plannedMs - decodedMs, write, commit },
      };
    } catch (error) {
      if (replan >= replansMax) throw error;
      if (error instanceof DuplicateTransferIdError) {
        // Rare: an id that passed the chain check was applied before (a reused id). Learn every
        // applied id of the chunk and decide again; the transaction was rolled back whole.
        const ledgerIds = planned.ledger.map((row) => row.event.transfer_id.toLowerCase());
        appliedIds = new Set([...appliedIds, ...(await findAppliedIds(shard.pool, ledgerIds))]);
      } else if (error instanceof TokenElsewhereError) {
        await loadTokens(shard.pool, state, ref.partition, error.tokenIds);
      } else if (isNoDayPartition(error)) {
        // A day detached (archived) since the catalogue was read: read it again and re-plan.
        shard.forgetDays();
      } else {
        throw error;
      }
      planned = await withDays(planOnce());
    }
  }
}

/** PostgreSQL's answer to a row whose day has no attached partition (check_violation, 23514). */
function isNoDayPartition(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === "23514" && /no partition of relation/.test(e.message ?? "");
}

/** Only after the commit does the member's view move on; a rolled-back chunk leaves it as it was. */
function rememberCommitted(state: PartitionState, plan: ChunkPlan, chunkTokenIds: ReadonlySet<string>): void {
  for (const change of plan.tokenChanges.values()) state.remember(change.tokenId, change.state);
  state.nextOffset = plan.nextOffset;
  state.evictOver(chunkTokenIds);
}
