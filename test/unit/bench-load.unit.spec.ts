import { describe, expect, it } from "vitest";
import { chunked, userTransfer } from "../../services/bench/loads.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { createLoad, hotWalletIndex, type LoadOptions, walletName } from "../../services/producer/load.ts";

const base: LoadOptions = {
  events: 20_000,
  tokens: 1_000,
  wallets: 200,
  duplicateRate: 0.01,
  doubleSpendRate: 0.005,
  seed: 42,
  nowMs: 1_750_000_000_000,
};
const all = (options: LoadOptions) => [...createLoad(options).events()];

function hotShareOfMoves(events: TransferEvent[]): number {
  const hot = walletName(hotWalletIndex);
  const moves = events.filter((e) => e.from_wallet !== null && e.to_wallet !== null);
  return moves.filter((e) => e.from_wallet === hot || e.to_wallet === hot).length / moves.length;
}

describe("the load generator's hot wallet", () => {
  it("given hotWalletShare 0, when generated, then the events are those of the options without it", () => {
    expect(all({ ...base, hotWalletShare: 0 })).toEqual(all(base));
  });

  it("given hotWalletShare 0.8, when generated twice, then about 80 % of the moves touch the hot wallet, the same events each time", () => {
    const events = all({ ...base, hotWalletShare: 0.8 });
    expect(hotShareOfMoves(events)).toBeGreaterThan(0.77);
    expect(hotShareOfMoves(events)).toBeLessThan(0.84);
    expect(hotShareOfMoves(all(base))).toBeLessThan(0.05);
    expect(all({ ...base, hotWalletShare: 0.8 })).toEqual(events);
  });

  it("given hotWalletShare 0.8, when generated, then the stated counts hold and no move goes to its sender", () => {
    const run = createLoad({ ...base, hotWalletShare: 0.8 });
    const events = [...run.events()];
    expect(events.every((e) => e.from_wallet !== e.to_wallet)).toBe(true);
    expect(run.outcome.duplicates).toBe(200);
    expect(run.outcome.rejected.state_conflict).toBe(100);
  });

  it("given a share above 1 or too few wallets, when created, then it is refused", () => {
    expect(() => createLoad({ ...base, hotWalletShare: 1.5 })).toThrow(/hotWalletShare/);
    expect(() => createLoad({ ...base, wallets: 2, hotWalletShare: 0.5 })).toThrow(/3 wallets/);
  });
});

describe("the user-level transfer shape", () => {
  it("given 1,000 moves, when built, then one batch_id moves every minted token from one wallet to another", () => {
    const shape = userTransfer("x", 1_000, 7, 1_750_000_000_000);
    expect(shape.mints).toHaveLength(1_000);
    expect(new Set(shape.moves.map((m) => m.batch_id))).toEqual(new Set([shape.batchId]));
    expect(shape.moves.every((m, k) => m.prev_state === shape.mints[k]!.next_state)).toBe(true);
    expect(shape.moves.reduce((sum, m) => sum + m.amount, 0n)).toBe(shape.totalAmount);
    expect(new Set([...shape.mints, ...shape.moves].map((e) => e.transfer_id)).size).toBe(2_000);
  });

  it("given items, when chunked, then the chunks are bounded and concatenate to the items", () => {
    const chunks = [...chunked([1, 2, 3, 4, 5], 2)];
    expect(chunks).toEqual([[1, 2], [3, 4], [5]]);
  });
});
