// A PartitionStore in memory with the real semantics: applier_offsets rows bound to a topic id and
// advanced by compare-and-set, token_state (a token lives on one partition), transfer ids unique,
// rejections, each chunk all or nothing. Planning is the real planChunk with a PlanRouting, and the
// view is the real PartitionState, as apply-chunk.ts drives them. Loads and writes can be held open
// and released later (a load keeps the snapshot it took when called), fail transiently before they
// take effect, or commit and then lose the answer.
import type { ChunkResult, RawRecord } from "../../../services/applier/apply-chunk.ts";
import type { EventWindow, TokenState } from "../../../services/applier/decide.ts";
import { incarnationProblem, type LogWindow } from "../../../services/applier/incarnation.ts";
import { PartitionState } from "../../../services/applier/partition-state.ts";
import {
  type ChunkPlan,
  type DecodedRecord,
  type PlanRouting,
  planChunk,
} from "../../../services/applier/plan.ts";
import type { PartitionStore } from "../../../services/applier/store.ts";
import {
  DuplicateTransferIdError,
  OffsetFenceError,
  TokenElsewhereError,
} from "../../../services/applier/write.ts";
import { TransientError } from "../../../services/common/retry.ts";
import { decodeValue, type Outcome } from "./model.ts";
import type { Prng } from "./prng.ts";

export type OffsetsRow = { nextOffset: bigint; firstOffset: bigint; topicId: string | null };
export type StoreFaults = { holdChance: number; transientChance: number; lostAnswerChance: number };
export const noFaults: StoreFaults = { holdChance: 0, transientChance: 0, lostAnswerChance: 0 };

type Held = { what: string; release: (fault: "none" | "transient") => void };

const replansMax = 4;
const zeroPhases = { decode: 0, validate: 0, write: 0, commit: 0 };

export class SimStore implements PartitionStore {
  readonly rows = new Map<number, OffsetsRow>();
  readonly tokens = new Map<string, { state: TokenState; partition: number }>();
  readonly transferIds = new Set<string>();
  /** Per partition, every consumed record's outcome in the order written: the ledger and rejections. */
  readonly outcomes = new Map<number, Outcome[]>();
  readonly held: Held[] = [];
  faults: StoreFaults = noFaults;
  /** What happened, for the run's summary: commits, fenced writes, answers lost after a commit. */
  readonly counts = { commits: 0, fences: 0, lostAnswers: 0 };
  private readonly prng: Prng;
  private readonly settings: {
    topic: string;
    tokensMax: number;
    window: EventWindow;
    partitionOfKey: (key: Buffer) => number;
  };

  constructor(prng: Prng, settings: SimStore["settings"]) {
    this.prng = prng;
    this.settings = settings;
  }

  /** Settles a held operation: the simulation decides when, and whether it fails then. */
  releaseOne(index: number, fault: "none" | "transient"): string {
    const [held] = this.held.splice(index, 1);
    held!.release(fault);
    return held!.what;
  }

  async load(partition: number, log: LogWindow): Promise<PartitionState> {
    this.maybeFail(`load ${partition}`);
    let row = this.rows.get(partition);
    if (row === undefined) {
      row = { nextOffset: log.lowOffset, firstOffset: log.lowOffset, topicId: log.topicId };
      this.rows.set(partition, row);
    }
    const problem = incarnationProblem({ topic: this.settings.topic, partition }, row, log);
    if (problem !== null) throw problem;
    if (row.topicId === null) row.topicId = log.topicId;
    const view = this.snapshot(partition, log.topicId); // taken now, as REPEATABLE READ does
    return this.maybeHold(`load ${partition}`, () => view);
  }

  private snapshot(partition: number, topicId: string | null): PartitionState {
    const view = new PartitionState(this.settings.tokensMax);
    view.nextOffset = this.rows.get(partition)!.nextOffset;
    view.topicId = topicId;
    const mine = [...this.tokens.entries()].filter(([, t]) => t.partition === partition);
    if (mine.length > this.settings.tokensMax) return view; // loaded per chunk instead
    for (const [id, token] of mine) view.remember(id, token.state);
    view.complete = true;
    return view;
  }

  async apply(partition: number, view: PartitionState, chunk: readonly RawRecord[]): Promise<ChunkResult> {
    this.maybeFail(`apply ${partition}`);
    const records: DecodedRecord[] = chunk.map((r) => ({ ...r, decoded: decodeValue(r.value) }));
    const lostAnswer = this.prng.chance(this.faults.lostAnswerChance);
    return this.maybeHold(`apply ${partition}@${chunk[0]!.offset}`, () => {
      // A lost answer: the transaction committed, the member never learns it (nor its view).
      const result = this.applyNow(partition, view, records, !lostAnswer);
      if (!lostAnswer) return result;
      this.counts.lostAnswers++;
      throw new TransientError("connection lost while committing (committed)", "database");
    });
  }

  /** apply-chunk.ts's steps, each query answered from memory; one atomic step, as one transaction. */
  private applyNow(
    partition: number,
    view: PartitionState,
    records: DecodedRecord[],
    answered: boolean,
  ): ChunkResult {
    const expected = view.nextOffset;
    if (expected === null) throw new Error("the partition's stored offset is loaded before a chunk");
    const tokenIds = records.flatMap((r) => (r.decoded.ok ? [r.decoded.event.token_id] : []));
    this.loadTokens(view, partition, view.missing(tokenIds));
    let appliedIds = new Set<string>();
    const routing = (): PlanRouting => ({
      partition,
      partitionOfKey: this.settings.partitionOfKey,
      homeOf: (id) => view.homeOf(id),
      archivedDays: new Set(),
    });
    const planOnce = () =>
      planChunk(records, (id) => view.stateOf(id), appliedIds, this.settings.window, routing());
    let planned = planOnce();
    appliedIds = this.appliedAmong(planned.duplicateCandidates);
    if (appliedIds.size > 0) planned = planOnce();
    for (let replan = 0; ; replan++) {
      try {
        this.write(
          partition,
          expected,
          planned,
          records.map((r) => r.offset),
        );
        if (!answered) return { plan: planned, phaseMs: zeroPhases };
        for (const change of planned.tokenChanges.values()) view.remember(change.tokenId, change.state);
        view.nextOffset = planned.nextOffset;
        view.evictOver(new Set(tokenIds));
        return { plan: planned, phaseMs: zeroPhases };
      } catch (error) {
        if (replan >= replansMax) throw error;
        if (error instanceof DuplicateTransferIdError) {
          const ledgerIds = planned.ledger.map((row) => row.event.transfer_id.toLowerCase());
          appliedIds = new Set([...appliedIds, ...this.appliedAmong(ledgerIds)]);
        } else if (error instanceof TokenElsewhereError) {
          this.loadTokens(view, partition, error.tokenIds);
        } else {
          throw error;
        }
        planned = planOnce();
      }
    }
  }

  private loadTokens(view: PartitionState, partition: number, tokenIds: readonly string[]): void {
    for (const id of tokenIds) view.remember(id, null);
    for (const id of tokenIds) {
      const row = this.tokens.get(id);
      if (row === undefined) continue;
      if (row.partition === partition) view.remember(id, row.state);
      else view.rememberForeign(id, row.partition);
    }
  }

  private appliedAmong(ids: readonly string[]): Set<string> {
    return new Set(ids.map((id) => id.toLowerCase()).filter((id) => this.transferIds.has(id)));
  }

  /** write.ts's transaction: the offsets compare-and-set first, then every check, then every change. */
  private write(partition: number, expected: bigint, plan: ChunkPlan, offsets: readonly bigint[]): void {
    const row = this.rows.get(partition);
    if (row === undefined || row.nextOffset !== expected) {
      this.counts.fences++;
      throw new OffsetFenceError(`partition ${partition} is no longer at offset ${expected}`);
    }
    if (plan.ledger.some((l) => this.transferIds.has(l.event.transfer_id.toLowerCase())))
      throw new DuplicateTransferIdError("a transfer id was applied before");
    const changes = [...plan.tokenChanges.values()];
    if (changes.some((c) => c.existedBefore && !this.tokens.has(c.tokenId)))
      throw new OffsetFenceError("token states differ from what this member holds");
    const elsewhere = changes.filter((c) => !c.existedBefore && this.tokens.has(c.tokenId));
    if (elsewhere.length > 0) throw new TokenElsewhereError(elsewhere.map((c) => c.tokenId));
    row.nextOffset = plan.nextOffset;
    for (const l of plan.ledger) this.transferIds.add(l.event.transfer_id.toLowerCase());
    for (const c of changes) {
      const home = c.existedBefore ? this.tokens.get(c.tokenId)!.partition : partition;
      this.tokens.set(c.tokenId, { state: c.state, partition: home });
    }
    this.recordOutcomes(partition, offsets, plan);
    this.counts.commits++;
  }

  private recordOutcomes(partition: number, offsets: readonly bigint[], plan: ChunkPlan): void {
    const byOffset = new Map<bigint, Outcome>();
    for (const l of plan.ledger)
      byOffset.set(l.offset, {
        offset: l.offset,
        outcome: "applied",
        detail: l.event.transfer_id.toLowerCase(),
      });
    for (const r of plan.rejections)
      byOffset.set(r.offset, { offset: r.offset, outcome: "rejected", detail: r.reason });
    const list = this.outcomes.get(partition) ?? [];
    this.outcomes.set(partition, list);
    // Every record the chunk held has one outcome; the others of the plan's records were duplicates.
    for (const offset of offsets)
      list.push(byOffset.get(offset) ?? { offset, outcome: "duplicate", detail: "" });
  }

  private maybeFail(what: string): void {
    if (this.prng.chance(this.faults.transientChance))
      throw new TransientError(`${what}: connection refused`, "database");
  }

  /** Settles now (in a microtask), or holds the answer until the simulation releases it. */
  maybeHold<T>(what: string, settle: () => T): Promise<T> {
    if (!this.prng.chance(this.faults.holdChance)) return Promise.resolve().then(settle);
    return new Promise<T>((resolve, reject) => {
      this.held.push({
        what,
        release: (fault) => {
          if (fault === "transient") reject(new TransientError(`${what}: connection reset`, "database"));
          else {
            try {
              resolve(settle());
            } catch (error) {
              reject(error);
            }
          }
        },
      });
    });
  }
}
