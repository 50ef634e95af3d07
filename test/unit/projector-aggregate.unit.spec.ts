import { describe, expect, it } from "vitest";
import {
  aggregateDeltas,
  type ChunkRow,
  checkpointAfter,
  type DeltaRow,
  perPartitionLimit,
  takePending,
} from "../../services/projector/aggregate.ts";
import { formatBalances } from "../../services/projector/balances.ts";
import { encodeDeltaChunk } from "../../services/storage/delta-chunks.ts";

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

/** A chunk row of `entryCount` wallet entries of 1 USD each. */
const chunk = (endOffset: bigint, entryCount: number, withEntries = true): ChunkRow => {
  const perWallet = new Map(Array.from({ length: entryCount }, (_, i) => [`c${endOffset}-${i}`, 1n]));
  const encoded = encodeDeltaChunk(new Map([["USD", perWallet]]), new Map());
  return { partition: 0, endOffset, entryCount, entries: withEntries ? encoded.entries : null };
};

describe("aggregateDeltas with chunks", () => {
  it("given legacy rows and chunk rows, when aggregated, then their entries add up exactly and are counted", () => {
    const huge = 10n ** 38n - 1n;
    const encoded = encodeDeltaChunk(
      new Map([
        [
          "USD",
          new Map([
            ["bob", huge],
            ["ålice", -3n],
          ]),
        ],
      ]),
      new Map([["USD", { minted: huge, burned: 1n }]]),
    );
    const projection = aggregateDeltas(
      [wallet(3n, "bob", "USD", huge), supply(3n, "USD", 4n, 0n)],
      [{ partition: 0, endOffset: 5n, entryCount: encoded.entryCount, entries: encoded.entries }],
    );
    expect(projection).toEqual({
      balances: [
        { wallet: "bob", asset: "USD", delta: 2n * huge },
        { wallet: "ålice", asset: "USD", delta: -3n },
      ],
      supply: [{ asset: "USD", minted: huge + 4n, burned: 1n }],
      rows: 5,
    });
  });

  it("given a taken chunk read without its entries, when aggregated, then the broken read is caught", () => {
    expect(() => aggregateDeltas([], [chunk(5n, 2, false)])).toThrow(/taken with its entries/);
  });
});

describe("takePending", () => {
  const batch = (endOffset: bigint, rows: number) =>
    Array.from({ length: rows }, (_, i) => wallet(endOffset, `w${i}`, "USD", 1n));

  it("given no more legacy rows than the bound, when taken, then all of them are", () => {
    const rows = [...batch(2n, 2), ...batch(5n, 1)];
    expect(takePending(rows, [], 3)).toEqual({ kind: "all", rows, chunks: [] });
  });

  it("given a legacy batch cut by the bound, when taken, then that batch is left whole for the next round", () => {
    const rows = [...batch(2n, 2), ...batch(5n, 3)];
    const take = takePending(rows.slice(0, 4), [], 3);
    expect(take).toEqual({ kind: "prefix", rows: rows.slice(0, 2), chunks: [], lastEndOffset: 2n });
  });

  it("given the bound ends exactly at a legacy batch edge, when taken, then the whole batch before it is kept", () => {
    const rows = [...batch(2n, 2), ...batch(5n, 2)];
    const take = takePending(rows.slice(0, 3), [], 2);
    expect(take).toEqual({ kind: "prefix", rows: rows.slice(0, 2), chunks: [], lastEndOffset: 2n });
  });

  it("given one legacy batch larger than the bound, when taken, then it is named to be read whole", () => {
    expect(takePending(batch(9n, 4), [], 3)).toEqual({ kind: "oversized", endOffset: 9n });
  });

  it("given rows or chunks out of order, when taken, then the contract breach is caught", () => {
    expect(() => takePending([...batch(5n, 1), ...batch(2n, 1)], [], 3)).toThrow(/ordered/);
    expect(() => takePending([], [chunk(5n, 1), chunk(2n, 1)], 3)).toThrow(/ordered/);
  });

  it("given chunks within the bound, when taken, then all of them are", () => {
    const chunks = [chunk(2n, 2), chunk(5n, 1)];
    expect(takePending([], chunks, 3)).toEqual({ kind: "all", rows: [], chunks });
  });

  it("given chunks past the bound, when taken, then whole chunks up to the bound are, counted in entries", () => {
    const chunks = [chunk(2n, 2), chunk(5n, 1), chunk(8n, 2), chunk(9n, 1)];
    const take = takePending([], chunks, 4);
    expect(take).toEqual({ kind: "prefix", rows: [], chunks: chunks.slice(0, 2), lastEndOffset: 5n });
  });

  it("given a first chunk larger than the bound, when taken, then it is taken alone", () => {
    const chunks = [chunk(4n, 7), chunk(6n, 1)];
    expect(takePending([], chunks, 3)).toEqual({
      kind: "prefix",
      rows: [],
      chunks: chunks.slice(0, 1),
      lastEndOffset: 4n,
    });
  });

  it("given legacy rows then chunks of one partition, when taken, then they are merged in end_offset order", () => {
    const rows = [...batch(2n, 2), ...batch(4n, 1)];
    const chunks = [chunk(6n, 2), chunk(9n, 1)];
    expect(takePending(rows, chunks, 5)).toEqual({
      kind: "prefix",
      rows,
      chunks: chunks.slice(0, 1),
      lastEndOffset: 6n,
    });
    expect(takePending(rows, chunks, 6)).toEqual({ kind: "all", rows, chunks });
  });

  it("given legacy rows read in part, when chunks lie past the unread rows, then no chunk past them is taken", () => {
    // 3 of more legacy rows read (bound 2): offset 7's batch may go on, so the chunk at 9 must wait.
    const rows = [...batch(2n, 1), ...batch(7n, 2)];
    const take = takePending(rows, [chunk(5n, 1), chunk(9n, 1)], 2);
    expect(take).toEqual({
      kind: "prefix",
      rows: rows.slice(0, 1),
      chunks: [chunk(5n, 1)],
      lastEndOffset: 5n,
    });
  });

  it("given chunks read in part, when legacy rows lie past the last chunk read, then none of them is taken", () => {
    const chunks = [chunk(2n, 1), chunk(3n, 1), chunk(4n, 1)];
    const take = takePending(batch(8n, 1), chunks, 2);
    expect(take).toEqual({ kind: "prefix", rows: [], chunks: chunks.slice(0, 2), lastEndOffset: 3n });
  });

  it("given a legacy batch and a chunk with the same end_offset, when taken, then the breach is caught", () => {
    expect(() => takePending(batch(5n, 1), [chunk(5n, 1)], 3)).toThrow(/is one batch/);
  });

  it("given a shard's bound and its partitions, when split, then each partition reads at least one row", () => {
    expect(perPartitionLimit(100, 3)).toBe(33);
    expect(perPartitionLimit(100, 1000)).toBe(1);
  });
});

describe("checkpointAfter", () => {
  it("given every pending row taken, when checkpointed, then it is the applier's next offset", () => {
    const take = { kind: "all" as const, rows: [wallet(4n, "a", "USD", 1n)], chunks: [chunk(6n, 1)] };
    expect(checkpointAfter({ partition: 0, checkpoint: -1n, appliedUpTo: 9n, take })).toBe(9n);
  });

  it("given a bounded take, when checkpointed, then it is the last whole batch taken", () => {
    const take = {
      kind: "prefix" as const,
      rows: [wallet(4n, "a", "USD", 1n)],
      chunks: [],
      lastEndOffset: 4n,
    };
    expect(checkpointAfter({ partition: 0, checkpoint: -1n, appliedUpTo: 9n, take })).toBe(4n);
  });

  it("given no applier row and no deltas, when checkpointed, then it stays where it was", () => {
    expect(
      checkpointAfter({
        partition: 0,
        checkpoint: -1n,
        appliedUpTo: null,
        take: { kind: "all", rows: [], chunks: [] },
      }),
    ).toBe(-1n);
  });

  it("given a checkpoint past the applier, when checkpointed, then it asks for a rebuild", () => {
    const read = {
      partition: 1,
      checkpoint: 10n,
      appliedUpTo: 5n,
      take: { kind: "all" as const, rows: [], chunks: [] },
    };
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
