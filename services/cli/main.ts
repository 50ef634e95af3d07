#!/usr/bin/env node
// The `tally` command. Each subcommand is a thin shell over a service module; exit codes:
// see run-program.ts. The tools (demo, load, benchmarks) are `tally-tools`, outside this command.
import "./quiet-warnings.ts";
import { Command } from "commander";
import { registerApplyCommand, registerOffsetsCommand } from "../applier/command.ts";
import { configAsExports, loadConfig } from "../common/config.ts";
import { tallyVersion } from "../common/version.ts";
import { registerDlqRelayCommand } from "../dlq/command.ts";
import { registerOutcomeCommands } from "../outcomes/command.ts";
import { registerBalanceCommand, registerProjectCommand } from "../projector/commands.ts";
import { migrate } from "../storage/migrate.ts";
import { topics } from "../topics/topics.ts";
import { registerVerifyCommand } from "../verify/command.ts";
import { runProgram } from "./run-program.ts";

const program = new Command("tally")
  .description("Event-sourced transfer processor: Kafka in, exact sharded ledger and balances out")
  .version(tallyVersion)
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

registerApplyCommand(program);
registerOffsetsCommand(program);
registerProjectCommand(program);
registerBalanceCommand(program);
registerVerifyCommand(program);
registerOutcomeCommands(program);
registerDlqRelayCommand(program);

process.exitCode = await runProgram(program, process.argv);
