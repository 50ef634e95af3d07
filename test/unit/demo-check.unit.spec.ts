// The check that makes `tally demo` fail: outcomes against what the load generator predicted.
import { describe, expect, it } from "vitest";
import { demoRunId, newestFirst } from "../../tools/demo/demo.ts";
import { balanceLinesMax, type DemoOutcome, outcomeDifferences } from "../../tools/demo/demo-check.ts";

const balances = (entries: [string, string, bigint][]): DemoOutcome["balances"] => {
  const result: DemoOutcome["balances"] = new Map();
  for (const [wallet, asset, balance] of entries) {
    const perAsset = result.get(wallet) ?? new Map<string, bigint>();
    perAsset.set(asset, balance);
    result.set(wallet, perAsset);
  }
  return result;
};

/** The outcome the generator predicts for the full demo: 200,000 events. */
const expected = (): DemoOutcome => ({
  applied: 197_000n,
  duplicates: 2_000n,
  rejected: 1_000n,
  rejectedByReason: { state_conflict: 1_000n },
  balances: balances([
    ["w-1", "USD", 2_500n],
    ["w-2", "USD", 1_000n],
    ["w-2", "RBT", 7n],
  ]),
  supply: { USD: 3_500n, RBT: 7n },
});

describe("outcomeDifferences", () => {
  it("given the outcome the generator predicted, when compared, then no line differs", () => {
    expect(outcomeDifferences(expected(), expected())).toEqual([]);
  });

  it("given the silent skip of issue 11 (applied 0 against 197000, everything else empty), when compared, then it fails naming each outcome", () => {
    const skipped: DemoOutcome = {
      applied: 0n,
      duplicates: 0n,
      rejected: 0n,
      rejectedByReason: {},
      balances: new Map(),
      supply: {},
    };
    const lines = outcomeDifferences(expected(), skipped);
    expect(lines[0]).toBe("applied 0 vs expected 197000");
    expect(lines).toEqual(
      expect.arrayContaining([
        "duplicates 0 vs expected 2000",
        "rejected 0 vs expected 1000",
        "rejected state_conflict 0 vs expected 1000",
        "supply of USD 0 vs expected 3500",
        "balance of w-1 in USD 0 vs expected 2500",
      ]),
    );
  });

  it("given only applied short by one, when compared, then exactly that line", () => {
    expect(outcomeDifferences(expected(), { ...expected(), applied: 196_999n })).toEqual([
      "applied 196999 vs expected 197000",
    ]);
  });

  it("given a transfer counted twice (one duplicate too few, one applied too many), when compared, then both lines", () => {
    expect(outcomeDifferences(expected(), { ...expected(), applied: 197_001n, duplicates: 1_999n })).toEqual([
      "applied 197001 vs expected 197000",
      "duplicates 1999 vs expected 2000",
    ]);
  });

  it("given counts that agree but one balance moved to another wallet, when compared, then the two balances differ", () => {
    const actual = {
      ...expected(),
      balances: balances([
        ["w-1", "USD", 1_500n],
        ["w-2", "USD", 2_000n],
        ["w-2", "RBT", 7n],
      ]),
    };
    expect(outcomeDifferences(expected(), actual)).toEqual([
      "balance of w-1 in USD 1500 vs expected 2500",
      "balance of w-2 in USD 2000 vs expected 1000",
    ]);
  });

  it("given a balance present only in the views, and a zero balance absent, when compared, then only the extra one differs", () => {
    const want = expected();
    want.balances.get("w-2")!.set("EUR", 0n);
    const actual = { ...expected(), balances: balances([...flat(expected()), ["w-9", "USD", 1n]]) };
    expect(outcomeDifferences(want, actual)).toEqual(["balance of w-9 in USD 1 vs expected 0"]);
  });

  it("given a rejection of a reason the load never makes, when compared, then that reason is named", () => {
    const actual = {
      ...expected(),
      applied: 196_999n,
      rejected: 1_001n,
      rejectedByReason: { state_conflict: 1_000n, unknown_token: 1n },
    };
    expect(outcomeDifferences(expected(), actual)).toEqual([
      "applied 196999 vs expected 197000",
      "rejected 1001 vs expected 1000",
      "rejected unknown_token 1 vs expected 0",
    ]);
  });

  it("given many balances that differ, when compared, then ten are listed and the rest counted", () => {
    const actual = {
      ...expected(),
      balances: balances([
        ...flat(expected()),
        ...Array.from({ length: 15 }, (_, k): [string, string, bigint] => [`x-${k}`, "USD", 1n]),
      ]),
    };
    const lines = outcomeDifferences(expected(), actual);
    expect(lines).toHaveLength(balanceLinesMax + 1);
    expect(lines.at(-1)).toBe("... and 5 more balances that differ");
  });

  it("given events resent after a failed send, when copies landed, then extra duplicates and rejections within that count pass", () => {
    const actual = {
      ...expected(),
      duplicates: 2_003n,
      rejected: 1_001n,
      rejectedByReason: { state_conflict: 1_001n },
    };
    expect(outcomeDifferences(expected(), actual, 4)).toEqual([]);
    expect(outcomeDifferences(expected(), actual, 3)).toEqual([
      "duplicates and rejected 4 over the expected, more than the 3 resent events",
    ]);
    expect(outcomeDifferences(expected(), actual)).toEqual([
      "duplicates 2003 vs expected 2000",
      "rejected 1001 vs expected 1000",
      "rejected state_conflict 1001 vs expected 1000",
    ]);
  });

  it("given events resent, when applied or duplicates fall short, then resending excuses nothing", () => {
    const actual = { ...expected(), applied: 0n, duplicates: 1_999n };
    expect(outcomeDifferences(expected(), actual, 1_000)).toEqual([
      "applied 0 vs expected 197000",
      "duplicates 1999 vs expected 2000 (up to 1000 more after resent events)",
    ]);
  });
});

describe("demo run ids", () => {
  it("given a start time, when named, then the run id is its UTC yyyymmddhhmmss, with _<n> when that second is taken", () => {
    const at = Date.UTC(2026, 10, 30, 4, 5, 6, 789);
    expect(demoRunId(at)).toBe("20261130040506");
    expect(demoRunId(at, ["20261130040506", "20261130040506_1"])).toBe("20261130040506_2");
    for (const id of [demoRunId(at), demoRunId(at, ["20261130040506"])])
      expect(`tally_demo_${id}_shard_63`).toMatch(/^[a-z_][a-z0-9_]{0,62}$/);
  });

  it("given run ids, when sorted, then newest first, runs of the same second by their number", () => {
    expect(
      newestFirst([
        "20261130040506",
        "20250101000000",
        "20261130040506_2",
        "20261130040506_1",
        "20261130040507",
      ]),
    ).toEqual(["20261130040507", "20261130040506_2", "20261130040506_1", "20261130040506", "20250101000000"]);
  });
});

function flat(outcome: DemoOutcome): [string, string, bigint][] {
  return [...outcome.balances].flatMap(([wallet, perAsset]) =>
    [...perAsset].map(([asset, b]): [string, string, bigint] => [wallet, asset, b]),
  );
}
