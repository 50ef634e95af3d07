import type { Command } from "commander";
import { loadConfig } from "../common/config.ts";
import { abortOnSignals } from "../common/signals.ts";
import { runApplier } from "./applier.ts";

export function registerApplyCommand(program: Command): void {
  program
    .command("apply")
    .description(
      "run an applier: consume transfer events and apply them to the shards, exactly once in effect",
    )
    .option("--until-caught-up", "exit once every partition's stored offset reaches the topic's end")
    .option("--json", "print the summary as one JSON line (records by outcome, milliseconds per phase)")
    .action(async (options: { untilCaughtUp?: boolean; json?: boolean }) => {
      const config = loadConfig();
      const stop = abortOnSignals(config.TALLY_SHUTDOWN_MS_MAX, (signal) =>
        process.stderr.write(`tally: ${signal} received; finishing the current batch\n`),
      );
      const summary = await runApplier(config, {
        untilCaughtUp: options.untilCaughtUp ?? false,
        signal: stop.signal,
      }).finally(stop.dispose);
      if (options.json) {
        console.log(JSON.stringify(summary));
        return;
      }
      const seconds = summary.elapsedMs / 1000;
      const events = summary.applied + summary.duplicates + summary.rejected;
      console.log(
        `apply: ${events} records in ${seconds.toFixed(1)} s (${Math.round(events / seconds)}/s): ` +
          `${summary.applied} applied, ${summary.duplicates} duplicates, ${summary.rejected} rejected`,
      );
    });
}
