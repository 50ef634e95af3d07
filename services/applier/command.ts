import type { Command } from "commander";
import { ConfigError, loadConfig } from "../common/config.ts";
import { createLogger } from "../common/log.ts";
import { abortOnSignals } from "../common/signals.ts";
import { runApplier } from "./applier.ts";
import { inspectOffsets, type PartitionOffsets, resetOffsets } from "./offsets.ts";

const lingerMsMax = 1_000;

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
        process.stderr.write(`tally: ${signal} received; finishing the current chunk\n`),
      );
      const summary = await runApplier(config, {
        untilCaughtUp: options.untilCaughtUp ?? false,
        signal: stop.signal,
      }).finally(() => {
        stop.dispose();
        // A member that left while still joining may leave kafkajs's JoinGroup socket open until the
        // coordinator answers (up to the session timeout): once done, nothing else is worth waiting
        // for. Unref'd: a process with nothing open exits by itself before this fires.
        setTimeout(() => process.exit(), lingerMsMax).unref();
      });
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

/** `tally offsets show|reset`: the operator's view and decisions when the topic's incarnation changed. */
export function registerOffsetsCommand(program: Command): void {
  const offsets = program
    .command("offsets")
    .description("stored applier offsets against the topic Kafka has now; explicit, logged resets");
  offsets
    .command("show")
    .description("each partition: stored next offset and topic id, the log's range and id, any problem")
    .option("--json", "one JSON line per partition")
    .action(async (options: { json?: boolean }) => {
      const rows = await inspectOffsets(loadConfig());
      for (const row of rows) console.log(options.json ? JSON.stringify(row, bigintAsText) : describe(row));
      if (rows.some((row) => row.problem !== null)) process.exitCode = 1;
    });
  offsets
    .command("reset")
    .description("move stored offsets forward to the log's start or end, or adopt the topic's new id")
    .option("--to-earliest", "to the log's start: records deleted before they were applied are skipped")
    .option("--to-latest", "to the log's end: every record not yet applied is skipped")
    .option(
      "--adopt-topic-id",
      "keep the offsets, take the topic's current id (a mirrored or restored topic)",
    )
    .option("--partition <n...>", "only these partitions (default: all)")
    .option("--confirm", "required: the change is made and logged")
    .action(async (options: ResetOptions) => {
      const config = loadConfig();
      const targets = (["toEarliest", "toLatest", "adoptTopicId"] as const).filter((k) => options[k]);
      if (targets.length !== 1)
        throw new ConfigError(
          "offsets reset: give exactly one of --to-earliest, --to-latest, --adopt-topic-id",
        );
      if (!options.confirm) throw new ConfigError("offsets reset: add --confirm to make the change");
      const target = (
        { toEarliest: "earliest", toLatest: "latest", adoptTopicId: "adopt-topic-id" } as const
      )[targets[0]!];
      const partitions = options.partition?.map(Number) ?? null;
      const logger = createLogger(config.TALLY_LOG_LEVEL, "offsets");
      const { changed, refused } = await resetOffsets(config, target, partitions, logger);
      for (const row of changed) console.log(`changed: ${describe(row)}`);
      for (const { row, why } of refused) console.log(`partition ${row.partition}: NOT changed: ${why}`);
      if (refused.length > 0) process.exitCode = 1;
    });
}

type ResetOptions = {
  toEarliest?: boolean;
  toLatest?: boolean;
  adoptTopicId?: boolean;
  partition?: string[];
  confirm?: boolean;
};

const bigintAsText = (_key: string, value: unknown) => (typeof value === "bigint" ? value.toString() : value);

function describe(row: PartitionOffsets): string {
  const stored = row.stored
    ? `stored next ${row.stored.nextOffset} (topic id ${row.stored.topicId ?? "none"})`
    : "nothing stored";
  const log = `log ${row.log.lowOffset}..${row.log.highOffset} (topic id ${row.log.topicId ?? "none"})`;
  return `partition ${row.partition} shard ${row.shard}: ${stored}; ${log}${row.problem ? `; PROBLEM: ${row.problem}` : "; ok"}`;
}
