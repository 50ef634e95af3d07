// `tally verify`: prints the report; exit code 1 on any breach, 0 when every invariant holds.
import type { Command } from "commander";
import { loadConfig } from "../common/config.ts";
import { formatReport } from "./report.ts";
import { verify } from "./verify.ts";

export function registerVerifyCommand(program: Command): Command {
  return program
    .command("verify")
    .description("check every invariant over all shards and the views (exit 1 on any breach)")
    .option("--json", "print the report as one JSON document (same exit codes)")
    .action(async (options: { json?: boolean }) => {
      const report = await verify(loadConfig());
      console.log(options.json ? JSON.stringify(report) : formatReport(report));
      // An exit code, not an exception: a breach is a finding, and the report is the output.
      process.exitCode = report.ok ? 0 : 1;
    });
}
