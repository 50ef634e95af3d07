import { isDeepStrictEqual } from "node:util";
import { afterEach, describe, expect, it, vi } from "vitest";
import { amountMax, eventProblems, type TransferEvent } from "../../services/common/event.ts";
import { createLoad, expectedOutcome, type LoadOptions, type LoadOutcome } from "../../tools/load/load.ts";

const nowMs = Date.UTC(2026, 0, 15, 12, 0, 0);
const dayMs = 24 * 3600 * 1000;
const base: LoadOptions = {
  events: 20_000,
  tokens: 1_000,
  wallets: 200,
  duplicateRate: 0.02,
  doubleSpendRate: 0.01,
  seed: 42,
  nowMs,
};

const all = (options: LoadOptions): TransferEvent[] => [...createLoad(options).events()];

type TokenModel = {
  owner: string;
  state: string;
  asset: string;
  amount: bigint;
  spent: Set<string>;
  retired: boolean;
};

/**
 * An independent model of the applier's token rules: classifies each event as the pipeline must,
 * and fails on anything that is neither applied, a duplicate, nor a clean double spend.
 */
function replay(events: Iterable<TransferEvent>): LoadOutcome {
  const tokens = new Map<string, TokenModel>();
  const applied = new Map<string, TransferEvent>();
  const batchIds = new Set<string>();
  const outcome: LoadOutcome = {
    events: 0,
    applied: 0,
    duplicates: 0,
    rejected: { state_conflict: 0 },
    mints: 0,
    moves: 0,
    burns: 0,
    mintedByAsset: { USD: 0n, EUR: 0n, RBT: 0n },
    burnedByAsset: { USD: 0n, EUR: 0n, RBT: 0n },
    batches: 0,
  };
  for (const event of events) {
    outcome.events += 1;
    const earlier = applied.get(event.transfer_id);
    if (earlier) {
      check(isDeepStrictEqual(event, earlier), "a duplicate repeats its original exactly", event);
      outcome.duplicates += 1;
      continue;
    }
    const token = tokens.get(event.token_id);
    if (event.from_wallet === null) {
      check(
        token === undefined && event.prev_state === null,
        "a mint is of an unknown token, from no state",
        event,
      );
      tokens.set(event.token_id, {
        owner: event.to_wallet!,
        state: event.next_state,
        asset: event.asset,
        amount: event.amount,
        spent: new Set(),
        retired: false,
      });
      outcome.mints += 1;
      outcome.mintedByAsset[event.asset]! += event.amount;
    } else {
      check(token !== undefined && !token.retired, "a move is of a known, unretired token", event);
      check(event.from_wallet === token.owner, "a move comes from the owner", event);
      check(
        event.amount === token.amount && event.asset === token.asset,
        "a move keeps value and asset",
        event,
      );
      if (event.prev_state !== token.state) {
        check(
          token.spent.has(event.prev_state!),
          "a stale move reuses a spent state (a double spend)",
          event,
        );
        outcome.rejected.state_conflict += 1;
        continue;
      }
      token.spent.add(token.state);
      token.state = event.next_state;
      if (event.to_wallet === null) {
        token.retired = true;
        outcome.burns += 1;
        outcome.burnedByAsset[event.asset]! += event.amount;
      } else {
        token.owner = event.to_wallet;
        outcome.moves += 1;
      }
    }
    outcome.applied += 1;
    applied.set(event.transfer_id, event);
    if (event.batch_id !== null) batchIds.add(event.batch_id);
  }
  // A batch is a user-level transfer of two or more tokens: every batch id the model saw applied.
  outcome.batches = batchIds.size;
  return outcome;
}

/** A plain check: `expect` on each of 20,000 events costs seconds on a loaded machine. */
function check(condition: boolean, rule: string, event: TransferEvent): asserts condition {
  if (!condition) throw new Error(`${rule}: broken by ${event.transfer_id} (token ${event.token_id})`);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("the load generator", () => {
  it("given the same seed, when generated under a different clock and Math.random each time, then the events are identical", () => {
    // Two runs agree only if nothing but the seed and the options feeds them: each run sees its
    // own Date.now, performance.now and Math.random, so a generator reading any of them differs.
    const under = (clockMs: number, random: number) => {
      vi.spyOn(Date, "now").mockReturnValue(clockMs);
      vi.spyOn(performance, "now").mockReturnValue(clockMs);
      vi.spyOn(Math, "random").mockReturnValue(random);
      const events = all({ ...base, events: 2_000 });
      vi.restoreAllMocks();
      return events;
    };
    const first = under(nowMs, 0.1);
    const second = under(nowMs + 7 * dayMs + 12_345, 0.9);
    // The first event that differs, not a diff of 2,000 events (which takes a minute to print).
    expect(second).toHaveLength(first.length);
    expect(first.findIndex((event, k) => !isDeepStrictEqual(event, second[k]))).toBe(-1);
  });

  it("given another seed, when generated, then the events differ", () => {
    const [a, b] = [all({ ...base, events: 100 }), all({ ...base, events: 100, seed: 43 })];
    expect(a.map((e) => e.transfer_id)).not.toEqual(b.map((e) => e.transfer_id));
  });

  it("given a run, when replayed through an independent token model, then every chain is valid in order and the counts match", () => {
    const run = createLoad(base);
    const replayed = replay(run.events());
    expect(run.outcome).toEqual(replayed);
    // expectedOutcome counts without keeping the events: judged by the model too, not by a run.
    expect(expectedOutcome(base)).toEqual(replayed);
  });

  it("given rates, when generated, then the duplicates and double spends are exactly the stated counts", () => {
    // Counted by the model from the events, against counts written from the rates: 5 % and 2 % of 20,000.
    const outcome = replay(createLoad({ ...base, duplicateRate: 0.05, doubleSpendRate: 0.02 }).events());
    expect(outcome.events).toBe(20_000);
    expect(outcome.duplicates).toBe(1_000);
    expect(outcome.rejected.state_conflict).toBe(400);
    expect(outcome.applied).toBe(20_000 - 1_000 - 400);
    expect(outcome.applied).toBe(outcome.mints + outcome.moves + outcome.burns);
    expect(outcome.mints).toBe(1_000);
    expect(outcome.burns).toBeGreaterThan(0);
    expect(outcome.batches).toBeGreaterThan(0);
  });

  it("given zero rates, when generated, then every event is applied", () => {
    const outcome = replay(createLoad({ ...base, duplicateRate: 0, doubleSpendRate: 0 }).events());
    expect(outcome).toMatchObject({ applied: 20_000, duplicates: 0, rejected: { state_conflict: 0 } });
  });

  it("given a run, when the events are checked, then every one is well-formed and the text fields exercise escaping", () => {
    const events = all(base);
    expect(events.filter((e) => eventProblems(e).length > 0)).toEqual([]);
    const wallets = new Set(events.flatMap((e) => [e.from_wallet, e.to_wallet]).filter((w) => w !== null));
    const some = (pattern: RegExp) => [...wallets].some((w) => pattern.test(w));
    expect(some(/кошелёк/)).toBe(true);
    expect(some(/財布/)).toBe(true);
    expect(some(/"/)).toBe(true);
    expect(some(/\\/)).toBe(true);
    expect(some(/,/)).toBe(true);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
    expect(some(/[\u0000-\u001f]/)).toBe(false);
    expect(events.some((e) => /[^\x20-\x7e]/.test(e.token_id))).toBe(true);
  });

  it("given a run, when the amounts are read, then they are bigints, some above 2^63, one at 10^38-1, and the books balance", () => {
    const run = createLoad(base);
    const events = [...run.events()];
    expect(events.every((e) => typeof e.amount === "bigint" && e.amount > 0n && e.amount <= amountMax)).toBe(
      true,
    );
    expect(events.some((e) => e.amount > 2n ** 63n && e.amount < amountMax)).toBe(true);
    expect(events.some((e) => e.amount === amountMax)).toBe(true);
    const held = new Map<string, bigint>();
    for (const perAsset of run.balances().values())
      for (const [asset, balance] of perAsset) held.set(asset, (held.get(asset) ?? 0n) + balance);
    const { mintedByAsset, burnedByAsset } = run.outcome;
    for (const asset of ["USD", "EUR", "RBT"])
      expect(held.get(asset) ?? 0n).toBe(mintedByAsset[asset]! - burnedByAsset[asset]!);
  });

  it("given a run, when the times are read, then they lie in the last two days and never go back for a token", () => {
    const seen = new Set<string>();
    const lastMs = new Map<string, number>();
    const outside: string[] = [];
    const backwards: string[] = [];
    for (const e of all(base)) {
      if (e.occurred_at < nowMs - 2 * dayMs || e.occurred_at > nowMs) outside.push(e.transfer_id);
      if (seen.has(e.transfer_id)) continue; // an exact duplicate keeps its original time
      seen.add(e.transfer_id);
      if (e.occurred_at < (lastMs.get(e.token_id) ?? 0)) backwards.push(e.transfer_id);
      lastMs.set(e.token_id, e.occurred_at);
    }
    expect({ outside, backwards }).toEqual({ outside: [], backwards: [] });
  });

  it("given batch ids, when grouped, then each batch moves distinct tokens from one wallet to one wallet", () => {
    const byBatch = new Map<string, TransferEvent[]>();
    for (const e of all({ ...base, duplicateRate: 0, doubleSpendRate: 0 }))
      if (e.batch_id !== null) byBatch.set(e.batch_id, [...(byBatch.get(e.batch_id) ?? []), e]);
    expect(byBatch.size).toBeGreaterThan(0);
    for (const members of byBatch.values()) {
      expect(members.length).toBeGreaterThanOrEqual(2);
      expect(new Set(members.map((e) => e.token_id)).size).toBe(members.length);
      expect(new Set(members.map((e) => e.from_wallet)).size).toBe(1);
      expect(new Set(members.map((e) => e.to_wallet)).size).toBe(1);
    }
  });

  it("given a billion events, when the first chunk is taken, then it comes at once and is bounded (a stream, not an array)", () => {
    const run = createLoad({ ...base, events: 1_000_000_000 });
    const first = run.chunks(500).next();
    expect(first.done).toBe(false);
    expect(first.value).toHaveLength(500);
    expect(run.outcome.events).toBe(500);
  });

  it("given chunks, when concatenated, then they are the events in the same order", () => {
    const chunks = [...createLoad({ ...base, events: 1_234 }).chunks(100)];
    expect(chunks.map((c) => c.length)).toEqual([...Array(12).fill(100), 34]);
    expect(chunks.flat()).toEqual(all({ ...base, events: 1_234 }));
  });

  it.each([
    [{ wallets: 1 }, "wallets must be a whole number from 2"],
    [{ events: 0 }, "events must be a whole number from 1"],
    [{ duplicateRate: 0.6 }, "duplicateRate must be a number from 0 to 0.5"],
    [{ duplicateRate: 0.3, doubleSpendRate: 0.3 }, "duplicateRate + doubleSpendRate must be at most 0.5"],
  ])(
    "given bad options %o, when a load is created, then it is refused with a clear message",
    (bad, message) => {
      expect(() => createLoad({ ...base, ...bad })).toThrow(message);
    },
  );
});
