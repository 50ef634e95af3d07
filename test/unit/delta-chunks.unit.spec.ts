// The text form of one chunk's balance deltas (services/storage/delta-chunks.ts): what the applier
// writes to balance_delta_chunks.entries and the projector parses back, exactly.
// Runs and seed: test/support/arbitraries.ts (TALLY_TEST_FUZZ_RUNS, TALLY_TEST_FUZZ_SEED, make fuzz).
import { describe, expect, it } from "vitest";
import { amountMax } from "../../services/common/event.ts";
import {
  type ChunkEntries,
  decodeDeltaChunk,
  encodeDeltaChunk,
} from "../../services/storage/delta-chunks.ts";
import { asset, checkProperty, fc, fuzzRuns, fuzzTimeoutMs, wallet } from "../support/arbitraries.ts";

const file = "test/unit/delta-chunks.unit.spec.ts";
const runs = fuzzRuns(300);

type Supply = { minted: bigint; burned: bigint };
const balancesOf = (entries: [string, string, bigint][]) => {
  const out = new Map<string, Map<string, bigint>>();
  for (const [who, code, delta] of entries) {
    const perWallet = out.get(code) ?? new Map<string, bigint>();
    perWallet.set(who, delta);
    out.set(code, perWallet);
  }
  return out;
};

/** What the decoder must give back for maps: every non-zero wallet delta, every supply change. */
function expectedOf(balances: Map<string, Map<string, bigint>>, supply: Map<string, Supply>): ChunkEntries {
  const out: ChunkEntries = { balances: [], supply: [] };
  for (const [code, perWallet] of balances)
    for (const [who, delta] of perWallet)
      if (delta !== 0n) out.balances.push({ wallet: who, asset: code, delta });
  for (const [code, s] of supply) out.supply.push({ asset: code, ...s });
  return out;
}

describe("encodeDeltaChunk and decodeDeltaChunk", () => {
  it("given wallet deltas and supply changes, when encoded, then one line per entry, zero deltas left out", () => {
    const chunk = encodeDeltaChunk(
      balancesOf([
        ["alice", "USD", -5n],
        ["bob", "USD", 5n],
        ["carol", "USD", 0n],
      ]),
      new Map([["USD", { minted: 7n, burned: 0n }]]),
    );
    expect(chunk).toEqual({ entryCount: 3, entries: "alice\tUSD\t-5\nbob\tUSD\t5\n\tUSD\t7\t0" });
  });

  it("given nothing that changes a balance, when encoded, then there are no entries", () => {
    expect(encodeDeltaChunk(balancesOf([["a", "USD", 0n]]), new Map())).toEqual({
      entryCount: 0,
      entries: "",
    });
  });

  it("given a wallet with a tab or a newline, when encoded, then the broken contract is caught", () => {
    for (const bad of ["a\tb", "a\nb", ""])
      expect(() => encodeDeltaChunk(balancesOf([[bad, "USD", 1n]]), new Map())).toThrow(/control characters/);
  });

  it("given an asset outside ^[A-Z0-9]{1,16}$, when encoded, then the broken contract is caught", () => {
    expect(() => encodeDeltaChunk(balancesOf([["a", "usd", 1n]]), new Map())).toThrow(/asset/);
    expect(() => encodeDeltaChunk(new Map(), new Map([["A\tB", { minted: 1n, burned: 0n }]]))).toThrow(
      /asset/,
    );
  });

  it("given amounts near 10^38 and sums past them, when round-tripped, then they come back exact", () => {
    const huge = 10n ** 38n - 1n;
    const balances = balancesOf([
      ["ünïcødé 💸", "USD", huge * 3n],
      ["bob", "USD", -huge * 3n],
    ]);
    const supply = new Map([["USD", { minted: huge * 2n, burned: huge }]]);
    const chunk = encodeDeltaChunk(balances, supply);
    expect(decodeDeltaChunk(chunk.entries, chunk.entryCount)).toEqual(expectedOf(balances, supply));
  });

  it("given an entry_count that differs from the lines, when decoded, then the row is refused", () => {
    expect(() => decodeDeltaChunk("a\tUSD\t1\nb\tUSD\t2", 1)).toThrow(/entry_count says 1/);
    expect(() => decodeDeltaChunk("", 1)).toThrow(/asset/);
  });

  it("given amounts that are not canonical decimals, when decoded, then the row is refused", () => {
    for (const bad of ["", " 1", "0x1", "+1", "1.0", "01", "-0", "1e3"])
      expect(() => decodeDeltaChunk(`a\tUSD\t${bad}`, 1), bad).toThrow(/decimal integer/);
  });

  it("given a malformed line, when decoded, then the row is refused", () => {
    expect(() => decodeDeltaChunk("a\tUSD\t1\t2", 1)).toThrow(/wallet, asset, delta/);
    expect(() => decodeDeltaChunk("\tUSD\t1", 1)).toThrow(/asset, minted, burned/);
    expect(() => decodeDeltaChunk("\tUSD\t-1\t0", 1)).toThrow(/not negative/);
  });

  it(
    "given random entries (non-ASCII wallets, negative and huge deltas), when encoded and decoded, then they come back exact",
    async () => {
      const delta = fc.oneof(
        fc.constantFrom(0n, 1n, -1n, amountMax, -amountMax, amountMax * 1000n, -(amountMax * 1000n)),
        fc.bigInt({ min: -(amountMax * 10n), max: amountMax * 10n }),
      );
      const supplyChange = fc.record({
        minted: fc.bigInt({ min: 0n, max: amountMax * 10n }),
        burned: fc.bigInt({ min: 0n, max: amountMax * 10n }),
      });
      const input = fc.record({
        balances: fc.array(fc.tuple(wallet, asset, delta), { maxLength: 40 }),
        supply: fc.array(fc.tuple(asset, supplyChange), { maxLength: 5 }),
      });
      await checkProperty(
        fc.property(input, ({ balances: entries, supply: changes }) => {
          const balances = balancesOf(entries);
          const supply = new Map(changes);
          const chunk = encodeDeltaChunk(balances, supply);
          const expected = expectedOf(balances, supply);
          expect(chunk.entryCount).toBe(expected.balances.length + expected.supply.length);
          if (chunk.entryCount === 0) return;
          expect(decodeDeltaChunk(chunk.entries, chunk.entryCount)).toEqual(expected);
        }),
        { runs, file, name: "round trip" },
      );
    },
    fuzzTimeoutMs(runs, 2),
  );
});
