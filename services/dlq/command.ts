// `tally dlq-relay [--until-caught-up] [--batch-max N]`: a thin shell over relay.ts.
import type { Command } from "commander";
import { ConfigError, loadConfig } from "../common/config.ts";
import { createLogger } from "../common/log.ts";
import { abortOnSignals } from "../common/signals.ts";
import { batchMaxDefault, runDlqRelay } from "./relay.ts";

export function registerDlqRelayCommand(program: Command): Command {
  return program
    .command("dlq-relay")
    .description(
      "publish every rejection to the dead-letter topic (TALLY_DLQ_TOPIC), at least once, from rejected_transfers",
    )
    .option("--until-caught-up", "exit once every rejection stored so far is on the dead-letter topic")
    .option("--batch-max <n>", `rejections per shard per poll (default ${batchMaxDefault})`)
    .action(async (options: { untilCaughtUp?: boolean; batchMax?: string }) => {
      const config = loadConfig();
      const batchMax = options.batchMax === undefined ? batchMaxDefault : Number(options.batchMax);
      if (!Number.isInteger(batchMax) || batchMax < 1 || batchMax > 100_000)
        throw new ConfigError("dlq-relay: --batch-max takes a whole number from 1 to 100000");
      const log = createLogger(config.TALLY_LOG_LEVEL, "tally-dlq-relay");
      const stop = abortOnSignals(config.TALLY_SHUTDOWN_MS_MAX, (signal) =>
        log.info({ signal }, "dlq: finishing the current batch, then exiting"),
      );
      try {
        const summary = await runDlqRelay(config, {
          untilCaughtUp: options.untilCaughtUp === true,
          batchMax,
          signal: stop.signal,
          logger: log,
        });
        console.log(
          `dlq-relay: ${summary.reason}; ${summary.published} rejections published to ${config.TALLY_DLQ_TOPIC} ` +
            `in ${summary.batches} batches`,
        );
      } finally {
        stop.dispose();
      }
    });
}
