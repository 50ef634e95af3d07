// `tally-tools`: what ships with the repository but not with Tally: the synthetic load (`produce`),
// the demo, the benchmark and the peer's benchmark. Same exit codes as `tally` (run-program.ts).
import { Command } from "commander";
import { positiveInteger, runProgram } from "../services/cli/run-program.ts";
import { loadConfig } from "../services/common/config.ts";
import { tallyVersion } from "../services/common/version.ts";
import { registerBenchCommand } from "./bench/command.ts";
import { registerBenchPathCommand } from "./bench/path-command.ts";
import { registerBenchPeerCommand } from "./bench/peer-command.ts";
import { demo } from "./demo/demo.ts";
import { registerProduceCommand } from "./load/produce-command.ts";

const program = new Command("tally-tools")
  .description("Tally's tools: synthetic load, the demo, benchmarks (not part of the tally command)")
  .version(tallyVersion)
  .exitOverride()
  .showHelpAfterError();

registerProduceCommand(program);
registerBenchCommand(program);
registerBenchPeerCommand(program);
registerBenchPathCommand(program);

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

process.exitCode = await runProgram(program, process.argv);
