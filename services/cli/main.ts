// The `tally` command. Each subcommand is a thin shell over a service module; exit codes:
// 0 done, 1 a check failed (verify), 2 bad configuration or usage, 3 an unexpected error.
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { registerApplyCommand, registerOffsetsCommand } from "../applier/command.ts";
import { IncarnationError } from "../applier/incarnation.ts";
import { registerBenchCommand } from "../bench/command.ts";
import { registerBenchPeerCommand } from "../bench/peer-command.ts";
import { ConfigError, configAsExports, loadConfig } from "../common/config.ts";
import { registerProduceCommand } from "../producer/produce-command.ts";
import { registerBalanceCommand, registerProjectCommand } from "../projector/index.ts";
import { migrate } from "../storage/migrate.ts";
import { registerVerifyCommand } from "../verify/index.ts";
import { demo } from "./demo.ts";
import { topics } from "./topics.ts";

const program = new Command("tally")
  .description("Event-sourced transfer processor: Kafka in, exact sharded ledger and balances out")
  .exitOverride()
  .showHelpAfterError();

program
  .command("env")
  .description("print the effective TALLY_* settings as shell exports (secrets masked)")
  .action(() => {
    for (const line of configAsExports(loadConfig())) console.log(line);
  });

program
  .command("migrate")
  .description("create missing databases, tables and day partitions (idempotent)")
  .action(async () => {
    const config = loadConfig();
    const report = await migrate(config);
    const created = report.databasesCreated.length > 0 ? report.databasesCreated.join(", ") : "none";
    console.log(
      `migrate: ${config.TALLY_PG_SHARDS.length} shard(s) and the views database ready; ` +
        `databases created: ${created}; day partitions created: ${report.partitionsCreated}`,
    );
  });

program
  .command("topics")
  .description(
    "create the topic and register the event schema (FULL_TRANSITIVE unless the subject has a level)",
  )
  .action(async () => {
    const report = await topics(loadConfig());
    const level = report.compatibilitySetByTally
      ? `${report.compatibility}, set now`
      : `${report.compatibility}, the subject's own`;
    console.log(
      `topics: ${report.topic} ${report.created ? "created" : "exists"} with ${report.partitions} partitions; ` +
        `schema id ${report.schemaId} under ${report.subject} (compatibility ${level})`,
    );
    if (report.compatibility !== "FULL_TRANSITIVE") {
      console.error(
        `tally: warning: ${report.subject} is ${report.compatibility}, not FULL_TRANSITIVE: the registry may ` +
          "accept a version the appliers cannot read (docs/schema-evolution.md)",
      );
    }
  });

registerProduceCommand(program);
registerApplyCommand(program);
registerOffsetsCommand(program);
registerProjectCommand(program);
registerBalanceCommand(program);
registerVerifyCommand(program);
registerBenchCommand(program);
registerBenchPeerCommand(program);

program
  .command("demo")
  .description("the main job: load, two appliers and the projector until caught up, a summary, verify")
  .option("--events <n>", "events to produce", (v) => positiveInteger("--events", v), 200_000)
  .option("--appliers <n>", "applier processes", (v) => positiveInteger("--appliers", v), 2)
  .option("--prefix <name>", "topic, group and databases named <name>_<UTC time> (default tally_demo)")
  .action(async (options: { events: number; appliers: number; prefix?: string }) => {
    const ok = await demo(loadConfig(), { ...options, duplicateRate: 0.01, doubleSpendRate: 0.005 });
    if (!ok) process.exitCode = 1;
  });

function positiveInteger(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv);
    // verify and balance report a failed check through process.exitCode
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    // Wrong credentials are a configuration problem too: one line, exit 2, no stack trace.
    if (error instanceof ConfigError || (error as Error).name === "KafkaJSSASLAuthenticationError") {
      console.error(`tally: ${(error as Error).message}`);
      return 2;
    }
    // A topic whose incarnation changed is a check that failed, with an operator's decision to make.
    if (error instanceof IncarnationError) {
      console.error(`tally: ${error.message}`);
      return 1;
    }
    console.error(`tally: ${(error as Error).stack ?? error}`);
    return 3;
  }
}

process.exitCode = await main(process.argv);
