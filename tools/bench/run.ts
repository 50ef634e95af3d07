// `tally bench` without the CLI's main, e.g. before it is wired: node services/bench/run.ts bench --quick
// Endpoints come from .local/stack.env like bin/tally reads them (a TALLY_* already set wins).
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { registerBenchCommand } from "./command.ts";

try {
  const stackEnv = readFileSync(new URL("../../.local/stack.env", import.meta.url), "utf8");
  for (const line of stackEnv.split("\n")) {
    const [name, ...rest] = line.split("=");
    if (name && /^TALLY_[A-Z0-9_]+$/.test(name) && process.env[name] === undefined)
      process.env[name] = rest.join("=");
  }
} catch {
  // no stack.env: the defaults point at the local stack
}
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= "1";
const program = new Command("tally");
registerBenchCommand(program);
await program.parseAsync(process.argv);
