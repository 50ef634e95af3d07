// A deterministic synthetic load: mints, chains of moves between wallets (some grouped under one
// batch_id), burns, exact duplicates and double spends. Pure: no I/O, no clock, no Math.random, so a
// seed and the options reproduce the same events byte for byte. Memory is O(tokens + wallets), not
// O(events): events are yielded one at a time (or in bounded chunks).
import { assert } from "../../services/common/assert.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import {
  emptyOutcome,
  type LoadOptions,
  type LoadOutcome,
  loadOptionsProblems,
  loadSpanMsDefault,
} from "./load-options.ts";
import {
  amountOf,
  assetOf,
  createRandom,
  hex,
  loadAssets,
  type Random,
  tokenName,
  uuidOf,
  walletName,
} from "./load-values.ts";

export {
  type LoadOptions,
  type LoadOutcome,
  loadEventsMax,
  loadOptionsProblems,
  loadSpanMsDefault,
  loadTokensMax,
  loadWalletsMax,
} from "./load-options.ts";
export { loadAssets, walletName };

/** The wallet `hotWalletShare` concentrates moves on. */
export const hotWalletIndex = 0;
const batchTokensMax = 4;
// Duplicates are drawn from the most recent applied events: retries in practice are recent, and a
// fixed ring keeps memory bounded whatever the event count.
const recentEventsMax = 4096;
// A double spend needs a token that has moved at least once; a bounded search, then defer.
const doubleSpendAttemptsMax = 16;

const tokenAlive = 1;
const tokenBurned = 2;

type Planned = { event: TransferEvent; kind: "mint" | "move" | "burn" | "duplicate" | "double_spend" };

/**
 * One run of the load. `events()` (or `chunks()`) may be iterated once; `outcome` counts what has
 * been yielded so far, so after the last event it is what a correct pipeline must report.
 */
export class LoadRun {
  readonly options: Required<LoadOptions>;
  readonly runTag: string;
  private readonly random: Random;
  private readonly counts = emptyOutcome();
  private started = false;
  private idCounter = 0;
  private duplicatesLeft: number;
  private doubleSpendsLeft: number;
  private mintsLeft: number;
  private mintedCount = 0;
  private readonly pending: Planned[] = [];
  private readonly recent: TransferEvent[] = [];
  private recentNext = 0;
  // Token state, indexed by token number.
  private readonly status: Uint8Array;
  private readonly owner: Int32Array;
  private readonly value: bigint[];
  private readonly asset: string[];
  private readonly state: string[];
  private readonly spentState: (string | null)[];
  private readonly alive: Int32Array;
  private readonly alivePosition: Int32Array;
  private aliveCount = 0;
  private readonly ownedBy: (number[] | undefined)[];
  private readonly ownedPosition: Int32Array;

  constructor(options: LoadOptions) {
    const problems = loadOptionsProblems(options);
    if (problems.length > 0) throw new RangeError(`load options: ${problems.join("; ")}`);
    this.options = {
      spanMs: loadSpanMsDefault,
      burnRate: 0.01,
      batchRate: 0.1,
      hotWalletShare: 0,
      ...options,
    };
    this.random = createRandom(options.seed);
    this.runTag = hex(this.random.uint32(), 8);
    const { events, tokens } = options;
    this.duplicatesLeft = Math.round(events * options.duplicateRate);
    this.doubleSpendsLeft = Math.round(events * options.doubleSpendRate);
    this.mintsLeft = Math.min(tokens, events - this.duplicatesLeft - this.doubleSpendsLeft);
    this.status = new Uint8Array(tokens);
    this.owner = new Int32Array(tokens).fill(-1);
    this.value = new Array<bigint>(tokens);
    this.asset = new Array<string>(tokens);
    this.state = new Array<string>(tokens);
    this.spentState = new Array<string | null>(tokens).fill(null);
    this.alive = new Int32Array(tokens);
    this.alivePosition = new Int32Array(tokens).fill(-1);
    this.ownedBy = new Array<number[] | undefined>(options.wallets);
    this.ownedPosition = new Int32Array(tokens).fill(-1);
  }

  /** What the yielded events must produce downstream; final once iteration has ended. */
  get outcome(): LoadOutcome {
    const c = this.counts;
    return {
      ...c,
      rejected: { ...c.rejected },
      mintedByAsset: { ...c.mintedByAsset },
      burnedByAsset: { ...c.burnedByAsset },
    };
  }

  *events(): Generator<TransferEvent, LoadOutcome> {
    assert(!this.started, "a LoadRun is iterated once");
    this.started = true;
    while (this.counts.events < this.options.events) yield this.emit(this.plan());
    assert(this.pending.length === 0, "no planned event is left behind");
    return this.outcome;
  }

  /** The same events in arrays of at most `eventsMax`: one chunk in memory at a time. */
  *chunks(eventsMax: number): Generator<TransferEvent[], LoadOutcome> {
    assert(Number.isSafeInteger(eventsMax) && eventsMax >= 1, "chunk size is a positive integer");
    let chunk: TransferEvent[] = [];
    for (const event of this.events()) {
      chunk.push(event);
      if (chunk.length === eventsMax) {
        yield chunk;
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk;
    return this.outcome;
  }

  /** (wallet → asset → balance) of the tokens alive now: the views after a complete run. */
  balances(): Map<string, Map<string, bigint>> {
    const result = new Map<string, Map<string, bigint>>();
    for (let k = 0; k < this.aliveCount; k++) {
      const token = this.alive[k]!;
      const wallet = walletName(this.owner[token]!);
      const perAsset = result.get(wallet) ?? new Map<string, bigint>();
      const asset = this.asset[token]!;
      perAsset.set(asset, (perAsset.get(asset) ?? 0n) + this.value[token]!);
      result.set(wallet, perAsset);
    }
    return result;
  }

  private emit(planned: Planned): TransferEvent {
    const c = this.counts;
    c.events += 1;
    const { event, kind } = planned;
    if (kind === "duplicate") c.duplicates += 1;
    else if (kind === "double_spend") c.rejected.state_conflict += 1;
    else {
      c.applied += 1;
      if (kind === "mint") {
        c.mints += 1;
        c.mintedByAsset[event.asset] = (c.mintedByAsset[event.asset] ?? 0n) + event.amount;
      } else if (kind === "burn") {
        c.burns += 1;
        c.burnedByAsset[event.asset] = (c.burnedByAsset[event.asset] ?? 0n) + event.amount;
      } else c.moves += 1;
      this.remember(event);
    }
    return event;
  }

  private remember(event: TransferEvent): void {
    if (this.recent.length < recentEventsMax) this.recent.push(event);
    else this.recent[this.recentNext] = event;
    this.recentNext = (this.recentNext + 1) % recentEventsMax;
  }

  private plan(): Planned {
    const next = this.pending.shift();
    if (next) return next;
    const eventsLeft = this.options.events - this.counts.events;
    // Selection sampling: each special kind is drawn with probability (left / events left), so the
    // run ends with exactly the stated count unless no candidate existed when one was drawn.
    const roll = this.random.float();
    const duplicateChance = this.duplicatesLeft / eventsLeft;
    if (roll < duplicateChance && this.recent.length > 0) {
      this.duplicatesLeft -= 1;
      const original = this.recent[this.random.below(this.recent.length)]!;
      return { event: { ...original }, kind: "duplicate" };
    }
    if (roll >= duplicateChance && roll < duplicateChance + this.doubleSpendsLeft / eventsLeft) {
      const doubleSpend = this.planDoubleSpend();
      if (doubleSpend) {
        this.doubleSpendsLeft -= 1;
        return doubleSpend;
      }
    }
    return this.planApplied(eventsLeft);
  }

  private planApplied(eventsLeft: number): Planned {
    const appliedLeft = Math.max(1, eventsLeft - this.duplicatesLeft - this.doubleSpendsLeft);
    // Burns never take the last alive token, so no token is alive only before the first mint.
    const mint =
      this.aliveCount === 0 || (this.mintsLeft > 0 && this.random.float() < this.mintsLeft / appliedLeft);
    if (mint) return this.planMint();
    const drawn = this.alive[this.random.below(this.aliveCount)]!;
    const { batchRate, burnRate, hotWalletShare } = this.options;
    const { token, to } = hotWalletShare > 0 ? this.hotMove(drawn) : { token: drawn, to: -1 };
    if (this.random.float() < batchRate) {
      const batch = this.planBatch(token, appliedLeft, to);
      if (batch) return batch;
    }
    if (this.aliveCount > 1 && this.random.float() < burnRate) {
      return { event: this.move(token, null, null), kind: "burn" };
    }
    const receiver = to >= 0 ? to : this.otherWallet(this.owner[token]!);
    return { event: this.move(token, receiver, null), kind: "move" };
  }

  /**
   * With a hot wallet: which token moves and to whom. A hot move sends the drawn token to the hot
   * wallet, or out of it when the hot wallet holds it; any other move takes a token held elsewhere
   * to a wallet that is not hot (a bounded search; if it finds none, the move is a hot one).
   */
  private hotMove(drawn: number): { token: number; to: number } {
    const hot = hotWalletIndex;
    const { wallets, hotWalletShare } = this.options;
    if (this.random.float() < hotWalletShare) {
      return { token: drawn, to: this.owner[drawn] === hot ? this.otherWallet(hot) : hot };
    }
    let token = drawn;
    for (let attempt = 0; attempt < doubleSpendAttemptsMax && this.owner[token] === hot; attempt++)
      token = this.alive[this.random.below(this.aliveCount)]!;
    const from = this.owner[token]!;
    if (from === hot) return { token, to: this.otherWallet(hot) };
    // A wallet that is neither the sender nor the hot one: draw among the other wallets - 2.
    let to = this.random.below(wallets - 2);
    for (const skipped of [Math.min(from, hot), Math.max(from, hot)]) if (to >= skipped) to += 1;
    return { token, to };
  }

  private occurredAtNow(): number {
    const { nowMs, spanMs, events } = this.options;
    // Monotone in emission order, so every token's own events are also in time order.
    return nowMs - spanMs + Math.floor((this.counts.events * spanMs) / events);
  }

  private newId(): string {
    const id = uuidOf(this.random, this.idCounter);
    this.idCounter += 1;
    return id;
  }

  private otherWallet(wallet: number): number {
    const { wallets } = this.options;
    return (wallet + 1 + this.random.below(wallets - 1)) % wallets;
  }

  private planMint(): Planned {
    const token = this.mintedCount;
    assert(token < this.options.tokens, "a mint has a token left to mint");
    this.mintedCount += 1;
    this.mintsLeft = Math.max(0, this.mintsLeft - 1);
    const transferId = this.newId();
    const wallet = this.random.below(this.options.wallets);
    const event: TransferEvent = {
      transfer_id: transferId,
      batch_id: null,
      token_id: tokenName(this.runTag, token),
      asset: assetOf(this.random),
      amount: amountOf(this.random, token),
      from_wallet: null,
      to_wallet: walletName(wallet),
      prev_state: null,
      next_state: `st-${transferId}`,
      occurred_at: this.occurredAtNow(),
    };
    this.status[token] = tokenAlive;
    this.value[token] = event.amount;
    this.asset[token] = event.asset;
    this.state[token] = event.next_state;
    this.alivePosition[token] = this.aliveCount;
    this.alive[this.aliveCount++] = token;
    this.own(token, wallet);
    return { event, kind: "mint" };
  }

  /** Moves (to a wallet) or burns (to null) an alive token, advancing its state chain. */
  private move(token: number, toWallet: number | null, batchId: string | null): TransferEvent {
    assert(this.status[token] === tokenAlive, "only an alive token moves");
    const from = this.owner[token]!;
    const transferId = this.newId();
    const event: TransferEvent = {
      transfer_id: transferId,
      batch_id: batchId,
      token_id: tokenName(this.runTag, token),
      asset: this.asset[token]!,
      amount: this.value[token]!,
      from_wallet: walletName(from),
      to_wallet: toWallet === null ? null : walletName(toWallet),
      prev_state: this.state[token]!,
      next_state: `st-${transferId}`,
      occurred_at: this.occurredAtNow(),
    };
    this.spentState[token] = this.state[token]!;
    this.state[token] = event.next_state;
    this.disown(token);
    if (toWallet === null) this.retire(token);
    else this.own(token, toWallet);
    return event;
  }

  /** Several tokens of one owner to one receiver under one batch_id, emitted back to back. */
  private planBatch(first: number, appliedLeft: number, receiver: number): Planned | null {
    const from = this.owner[first]!;
    const owned = this.ownedBy[from]!;
    const size = Math.min(2 + this.random.below(batchTokensMax - 1), owned.length, appliedLeft);
    if (size < 2) return null;
    const to = receiver >= 0 ? receiver : this.otherWallet(from);
    const batchId = this.newId();
    const start = this.ownedPosition[first]!;
    // Consecutive entries of the owner's list from `first`: distinct, and read before any move.
    const members = Array.from({ length: size }, (_, k) => owned[(start + k) % owned.length]!);
    for (const token of members) this.pending.push({ event: this.move(token, to, batchId), kind: "move" });
    this.counts.batches += 1;
    return this.pending.shift()!;
  }

  private planDoubleSpend(): Planned | null {
    for (let attempt = 0; attempt < doubleSpendAttemptsMax && this.aliveCount > 0; attempt++) {
      const token = this.alive[this.random.below(this.aliveCount)]!;
      const spent = this.spentState[token];
      if (spent === null || spent === undefined) continue;
      const owner = this.owner[token]!;
      const transferId = this.newId();
      // Owner, asset and amount all match: the spent prev_state is the only thing wrong, so the
      // reason is state_conflict whatever order the applier checks in.
      const event: TransferEvent = {
        transfer_id: transferId,
        batch_id: null,
        token_id: tokenName(this.runTag, token),
        asset: this.asset[token]!,
        amount: this.value[token]!,
        from_wallet: walletName(owner),
        to_wallet: walletName(this.otherWallet(owner)),
        prev_state: spent,
        next_state: `st-${transferId}`,
        occurred_at: this.occurredAtNow(),
      };
      return { event, kind: "double_spend" };
    }
    return null;
  }

  private own(token: number, wallet: number): void {
    const list = this.ownedBy[wallet] ?? [];
    this.ownedBy[wallet] = list;
    this.owner[token] = wallet;
    this.ownedPosition[token] = list.length;
    list.push(token);
  }

  private disown(token: number): void {
    const list = this.ownedBy[this.owner[token]!]!;
    const position = this.ownedPosition[token]!;
    const last = list.pop()!;
    if (last !== token) {
      list[position] = last;
      this.ownedPosition[last] = position;
    }
    this.ownedPosition[token] = -1;
  }

  private retire(token: number): void {
    const position = this.alivePosition[token]!;
    const last = this.alive[--this.aliveCount]!;
    this.alive[position] = last;
    this.alivePosition[last] = position;
    this.alivePosition[token] = -1;
    this.status[token] = tokenBurned;
    this.owner[token] = -1;
  }
}

export function createLoad(options: LoadOptions): LoadRun {
  return new LoadRun(options);
}

/** The outcome of a run, computed by generating it without keeping the events. */
export function expectedOutcome(options: LoadOptions): LoadOutcome {
  const run = new LoadRun(options);
  for (const _ of run.events());
  return run.outcome;
}
