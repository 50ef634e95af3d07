// The pure part of the projection: which pending deltas a round takes (legacy `balance_deltas`
// rows and `balance_delta_chunks` rows of a partition, merged in end_offset order), and what they
// add up to. No I/O here, so the arithmetic and the bound are tested on their own.
import { assert } from "../common/assert.ts";
import { decodeDeltaChunk } from "../storage/delta-chunks.ts";

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
  /** delta entries summed: a legacy row is one, a chunk row holds entry_count */
  rows: number;
};

/**
 * A pending `balance_delta_chunks` row: one committed chunk, indivisible. `entries` is null when
 * the read left it out (it lay past what the round can take, see shard-read.ts); a taken chunk
 * always has it.
 */
export type ChunkRow = { partition: number; endOffset: bigint; entryCount: number; entries: string | null };

/**
 * What a round takes of one partition. A batch (the legacy rows sharing an end_offset, or one
 * chunk row) is taken whole or not at all: a checkpoint inside a batch would count its first half
 * twice after a restart. "all": everything pending, so the checkpoint may move to the applier's
 * offset; "prefix": up to `lastEndOffset`; "oversized": the first pending batch is a legacy batch
 * larger than the bound, not read whole yet.
 */
export type Take =
  | { kind: "all"; rows: DeltaRow[]; chunks: ChunkRow[] }
  | { kind: "prefix"; rows: DeltaRow[]; chunks: ChunkRow[]; lastEndOffset: bigint }
  | { kind: "oversized"; endOffset: bigint };

function assertOrdered(items: { partition: number; endOffset: bigint }[], what: string): void {
  for (let i = 1; i < items.length; i++) {
    assert(items[i - 1]!.endOffset <= items[i]!.endOffset, `pending ${what} come ordered by end_offset`);
    assert(items[i - 1]!.partition === items[i]!.partition, `pending ${what} come one partition at a time`);
  }
}

type Batch = { endOffset: bigint; entries: number; rows: DeltaRow[]; chunk: ChunkRow | null };

/**
 * Legacy batches and chunks of one partition in end_offset order, as far as both reads are known
 * complete: below the first row each read left unread (`limit + 1` came back: the last may be the
 * start of a batch or a run of chunks that goes on past the read).
 */
function mergeKnown(rows: DeltaRow[], chunks: ChunkRow[], limit: number): Batch[] {
  const rowsHorizon = rows.length > limit ? rows[limit]!.endOffset : null;
  const chunksHorizon = chunks.length > limit ? chunks[limit]!.endOffset : null;
  const horizon =
    rowsHorizon === null
      ? chunksHorizon
      : chunksHorizon === null || rowsHorizon < chunksHorizon
        ? rowsHorizon
        : chunksHorizon;
  const known = (endOffset: bigint) => horizon === null || endOffset < horizon;
  const batches: Batch[] = [];
  for (const row of rows) {
    if (!known(row.endOffset)) break;
    const last = batches[batches.length - 1];
    if (last?.endOffset === row.endOffset) {
      last.rows.push(row);
      last.entries++;
    } else batches.push({ endOffset: row.endOffset, entries: 1, rows: [row], chunk: null });
  }
  for (const chunk of chunks) {
    if (!known(chunk.endOffset)) break;
    batches.push({ endOffset: chunk.endOffset, entries: chunk.entryCount, rows: [], chunk });
  }
  batches.sort((a, b) => (a.endOffset < b.endOffset ? -1 : a.endOffset > b.endOffset ? 1 : 0));
  for (let i = 1; i < batches.length; i++) {
    // The applier's offsets compare-and-set lets one writer commit a range, in one of the two forms.
    assert(
      batches[i - 1]!.endOffset < batches[i]!.endOffset,
      `end_offset ${batches[i]!.endOffset} is one batch`,
    );
  }
  return batches;
}

/**
 * The batches of one partition a round takes, given up to `limit + 1` pending legacy rows and up
 * to `limit + 1` pending chunks, each ordered by end_offset: whole batches in end_offset order
 * while their entries add up to at most `limit`; a first batch above the bound alone. Nothing
 * past a batch not taken is ever taken, so the checkpoint never passes anything unread.
 */
export function takePending(rows: DeltaRow[], chunks: ChunkRow[], limit: number): Take {
  assert(Number.isInteger(limit) && limit >= 1, `the per-partition bound ${limit} is at least 1`);
  assertOrdered(rows, "deltas");
  assertOrdered(chunks, "chunks");
  const batches = mergeKnown(rows, chunks, limit);
  const taken: Batch[] = [];
  let entries = 0;
  for (const batch of batches) {
    if (taken.length > 0 && entries + batch.entries > limit) break;
    taken.push(batch);
    entries += batch.entries;
  }
  const pending = rows.length + chunks.length;
  if (taken.length === 0 && pending > 0) {
    // Only a legacy batch can be unknown yet first: every chunk read is whole.
    assert(
      rows.length > limit && rows[0]!.endOffset === rows[limit]!.endOffset,
      "an oversized first batch is a legacy one, read in part",
    );
    return { kind: "oversized", endOffset: rows[0]!.endOffset };
  }
  const takenRows = taken.flatMap((batch) => batch.rows);
  const takenChunks = taken.flatMap((batch) => (batch.chunk === null ? [] : [batch.chunk]));
  if (takenRows.length === rows.length && takenChunks.length === chunks.length)
    return { kind: "all", rows: takenRows, chunks: takenChunks };
  return {
    kind: "prefix",
    rows: takenRows,
    chunks: takenChunks,
    lastEndOffset: taken[taken.length - 1]!.endOffset,
  };
}

/** Rows read per partition in one round, so that a shard's round stays within `deltasMax`. */
export function perPartitionLimit(deltasMax: number, partitionCount: number): number {
  assert(partitionCount >= 1, "a shard has at least one partition to read");
  return Math.max(1, Math.floor(deltasMax / partitionCount));
}

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Sums per (wallet, asset) and per asset; nested maps, so no composite key can collide. */
class Sums {
  private readonly balances = new Map<string, Map<string, bigint>>();
  private readonly supply = new Map<string, SupplyChange>();
  entries = 0;

  addBalance(wallet: string, asset: string, delta: bigint): void {
    let perAsset = this.balances.get(wallet);
    if (perAsset === undefined) {
      perAsset = new Map();
      this.balances.set(wallet, perAsset);
    }
    perAsset.set(asset, (perAsset.get(asset) ?? 0n) + delta);
    this.entries++;
  }

  addSupply(asset: string, minted: bigint, burned: bigint): void {
    const sum = this.supply.get(asset) ?? { asset, minted: 0n, burned: 0n };
    sum.minted += minted;
    sum.burned += burned;
    this.supply.set(asset, sum);
    this.entries++;
  }

  /** A (wallet, asset) whose sum is zero is left out: the views hold no zero balance (views-write.ts). */
  projection(): Projection {
    const balances: BalanceChange[] = [];
    for (const [wallet, perAsset] of this.balances)
      for (const [asset, delta] of perAsset) if (delta !== 0n) balances.push({ wallet, asset, delta });
    return {
      balances: balances.sort((a, b) => compareText(a.wallet, b.wallet) || compareText(a.asset, b.asset)),
      supply: [...this.supply.values()].sort((a, b) => compareText(a.asset, b.asset)),
      rows: this.entries,
    };
  }
}

/**
 * Sums legacy delta rows and chunk entries per (wallet, asset) and per asset, exactly. `rows` of
 * the result counts entries: a legacy row is one, a chunk row holds `entry_count`.
 */
export function aggregateDeltas(rows: Iterable<DeltaRow>, chunks: Iterable<ChunkRow> = []): Projection {
  const sums = new Sums();
  for (const row of rows) {
    if (row.wallet === null) {
      assert(row.delta === 0n, `the asset row of ${row.asset} carries no wallet delta`);
      sums.addSupply(row.asset, row.minted, row.burned);
    } else {
      assert(row.minted === 0n && row.burned === 0n, `the wallet row of ${row.wallet} carries no supply`);
      sums.addBalance(row.wallet, row.asset, row.delta);
    }
  }
  for (const chunk of chunks) {
    assert(chunk.entries !== null, `chunk ${chunk.partition}/${chunk.endOffset} is taken with its entries`);
    const { balances, supply } = decodeDeltaChunk(chunk.entries, chunk.entryCount);
    for (const b of balances) sums.addBalance(b.wallet, b.asset, b.delta);
    for (const s of supply) sums.addSupply(s.asset, s.minted, s.burned);
  }
  return sums.projection();
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
    assert(
      take.rows.length === 0 && take.chunks.length === 0,
      `partition ${read.partition}: deltas without an applier offset`,
    );
    return checkpoint;
  }
  for (const { endOffset } of [...take.rows, ...take.chunks]) {
    assert(
      endOffset > checkpoint && endOffset <= appliedUpTo,
      `partition ${read.partition}: delta end_offset ${endOffset} within (${checkpoint}, ${appliedUpTo}]`,
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
