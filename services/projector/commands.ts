// `tally project [--until-caught-up] [--rebuild]` and `tally balance <wallet>`: thin shells over
// the projector module. The CLI's main wires them in with registerProjectCommand(program) etc.

import type { Command } from "commander";
import { createProgressProbe } from "../applier/progress.ts";
import { type Config, loadConfig } from "../common/config.ts";
import { createLogger } from "../common/log.ts";
import { createPool } from "../common/pg.ts";
import { abortOnSignals } from "../common/signals.ts";
import { runProjector } from "./projector.ts";
import { rebuildViews } from "./rebuild.ts";

export function registerProjectCommand(program: Command): Command {
  return program
    .command("project")
    .description("project the ledger's balance deltas into wallet_balances and asset_supply")
    .option("--until-caught-up", "exit once the views are level with the applier's offsets")
    .option("--rebuild", "recompute the views from the ledger (then exit, unless --until-caught-up)")
    .action(async (options: { untilCaughtUp?: boolean; rebuild?: boolean }) => {
      const config = loadConfig();
      const log = createLogger(config.TALLY_LOG_LEVEL, "tally-projector");
      if (options.rebuild) {
        const rebuilt = await rebuildViews(config, { logger: log });
        const offsets = [...rebuilt.checkpoints].map(([p, o]) => `${p}:${o}`).join(" ") || "none";
        console.log(
          `project --rebuild: ${rebuilt.balances} balances, ${rebuilt.assets} assets from the ledger; ` +
            `checkpoints ${offsets}; ${rebuilt.rebuildMs} ms`,
        );
        if (!options.untilCaughtUp) return;
      }
      const stop = abortOnSignals(config.TALLY_SHUTDOWN_MS_MAX, (signal) =>
        log.info({ signal }, "projector: finishing the current round, then exiting"),
      );
      // Caught up means the applier is too: every record in Kafka applied, then projected.
      const probe = options.untilCaughtUp ? await createProgressProbe(config) : null;
      try {
        const summary = await runProjector(config, {
          untilCaughtUp: options.untilCaughtUp === true,
          ...(probe ? { applierCaughtUp: async () => (await probe.read()).lagRecords === 0n } : {}),
          signal: stop.signal,
          logger: log,
        });
        console.log(
          `project: ${summary.reason}; ${summary.rowsProjected} delta rows in ${summary.rounds} rounds; ` +
            `lag ${summary.lagRecords} records`,
        );
      } finally {
        await probe?.close();
        stop.dispose();
      }
    });
}

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

export function registerBalanceCommand(program: Command): Command {
  return program
    .command("balance")
    .description("print every asset balance of a wallet from the views (exact, minor units)")
    .argument("<wallet>", "the wallet id")
    .action(async (wallet: string) => {
      const balances = await readBalances(loadConfig(), wallet);
      const lines = formatBalances(wallet, balances);
      if (balances.length === 0) {
        console.error(lines[0]);
        process.exitCode = 1;
        return;
      }
      for (const line of lines) console.log(line);
    });
}
