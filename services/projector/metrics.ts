// The projector's Prometheus metrics, in the process's registry (services/common/metrics.ts, which
// also holds tally_build_info and tally_retries_total, recorded by every process), and what a
// round tells them: its duration, the rows it moved, and the lag per partition it left behind. The
// same figures go to the "projector: round" log line. It also exports the last `tally verify`
// result from verify_runs (the views database), since a verify run is a short job nobody scrapes.
// Names and labels are a contract with dashboards and alerts: docs/operations.md.
import client from "prom-client";
import { metricsRegistry, phaseBucketsSeconds, retriesTotal, retryCauses } from "../common/metrics.ts";
import type { Pool } from "../common/pg.ts";
import { readVerifyRuns } from "../storage/verify-runs.ts";
import type { RoundProgress, ShardRound } from "./round.ts";

export const projectorRoundSeconds = new client.Histogram({
  name: "tally_projector_round_seconds",
  help: "Time per projector round that moved rows (read the shards, write the views and checkpoints)",
  buckets: phaseBucketsSeconds,
  registers: [metricsRegistry],
});

export const projectorLag = new client.Gauge({
  name: "tally_projector_lag_records",
  help: "Applier next offset minus the projector checkpoint, per partition",
  labelNames: ["partition"] as const,
  registers: [metricsRegistry],
});
export const projectorRowsTotal = new client.Counter({
  name: "tally_projector_rows_total",
  help: "Balance-delta entries projected into the views (a chunk row holds entry_count, a legacy row is one)",
  registers: [metricsRegistry],
});
export const projectorRoundsTotal = new client.Counter({
  name: "tally_projector_rounds_total",
  help: "Projector rounds by result: rows (moved rows), idle (nothing pending), conflict (another projector won)",
  labelNames: ["result"] as const,
  registers: [metricsRegistry],
});

/** Every label value a dashboard plots starts at 0 (see initApplierMetrics). */
export function initProjectorMetrics(): void {
  for (const cause of retryCauses) retriesTotal.inc({ cause }, 0);
  for (const result of ["rows", "idle", "conflict"]) projectorRoundsTotal.inc({ result }, 0);
}

export function observeRound(progress: RoundProgress, shards: readonly ShardRound[]): void {
  for (const shard of shards) {
    for (const [partition, lag] of shard.lagByPartition)
      projectorLag.set({ partition: String(partition) }, Number(lag));
  }
  const result = progress.rows > 0 ? "rows" : progress.conflicts > 0 ? "conflict" : "idle";
  projectorRoundsTotal.inc({ result });
  if (progress.rows === 0) return; // idle polls would drown the latency of real work
  projectorRowsTotal.inc(progress.rows);
  projectorRoundSeconds.observe(progress.projectMs / 1000);
}

export const verifyLastOk = new client.Gauge({
  name: "tally_verify_last_ok",
  help: "1 if the newest `tally verify` run recorded in verify_runs passed, 0 if it found a breach; absent before the first",
  // A label, so that the gauge has no sample until a run is known: a labelless gauge reads 0, which
  // would say "verify failed" before verify ever ran (and fire the alert on it).
  labelNames: ["topic"] as const,
  registers: [metricsRegistry],
});
export const verifyLastRun = new client.Gauge({
  name: "tally_verify_last_run_timestamp_seconds",
  help: "When the newest `tally verify` run recorded in verify_runs finished (Unix seconds)",
  labelNames: ["topic"] as const,
  registers: [metricsRegistry],
});
export const verifyLastSuccess = new client.Gauge({
  name: "tally_verify_last_success_timestamp_seconds",
  help: "When the newest passing `tally verify` run finished (Unix seconds); absent before the first",
  labelNames: ["topic"] as const,
  registers: [metricsRegistry],
});

/** Sets the verify gauges from verify_runs; a gauge with nothing to say has no sample. */
export async function refreshVerifyMetrics(viewsPool: Pool, topic: string): Promise<void> {
  const runs = await readVerifyRuns(viewsPool, topic);
  if (runs.last === null) {
    verifyLastOk.reset();
    verifyLastRun.reset();
  } else {
    verifyLastOk.set({ topic }, runs.last.ok ? 1 : 0);
    verifyLastRun.set({ topic }, runs.last.finishedAtSeconds);
  }
  if (runs.lastSuccessSeconds === null) verifyLastSuccess.reset();
  else verifyLastSuccess.set({ topic }, runs.lastSuccessSeconds);
}
