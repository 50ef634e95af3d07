// `tally project [--until-caught-up] [--rebuild]` and `tally balance <wallet>`: thin shells over
// the projector module (the command layer: no service imports this file). The CLI's main wires
// them in with registerProjectCommand(program) etc.

import type { Command } from "commander";
import { loadConfig } from "../common/config.ts";
import { createLogger } from "../common/log.ts";
import { abortOnSignals } from "../common/signals.ts";
import { createProgressProbe } from "../storage/progress.ts";
import { formatBalances, readBalances } from "./balances.ts";
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
          `project: ${summary.reason}; ${summary.rowsProjected} delta entries in ${summary.rounds} rounds; ` +
            `lag ${summary.lagRecords} records`,
        );
      } finally {
        await probe?.close();
        stop.dispose();
      }
    });
}

export function registerBalanceCommand(program: Command): Command {
  return program
    .command("balance")
    .description("print every asset balance of a wallet from the views (exact, minor units)")
    .argument("<wallet>", "the wallet id")
    .option(
      "--json",
      "print one JSON document: the wallet and its balances as decimal strings (same exit codes)",
    )
    .action(async (wallet: string, options: { json?: boolean }) => {
      const balances = await readBalances(loadConfig(), wallet);
      if (options.json) {
        // Amounts as strings: exact beyond 2^53, as JSON numbers would not be.
        const document = {
          wallet,
          balances: balances.map((b) => ({ asset: b.asset, balance: b.balance.toString() })),
        };
        console.log(JSON.stringify(document));
        if (balances.length === 0) process.exitCode = 1;
        return;
      }
      const lines = formatBalances(wallet, balances);
      if (balances.length === 0) {
        console.error(lines[0]);
        process.exitCode = 1;
        return;
      }
      for (const line of lines) console.log(line);
    });
}
