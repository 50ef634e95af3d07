// The pure part of the projection: which delta rows a round takes, and what they add up to.
// No I/O here, so the arithmetic and the batch bound are tested on their own.
import { assert } from "../common/assert.ts";

/** One `balance_deltas` row, numbers exact: offsets and amounts as bigint, never JS numbers. */
export type DeltaRow = {
  partition: number;
  endOffset: bigint;
  /** null: the per-asset row carrying minted and burned */
  wallet: string | null;
  asset: string;
  delta: bigint;
  minted: bigint;
  burned: bigint;
};

export type BalanceChange = { wallet: string; asset: string; delta: bigint };
export type SupplyChange = { asset: string; minted: bigint; burned: bigint };

export type Projection = {
  /** sorted by (wallet, asset): every projector locks rows in this order, so none deadlock */
  balances: BalanceChange[];
  /** sorted by asset, for the same reason */
  supply: SupplyChange[];
  rows: number;
};

/**
 * The rows of one partition that a round takes, given up to `limit + 1` pending rows ordered by
 * end_offset. A batch (rows sharing an end_offset) is taken whole or not at all: a checkpoint
 * between two rows of one batch would count the first half twice after a restart.
 */
export type Take =
  | { kind: "all"; rows: DeltaRow[] }
  | { kind: "prefix"; rows: DeltaRow[]; lastEndOffset: bigint }
  | { kind: "oversized"; endOffset: bigint };

export function takeWholeBatches(rows: DeltaRow[], limit: number): Take {
  assert(Number.isInteger(limit) && limit >= 1, `the per-partition bound ${limit} is at least 1`);
  for (let i = 1; i < rows.length; i++) {
    assert(rows[i - 1]!.endOffset <= rows[i]!.endOffset, "pending deltas come ordered by end_offset");
    assert(rows[i - 1]!.partition === rows[i]!.partition, "pending deltas come one partition at a time");
  }
  // At most `limit` rows came back: nothing more is pending, every batch is complete.
  if (rows.length <= limit) return { kind: "all", rows };
  // The row past the bound belongs to a batch that may continue beyond what was read: drop it whole.
  const cut = rows[limit]!.endOffset;
  const taken = rows.slice(0, limit).filter((row) => row.endOffset < cut);
  if (taken.length === 0) return { kind: "oversized", endOffset: cut };
  return { kind: "prefix", rows: taken, lastEndOffset: taken[taken.length - 1]!.endOffset };
}

/** Rows read per partition in one round, so that a shard's round stays within `deltasMax`. */
export function perPartitionLimit(deltasMax: number, partitionCount: number): number {
  assert(partitionCount >= 1, "a shard has at least one partition to read");
  return Math.max(1, Math.floor(deltasMax / partitionCount));
}

const keyOf = (wallet: string, asset: string) => JSON.stringify([wallet, asset]);

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Sums delta rows per (wallet, asset) and per asset. A (wallet, asset) whose sum is zero is left
 * out: it changes nothing, and the views hold no zero balance (see views-write.ts, addBalances).
 */
export function aggregateDeltas(rows: Iterable<DeltaRow>): Projection {
  const balances = new Map<string, BalanceChange>();
  const supply = new Map<string, SupplyChange>();
  let count = 0;
  for (const row of rows) {
    count++;
    if (row.wallet === null) {
      assert(row.delta === 0n, `the asset row of ${row.asset} carries no wallet delta`);
      const sum = supply.get(row.asset) ?? { asset: row.asset, minted: 0n, burned: 0n };
      sum.minted += row.minted;
      sum.burned += row.burned;
      supply.set(row.asset, sum);
    } else {
      assert(row.minted === 0n && row.burned === 0n, `the wallet row of ${row.wallet} carries no supply`);
      const key = keyOf(row.wallet, row.asset);
      const sum = balances.get(key) ?? { wallet: row.wallet, asset: row.asset, delta: 0n };
      sum.delta += row.delta;
      balances.set(key, sum);
    }
  }
  return {
    balances: [...balances.values()]
      .filter((change) => change.delta !== 0n)
      .sort((a, b) => compareText(a.wallet, b.wallet) || compareText(a.asset, b.asset)),
    supply: [...supply.values()].sort((a, b) => compareText(a.asset, b.asset)),
    rows: count,
  };
}

/** Pending rows of one partition as read from a shard, and the applier's offset in the same snapshot. */
export type PartitionRead = {
  partition: number;
  checkpoint: bigint;
  /** applier_offsets.next_offset in the read's snapshot; null when the applier has no row yet */
  appliedUpTo: bigint | null;
  take: Take;
};

/**
 * The checkpoint a partition reaches once its taken rows are projected. When every pending row
 * was taken, it is the applier's next offset of the same snapshot: batches that touched no
 * balance (all duplicates or rejections) write no delta, yet the ledger has moved past them.
 */
export function checkpointAfter(read: PartitionRead): bigint {
  const { take, checkpoint, appliedUpTo } = read;
  assert(take.kind !== "oversized", `partition ${read.partition}: an oversized batch is read whole first`);
  if (take.kind === "prefix") return take.lastEndOffset;
  if (appliedUpTo === null) {
    assert(take.rows.length === 0, `partition ${read.partition}: deltas without an applier offset`);
    return checkpoint;
  }
  for (const row of take.rows) {
    assert(
      row.endOffset > checkpoint && row.endOffset <= appliedUpTo,
      `partition ${read.partition}: delta end_offset ${row.endOffset} within (${checkpoint}, ${appliedUpTo}]`,
    );
  }
  // A checkpoint past the ledger means the views came from another ledger: only a rebuild fixes that.
  assert(
    appliedUpTo >= checkpoint,
    `partition ${read.partition}: projector checkpoint ${checkpoint} is past the applier's ${appliedUpTo}; run \`tally project --rebuild\``,
  );
  return appliedUpTo;
}

/** True when the take is everything pending: the partition is level with the applier's snapshot. */
export const isComplete = (read: PartitionRead) => read.take.kind === "all";
