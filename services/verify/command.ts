// `tally verify`: prints the report; exit code 1 on any breach, 0 when every invariant holds. Each
// run is recorded in verify_runs (the views database) unless --no-record: the projector exports the
// newest as tally_verify_last_ok and tally_verify_last_success_timestamp_seconds, so a scheduled
// verify (infra/k8s/verify-cronjob.yaml) is watched by Prometheus without a Pushgateway.
import type { Command } from "commander";
import { type Config, loadConfig } from "../common/config.ts";
import { createPool } from "../common/pg.ts";
import { recordVerifyRun } from "../storage/verify-runs.ts";
import { formatReport, type VerifyReport } from "./report.ts";
import { verify } from "./verify.ts";

export function registerVerifyCommand(program: Command): Command {
  return program
    .command("verify")
    .description("check every invariant over all shards and the views (exit 1 on any breach)")
    .option("--json", "print the report as one JSON document (same exit codes)")
    .option("--no-record", "do not record the result in verify_runs (the views database)")
    .action(async (options: { json?: boolean; record: boolean }) => {
      const config = loadConfig();
      const report = await verify(config);
      console.log(options.json ? JSON.stringify(report) : formatReport(report));
      // An exit code, not an exception: a breach is a finding, and the report is the output.
      process.exitCode = report.ok ? 0 : 1;
      if (options.record) await record(config, report);
    });
}

/** A run that cannot be recorded still reports its finding; the failure to record is said, exit 1. */
async function record(config: Config, report: VerifyReport): Promise<void> {
  const pool = createPool(config, config.TALLY_PG_VIEWS, "tally-verify", 1);
  try {
    await recordVerifyRun(pool, config.TALLY_TOPIC, {
      ok: report.ok,
      failedChecks: report.checks.filter((c) => !c.ok).map((c) => c.key),
      verifyMs: report.verifyMs,
    });
  } catch (error) {
    process.stderr.write(
      `tally: verify: the result could not be recorded in verify_runs: ${String(error)}\n`,
    );
    process.exitCode = 1;
  } finally {
    await pool.end();
  }
}
