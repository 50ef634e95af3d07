// The demo's final check: what the pipeline reports against what the load generator predicted.
// Pure, so the rule that makes `tally demo` fail is tested without a stack.

/** Outcomes of one run: counts of records, wallet balances and asset supplies, exact. */
export type DemoOutcome = {
  applied: bigint;
  duplicates: bigint;
  rejected: bigint;
  rejectedByReason: Record<string, bigint>;
  /** balance by wallet, then by asset; a zero balance and an absent one are the same */
  balances: Map<string, Map<string, bigint>>;
  /** minted − burned by asset; zero and absent are the same */
  supply: Record<string, bigint>;
};

/** Balances beyond this many are summarised in one line, not listed. */
export const balanceLinesMax = 10;

/**
 * Every way `actual` differs from `expected`, one line each (empty when they agree), e.g.
 * `applied 0 vs expected 197000`. `resent` is how many events the producer sent again after a failed
 * send: each copy that had landed ends as one more duplicate (or one more rejection of the same
 * reason), so duplicates and rejections may exceed the expectation by that many in all, never
 * fall short; applied records and balances must match exactly whatever was resent.
 */
export function outcomeDifferences(expected: DemoOutcome, actual: DemoOutcome, resent = 0): string[] {
  const lines: string[] = [];
  const extra = BigInt(resent);
  if (actual.applied !== expected.applied)
    lines.push(`applied ${actual.applied} vs expected ${expected.applied}`);

  const surplus = (name: string, got: bigint, want: bigint): bigint => {
    if (got === want) return 0n;
    if (got > want && got - want <= extra) return got - want;
    lines.push(
      `${name} ${got} vs expected ${want}${extra > 0n ? ` (up to ${extra} more after resent events)` : ""}`,
    );
    return 0n;
  };
  const extraDuplicates = surplus("duplicates", actual.duplicates, expected.duplicates);
  const extraRejected = surplus("rejected", actual.rejected, expected.rejected);
  if (extraDuplicates + extraRejected > extra)
    lines.push(
      `duplicates and rejected ${extraDuplicates + extraRejected} over the expected, more than the ${extra} resent events`,
    );
  const reasons = new Set([
    ...Object.keys(expected.rejectedByReason),
    ...Object.keys(actual.rejectedByReason),
  ]);
  for (const reason of [...reasons].sort()) {
    const got = actual.rejectedByReason[reason] ?? 0n;
    const want = expected.rejectedByReason[reason] ?? 0n;
    // Only a reason the load produces can grow by resending (a copy is rejected for the same reason).
    if (got === want || (want > 0n && got > want && got - want <= extra)) continue;
    lines.push(`rejected ${reason} ${got} vs expected ${want}`);
  }

  const assets = new Set([...Object.keys(expected.supply), ...Object.keys(actual.supply)]);
  for (const asset of [...assets].sort()) {
    const got = actual.supply[asset] ?? 0n;
    const want = expected.supply[asset] ?? 0n;
    if (got !== want) lines.push(`supply of ${asset} ${got} vs expected ${want}`);
  }

  const balanceLines: string[] = [];
  const wallets = new Set([...expected.balances.keys(), ...actual.balances.keys()]);
  for (const wallet of [...wallets].sort()) {
    const got = actual.balances.get(wallet) ?? new Map<string, bigint>();
    const want = expected.balances.get(wallet) ?? new Map<string, bigint>();
    for (const asset of [...new Set([...got.keys(), ...want.keys()])].sort()) {
      const g = got.get(asset) ?? 0n;
      const w = want.get(asset) ?? 0n;
      if (g !== w) balanceLines.push(`balance of ${wallet} in ${asset} ${g} vs expected ${w}`);
    }
  }
  lines.push(...balanceLines.slice(0, balanceLinesMax));
  if (balanceLines.length > balanceLinesMax)
    lines.push(`... and ${balanceLines.length - balanceLinesMax} more balances that differ`);
  return lines;
}

/** The number of (wallet, asset) balances that are not zero. */
export function balanceCount(balances: Map<string, Map<string, bigint>>): number {
  let count = 0;
  for (const perAsset of balances.values()) for (const b of perAsset.values()) if (b !== 0n) count += 1;
  return count;
}
