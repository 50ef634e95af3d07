// One chunk's balance deltas as one row of balance_delta_chunks (the applier writes it, the
// projector reads it): a row per chunk instead of a row per (wallet, asset) cut the rows inserted,
// indexed, read and deleted by two orders of magnitude (issue #13).
//
// `entries` is text, one entry per line, fields separated by a tab:
//   wallet \t asset \t delta            a wallet's net change in the asset (never 0)
//   \t asset \t minted \t burned         the asset's supply change (the empty wallet: wallets are never empty)
// Safe as a format because wallets are non-empty text without control characters (common/event.ts
// isText) and assets match ^[A-Z0-9]{1,16}$; the encoder asserts both rather than trust the caller.
// Amounts are canonical decimal integers, exact both ways (bigint, never a JS number).
import { assert } from "../common/assert.ts";
import { isAsset } from "../common/event.ts";

export type ChunkBalance = { wallet: string; asset: string; delta: bigint };
export type ChunkSupply = { asset: string; minted: bigint; burned: bigint };
export type ChunkEntries = { balances: ChunkBalance[]; supply: ChunkSupply[] };
export type EncodedChunk = { entryCount: number; entries: string };

/** The rule common/event.ts isAsset checks, for the messages. */
const assetRule = "^[A-Z0-9]{1,16}$";

// The checks below run per entry: each message is built only when the check fails.

/** Wallets are validated event text: non-empty, no control character (so no tab or newline). */
function assertWallet(wallet: string): void {
  let clean = wallet.length > 0;
  for (let k = 0; clean && k < wallet.length; k++) clean = wallet.charCodeAt(k) >= 32;
  if (!clean) assert(false, `wallet ${JSON.stringify(wallet)} is non-empty text without control characters`);
}

function assertAsset(asset: string | undefined, line: string): asserts asset is string {
  if (!isAsset(asset))
    assert(false, `entry ${JSON.stringify(line)}: asset ${JSON.stringify(asset)} matches ${assetRule}`);
}

/**
 * The chunk's entries as text: every non-zero wallet delta, then every supply change. An entry
 * count of 0 means the chunk changes no balance and needs no row.
 */
export function encodeDeltaChunk(
  balances: ReadonlyMap<string, ReadonlyMap<string, bigint>>,
  supply: ReadonlyMap<string, { readonly minted: bigint; readonly burned: bigint }>,
): EncodedChunk {
  const lines: string[] = [];
  for (const [asset, perWallet] of balances) {
    assertAsset(asset, asset);
    for (const [wallet, delta] of perWallet) {
      // A zero net (a token in and out again within the chunk) changes nothing.
      if (delta === 0n) continue;
      assertWallet(wallet);
      lines.push(`${wallet}\t${asset}\t${delta}`);
    }
  }
  for (const [asset, { minted, burned }] of supply) {
    assertAsset(asset, asset);
    if (minted < 0n || burned < 0n) assert(false, `supply of ${asset}: minted and burned are not negative`);
    lines.push(`\t${asset}\t${minted}\t${burned}`);
  }
  return { entryCount: lines.length, entries: lines.join("\n") };
}

/** A canonical decimal integer (what bigint's toString writes), or a broken row. */
function amountOf(text: string, what: string): bigint {
  let value: bigint | null = null;
  try {
    value = BigInt(text);
  } catch {
    // BigInt's own message names no row; the assertion below does.
  }
  // Round trip: BigInt also accepts "", " 1", "0x1" and "+1", none of which the encoder writes.
  if (value === null || value.toString() !== text)
    assert(false, `${what} ${JSON.stringify(text)} is a decimal integer`);
  return value;
}

/** Parses `entries`, asserting the format and that it holds exactly `entryCount` entries. */
export function decodeDeltaChunk(entries: string, entryCount: number): ChunkEntries {
  assert(
    Number.isInteger(entryCount) && entryCount >= 1,
    `a chunk row holds at least one entry (${entryCount})`,
  );
  const out: ChunkEntries = { balances: [], supply: [] };
  let start = 0;
  let count = 0;
  while (start <= entries.length) {
    let end = entries.indexOf("\n", start);
    if (end < 0) end = entries.length;
    decodeLine(entries.slice(start, end), out);
    count++;
    start = end + 1;
  }
  assert(count === entryCount, `the chunk holds ${count} entries, its entry_count says ${entryCount}`);
  return out;
}

function decodeLine(line: string, out: ChunkEntries): void {
  const fields = line.split("\t");
  const [wallet, asset] = fields;
  assertAsset(asset, line);
  if (wallet === "") {
    if (fields.length !== 4) assert(false, `supply entry ${JSON.stringify(line)}: asset, minted, burned`);
    const minted = amountOf(fields[2]!, "minted");
    const burned = amountOf(fields[3]!, "burned");
    if (minted < 0n || burned < 0n) assert(false, `supply entry ${JSON.stringify(line)}: not negative`);
    out.supply.push({ asset, minted, burned });
  } else {
    if (fields.length !== 3) assert(false, `balance entry ${JSON.stringify(line)}: wallet, asset, delta`);
    out.balances.push({ wallet: wallet!, asset, delta: amountOf(fields[2]!, "delta") });
  }
}
