import { describe, expect, it } from "vitest";
import {
  aggregateDeltas,
  checkpointAfter,
  type DeltaRow,
  perPartitionLimit,
  takeWholeBatches,
} from "../../services/projector/aggregate.ts";
import { formatBalances } from "../../services/projector/balances.ts";

const wallet = (endOffset: bigint, who: string, asset: string, delta: bigint, partition = 0): DeltaRow => ({
  partition,
  endOffset,
  wallet: who,
  asset,
  delta,
  minted: 0n,
  burned: 0n,
});
const supply = (endOffset: bigint, asset: string, minted: bigint, burned: bigint): DeltaRow => ({
  partition: 0,
  endOffset,
  wallet: null,
  asset,
  delta: 0n,
  minted,
  burned,
});

describe("aggregateDeltas", () => {
  it("given deltas of several batches, when aggregated, then each (wallet, asset) gets their exact sum and zero sums drop out", () => {
    const huge = 10n ** 38n - 1n;
    const rows = [
      wallet(3n, "bob", "USD", huge),
      wallet(3n, "alice", "USD", 5n),
      wallet(7n, "bob", "USD", huge),
      wallet(7n, "alice", "USD", -5n),
      wallet(7n, "alice", "RBT", 2n),
    ];
    const projection = aggregateDeltas(rows);
    expect(projection.rows).toBe(5);
    expect(projection.balances).toEqual([
      { wallet: "alice", asset: "RBT", delta: 2n },
      { wallet: "bob", asset: "USD", delta: 2n * huge },
    ]);
  });

  it("given asset rows, when aggregated, then minted and burned add up per asset, sorted", () => {
    const projection = aggregateDeltas([
      supply(1n, "USD", 10n, 0n),
      supply(2n, "RBT", 1n, 0n),
      supply(4n, "USD", 0n, 3n),
    ]);
    expect(projection.supply).toEqual([
      { asset: "RBT", minted: 1n, burned: 0n },
      { asset: "USD", minted: 10n, burned: 3n },
    ]);
    expect(projection.balances).toEqual([]);
  });

  it("given a wallet row that carries supply, when aggregated, then it fails as a broken contract", () => {
    expect(() => aggregateDeltas([{ ...wallet(1n, "a", "USD", 1n), minted: 1n }])).toThrow(
      /carries no supply/,
    );
  });

  it("given wallet and asset names that look alike, when aggregated, then their keys stay apart", () => {
    const projection = aggregateDeltas([wallet(1n, "a,b", "C", 1n), wallet(1n, "a", "b,C", 2n)]);
    expect(projection.balances).toHaveLength(2);
  });
});

describe("takeWholeBatches", () => {
  const batch = (endOffset: bigint, rows: number) =>
    Array.from({ length: rows }, (_, i) => wallet(endOffset, `w${i}`, "USD", 1n));

  it("given no more rows than the bound, when taken, then all of them are", () => {
    const rows = [...batch(2n, 2), ...batch(5n, 1)];
    expect(takeWholeBatches(rows, 3)).toEqual({ kind: "all", rows });
  });

  it("given a batch cut by the bound, when taken, then that batch is left whole for the next round", () => {
    const rows = [...batch(2n, 2), ...batch(5n, 3)];
    const take = takeWholeBatches(rows, 3);
    expect(take).toEqual({ kind: "prefix", rows: rows.slice(0, 2), lastEndOffset: 2n });
  });

  it("given the bound ends exactly at a batch edge, when taken, then the whole batch before it is kept", () => {
    const rows = [...batch(2n, 2), ...batch(5n, 2)];
    const take = takeWholeBatches(rows, 2);
    expect(take).toEqual({ kind: "prefix", rows: rows.slice(0, 2), lastEndOffset: 2n });
  });

  it("given one batch larger than the bound, when taken, then it is named to be read whole", () => {
    expect(takeWholeBatches(batch(9n, 4), 3)).toEqual({ kind: "oversized", endOffset: 9n });
  });

  it("given rows out of order, when taken, then the contract breach is caught", () => {
    expect(() => takeWholeBatches([...batch(5n, 1), ...batch(2n, 1)], 3)).toThrow(/ordered/);
  });

  it("given a shard's bound and its partitions, when split, then each partition reads at least one row", () => {
    expect(perPartitionLimit(100, 3)).toBe(33);
    expect(perPartitionLimit(100, 1000)).toBe(1);
  });
});

describe("checkpointAfter", () => {
  it("given every pending row taken, when checkpointed, then it is the applier's next offset", () => {
    const take = { kind: "all" as const, rows: [wallet(4n, "a", "USD", 1n)] };
    expect(checkpointAfter({ partition: 0, checkpoint: -1n, appliedUpTo: 9n, take })).toBe(9n);
  });

  it("given a bounded take, when checkpointed, then it is the last whole batch taken", () => {
    const take = { kind: "prefix" as const, rows: [wallet(4n, "a", "USD", 1n)], lastEndOffset: 4n };
    expect(checkpointAfter({ partition: 0, checkpoint: -1n, appliedUpTo: 9n, take })).toBe(4n);
  });

  it("given no applier row and no deltas, when checkpointed, then it stays where it was", () => {
    expect(
      checkpointAfter({ partition: 0, checkpoint: -1n, appliedUpTo: null, take: { kind: "all", rows: [] } }),
    ).toBe(-1n);
  });

  it("given a checkpoint past the applier, when checkpointed, then it asks for a rebuild", () => {
    const read = { partition: 1, checkpoint: 10n, appliedUpTo: 5n, take: { kind: "all" as const, rows: [] } };
    expect(() => checkpointAfter(read)).toThrow(/--rebuild/);
  });
});

describe("formatBalances", () => {
  it("given balances, when formatted, then amounts are exact and aligned", () => {
    const lines = formatBalances("alice", [
      { asset: "RBT", balance: 7n },
      { asset: "USD", balance: 10n ** 40n },
    ]);
    expect(lines[1]).toBe(`  RBT  ${"7".padStart(41)}`);
    expect(lines[2]).toBe(`  USD  1${"0".repeat(40)}`);
  });

  it("given no balances, when formatted, then the message says the wallet is unknown", () => {
    expect(formatBalances("nobody", [])[0]).toMatch(/unknown wallet/);
  });
});
