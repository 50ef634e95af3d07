// `tally demo`, the main job: migrate, topic, a realistic load, two applier processes and the
// projector until caught up with live progress, then a summary table and verify.
import { spawn } from "node:child_process";
import Table from "cli-table3";
import type { ApplierSummary as ApplierJson } from "../applier/applier.ts";
import { createProgressProbe } from "../applier/progress.ts";
import type { Config } from "../common/config.ts";
import { createPool } from "../common/pg.ts";
import type { LoadOutcome } from "../producer/load.ts";
import { produceCommand } from "../producer/produce-command.ts";
import { runProjector } from "../projector/index.ts";
import { migrate } from "../storage/migrate.ts";
import { formatReport, verify } from "../verify/index.ts";
import { topics } from "./topics.ts";

export type DemoOptions = {
  events: number;
  appliers: number;
  duplicateRate: number;
  doubleSpendRate: number;
};
type Outcomes = { applied: bigint; duplicates: bigint; rejected: bigint; reasons: Map<string, bigint> };

const binTally = new URL("../../bin/tally", import.meta.url).pathname;
const progressIntervalMs = 1_000;
const plain = { head: [], border: [] }; // no colour codes: the summary often lands in a log file

export async function demo(config: Config, options: DemoOptions): Promise<boolean> {
  await migrate(config);
  const topic = await topics(config);
  console.log(
    `demo: topic ${topic.topic} (${topic.partitions} partitions), ${config.TALLY_PG_SHARDS.length} shards, schema id ${topic.schemaId}`,
  );
  await drainBacklog(config);
  const before = await outcomes(config);
  const produced = await produceCommand(config, {
    events: options.events,
    duplicateRate: options.duplicateRate,
    doubleSpendRate: options.doubleSpendRate,
    progress: "auto",
  });
  console.log(
    `demo: produced ${produced.sent} events in ${(produced.elapsedMs / 1000).toFixed(1)} s (${Math.round(produced.eventsPerSecond)}/s), seed ${produced.seed}`,
  );

  const startedMs = performance.now();
  const appliers = Array.from({ length: options.appliers }, () => runApplierProcess());
  let appliersDone = false;
  // Settled promptly either way, so a failed applier stops the projector's wait instead of crashing.
  const appliersFinished = Promise.allSettled(appliers).finally(() => {
    appliersDone = true;
  });
  const probe = await createProgressProbe(config);
  const ticker = setInterval(() => {
    probe.read().then(
      (p) =>
        process.stderr.write(
          `demo: applied ${p.appliedOffsets}/${p.highWatermarks} offsets, lag ${p.lagRecords}\n`,
        ),
      () => {},
    );
  }, progressIntervalMs);
  let projectedMs = 0;
  let applierSummaries: ApplierJson[] = [];
  try {
    await runProjector(config, { untilCaughtUp: true, applierCaughtUp: () => appliersDone });
    projectedMs = performance.now() - startedMs;
    const settled = await appliersFinished;
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    applierSummaries = settled.map((s) => (s as PromiseFulfilledResult<ApplierJson>).value);
  } finally {
    clearInterval(ticker);
    await probe.close();
  }
  const after = await outcomes(config);
  printSummary(produced.expected, before, after, applierSummaries, projectedMs);
  const report = await verify(config);
  console.log(formatReport(report));
  return report.ok;
}

/** Events left unapplied by an earlier, interrupted demo would be counted as this run's. */
async function drainBacklog(config: Config): Promise<void> {
  const probe = await createProgressProbe(config);
  const { lagRecords } = await probe.read().finally(() => probe.close());
  if (lagRecords === 0n) return;
  console.log(`demo: applying ${lagRecords} records left from an earlier run first`);
  await runApplierProcess();
}

function runApplierProcess(): Promise<ApplierJson> {
  return new Promise((resolve, reject) => {
    // Several appliers share this environment: a metrics port would be taken by the first.
    const child = spawn(binTally, ["apply", "--until-caught-up", "--json"], {
      env: { ...process.env, TALLY_METRICS_PORT: "0" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`an applier exited with code ${code}`));
      resolve(JSON.parse(stdout.trim().split("\n").at(-1)!) as ApplierJson);
    });
  });
}

async function outcomes(config: Config): Promise<Outcomes> {
  const totals: Outcomes = { applied: 0n, duplicates: 0n, rejected: 0n, reasons: new Map() };
  for (const url of config.TALLY_PG_SHARDS) {
    const pool = createPool(config, url, "tally-demo", 1);
    try {
      const o = await pool.query<{ a: string; d: string; r: string }>(
        `SELECT coalesce(sum(applied_count),0)::text a, coalesce(sum(duplicate_count),0)::text d, coalesce(sum(rejected_count),0)::text r
           FROM applier_offsets WHERE "group" = $1 AND topic = $2`,
        [config.TALLY_GROUP, config.TALLY_TOPIC],
      );
      totals.applied += BigInt(o.rows[0]!.a);
      totals.duplicates += BigInt(o.rows[0]!.d);
      totals.rejected += BigInt(o.rows[0]!.r);
      const reasons = await pool.query<{ reason: string; n: string }>(
        "SELECT reason, count(*)::text n FROM rejected_transfers WHERE topic = $1 GROUP BY reason",
        [config.TALLY_TOPIC],
      );
      for (const { reason, n } of reasons.rows)
        totals.reasons.set(reason, (totals.reasons.get(reason) ?? 0n) + BigInt(n));
    } finally {
      await pool.end();
    }
  }
  return totals;
}

function printSummary(
  expected: LoadOutcome,
  before: Outcomes,
  after: Outcomes,
  appliers: ApplierJson[],
  endToEndMs: number,
): void {
  const outcomesTable = new Table({
    head: ["outcome (this run)", "records", "expected by the generator"],
    style: plain,
  });
  outcomesTable.push(
    ["applied", String(after.applied - before.applied), String(expected.applied)],
    ["duplicates", String(after.duplicates - before.duplicates), String(expected.duplicates)],
    [
      "rejected",
      String(after.rejected - before.rejected),
      String(Object.values(expected.rejected).reduce((a, b) => a + b, 0)),
    ],
  );
  for (const [reason, n] of [...after.reasons].sort()) {
    const delta = n - (before.reasons.get(reason) ?? 0n);
    if (delta > 0n)
      outcomesTable.push([
        `  rejected: ${reason}`,
        String(delta),
        String((expected.rejected as Record<string, number>)[reason] ?? 0),
      ]);
  }
  console.log(outcomesTable.toString());
  const records = appliers.reduce((sum, a) => sum + a.applied + a.duplicates + a.rejected, 0);
  const phaseTable = new Table({
    head: ["phase", "seconds (summed over appliers)", "events/s if alone"],
    style: plain,
  });
  for (const phase of ["decode", "validate", "write", "commit"]) {
    const ms = appliers.reduce((sum, a) => sum + (a.phaseMs[phase] ?? 0), 0);
    phaseTable.push([
      phase,
      (ms / 1000).toFixed(2),
      ms > 0 ? String(Math.round(records / (ms / 1000))) : "-",
    ]);
  }
  phaseTable.push([
    "end to end (apply + project)",
    (endToEndMs / 1000).toFixed(2),
    String(Math.round(records / (endToEndMs / 1000))),
  ]);
  console.log(phaseTable.toString());
}
