// `tally balance`'s read and its lines: a wallet's balances from the views, exact, in minor units.
import type { Config } from "../common/config.ts";
import { createPool } from "../common/pg.ts";

export type WalletBalance = { asset: string; balance: bigint };

/** Every asset the wallet holds (or held: a zero balance stays listed), exact. */
export async function readBalances(config: Config, wallet: string): Promise<WalletBalance[]> {
  const pool = createPool(config, config.TALLY_PG_VIEWS, "tally-balance", 1);
  try {
    const result = await pool.query<{ asset: string; balance: string }>(
      "SELECT asset, balance::text AS balance FROM wallet_balances WHERE wallet = $1 ORDER BY asset",
      [wallet],
    );
    return result.rows.map((r) => ({ asset: r.asset, balance: BigInt(r.balance) }));
  } finally {
    await pool.end();
  }
}

/** The lines `tally balance` prints: one per asset, amounts aligned, in minor units. */
export function formatBalances(wallet: string, balances: WalletBalance[]): string[] {
  if (balances.length === 0) {
    return [
      `wallet ${JSON.stringify(wallet)}: no balances (unknown wallet, every balance zero, or not projected yet)`,
    ];
  }
  const assetWidth = Math.max(...balances.map((b) => b.asset.length));
  const amountWidth = Math.max(...balances.map((b) => b.balance.toString().length));
  return [
    `wallet ${JSON.stringify(wallet)} (minor units)`,
    ...balances.map((b) => `  ${b.asset.padEnd(assetWidth)}  ${b.balance.toString().padStart(amountWidth)}`),
  ];
}
