import { describe, expect, it } from "vitest";
import type { TransferEvent } from "../../services/common/event.ts";
import { chunked, userTransfer } from "../../tools/bench/loads.ts";
import { createLoad, hotWalletIndex, type LoadOptions, walletName } from "../../tools/load/load.ts";

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

/**
 * Counted from the events alone, by rules of their own: a duplicate repeats a transfer id seen
 * before; a double spend starts from a state its token has already left; every other event must
 * come from the token's owner. Independent of the generator's own counters.
 */
function countsOf(events: TransferEvent[]) {
  const seen = new Set<string>();
  const tokens = new Map<string, { owner: string | null; state: string }>();
  const counts = { duplicates: 0, doubleSpends: 0, notFromOwner: 0, toSender: 0 };
  for (const e of events) {
    if (seen.has(e.transfer_id)) {
      counts.duplicates += 1;
      continue;
    }
    seen.add(e.transfer_id);
    if (e.from_wallet === e.to_wallet) counts.toSender += 1;
    const token = tokens.get(e.token_id);
    if (token !== undefined && e.prev_state !== token.state) {
      counts.doubleSpends += 1;
      continue;
    }
    if (token !== undefined && e.from_wallet !== token.owner) counts.notFromOwner += 1;
    tokens.set(e.token_id, { owner: e.to_wallet, state: e.next_state });
  }
  return counts;
}

describe("the load generator's hot wallet", () => {
  it("given hotWalletShare 0, when generated, then the hot wallet gets an ordinary wallet's share of the moves", () => {
    // Each move touches two of the 200 wallets: an ordinary wallet is in about 2 / 200 = 1 % of them.
    const share = hotShareOfMoves(all({ ...base, hotWalletShare: 0 }));
    expect(share).toBeGreaterThan(0.005);
    expect(share).toBeLessThan(0.015);
  });

  it("given hotWalletShare 0.8, when generated, then about 80 % of the moves touch the hot wallet", () => {
    const events = all({ ...base, hotWalletShare: 0.8 });
    expect(hotShareOfMoves(events)).toBeGreaterThan(0.77);
    expect(hotShareOfMoves(events)).toBeLessThan(0.84);
  });

  it("given hotWalletShare 0.8, when the events are counted on their own, then 1 % are duplicates, 0.5 % double spends, and every move is its owner's to another wallet", () => {
    const events = all({ ...base, hotWalletShare: 0.8 });
    expect(countsOf(events)).toEqual({ duplicates: 200, doubleSpends: 100, notFromOwner: 0, toSender: 0 });
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
