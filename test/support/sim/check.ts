// The simulation's checks. After every step: for every partition, the store's outcomes (ledger rows,
// duplicates, rejections) equal the model folded over the records of the incarnation its stored
// offsets belong to, from the row's first offset up to its stored offset, one outcome per record
// (no skip, nothing twice); the token states equal the model's (no double spend); no transfer id is
// applied twice. At the end: every partition caught up, or the topic was re-created under stored
// offsets and the members stopped on an IncarnationError.
import type { TokenState } from "../../../services/applier/decide.ts";
import type { SimLog } from "./log.ts";
import { type ModelRules, type Outcome, outcomeText, PartitionModel } from "./model.ts";
import type { SimStore } from "./store.ts";

type Fold = { model: PartitionModel; nextRecord: number };

export class Checker {
  private readonly folds = new Map<string, Fold>();
  private readonly verified = new Map<number, number>();
  private readonly log: SimLog;
  private readonly store: SimStore;
  private readonly rules: ModelRules;

  constructor(log: SimLog, store: SimStore, rules: ModelRules) {
    this.log = log;
    this.store = store;
    this.rules = rules;
  }

  /** The first rule broken now, or null. */
  afterStep(): string | null {
    let applied = 0;
    for (let p = 0; p < this.log.partitionCount; p++) {
      const problem = this.checkPartition(p);
      if (problem !== null) return `partition ${p}: ${problem}`;
      applied += (this.store.outcomes.get(p) ?? []).filter((o) => o.outcome === "applied").length;
    }
    if (applied !== this.store.transferIds.size)
      return `${applied} records applied but ${this.store.transferIds.size} transfer ids stored`;
    return null;
  }

  private checkPartition(p: number): string | null {
    const row = this.store.rows.get(p);
    const outcomes = this.store.outcomes.get(p) ?? [];
    if (row === undefined) return outcomes.length === 0 ? null : "outcomes written without an offsets row";
    const incarnation = this.log.incarnationOf(row.topicId);
    if (incarnation === undefined) return `stored offsets bound to an unknown topic id ${row.topicId}`;
    const fold = this.foldOf(row.topicId!, p, row.firstOffset);
    const records = incarnation.partitions[p]!.records;
    while (fold.nextRecord < records.length && records[fold.nextRecord]!.offset < row.nextOffset) {
      fold.model.next(records[fold.nextRecord]!);
      fold.nextRecord++;
    }
    const expected = fold.model.outcomes;
    const from = this.verified.get(p) ?? 0;
    if (outcomes.length === from && expected.length === from) return null;
    for (let k = from; k < Math.max(outcomes.length, expected.length); k++) {
      const got = outcomes[k];
      const want = expected[k];
      if (got === undefined || want === undefined || !sameOutcome(got, want)) {
        return (
          `outcome #${k} below stored offset ${row.nextOffset} (topic id ${row.topicId}, first offset ` +
          `${row.firstOffset}): store has ${got ? outcomeText(got) : "nothing"}, model ${want ? outcomeText(want) : "nothing"}` +
          ` (store ${outcomes.length} outcomes, model ${expected.length}; around: store ${window(outcomes, k)}, model ${window(expected, k)})`
        );
      }
    }
    this.verified.set(p, outcomes.length);
    return this.checkTokens(p, fold.model);
  }

  private checkTokens(p: number, model: PartitionModel): string | null {
    let count = 0;
    for (const [id, token] of this.store.tokens) {
      if (token.partition !== p) continue;
      count++;
      const want = model.tokens.get(id);
      if (want === undefined || tokenText(want) !== tokenText(token.state))
        return `token ${id}: store ${tokenText(token.state)}, model ${want ? tokenText(want) : "none"}`;
    }
    if (count !== model.tokens.size) return `store holds ${count} tokens, model ${model.tokens.size}`;
    return null;
  }

  private foldOf(topicId: string, partition: number, firstOffset: bigint): Fold {
    const key = `${topicId}/${partition}/${firstOffset}`;
    let fold = this.folds.get(key);
    if (fold === undefined) {
      const records = this.log.incarnationOf(topicId)!.partitions[partition]!.records;
      let nextRecord = 0;
      while (nextRecord < records.length && records[nextRecord]!.offset < firstOffset) nextRecord++;
      fold = { model: new PartitionModel(partition, this.rules), nextRecord };
      this.folds.set(key, fold);
    }
    return fold;
  }

  /** Partitions whose stored offsets belong to a topic id that is not the topic's now. */
  boundElsewhere(): number[] {
    const current = this.log.current.topicId;
    return [...this.store.rows].filter(([, row]) => row.topicId !== current).map(([p]) => p);
  }

  /** Partitions with a record of the current topic at or above their stored offset (or no row). */
  behind(): number[] {
    const behind: number[] = [];
    for (let p = 0; p < this.log.partitionCount; p++) {
      const row = this.store.rows.get(p);
      const records = this.log.current.partitions[p]!.records;
      const last = records[records.length - 1];
      if (last === undefined) continue;
      if (row === undefined || row.nextOffset <= last.offset) behind.push(p);
    }
    return behind;
  }
}

const sameOutcome = (a: Outcome, b: Outcome) =>
  a.offset === b.offset && a.outcome === b.outcome && a.detail === b.detail;
const window = (list: Outcome[], k: number) =>
  list
    .slice(Math.max(0, k - 2), k + 3)
    .map(outcomeText)
    .join(" ");
const tokenText = (t: TokenState) =>
  `${t.asset} ${t.amount} owner ${t.owner} state ${t.state}${t.retired ? " retired" : ""}`;
