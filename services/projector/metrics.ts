// The projector's Prometheus metrics, in the process's registry (services/common/metrics.ts, which
// also holds tally_phase_seconds and tally_retries_total, shared with the applier), and what a
// round tells them: its duration (phase "project"), the rows it moved, and the lag per partition it
// left behind. The same figures go to the "projector: round" log line. Names and labels are a
// contract with dashboards and alerts: docs/operations.md.
import client from "prom-client";
import { metricsRegistry, phaseSeconds, retriesTotal, retryCauses } from "../common/metrics.ts";
import type { RoundProgress, ShardRound } from "./round.ts";

/** The values of tally_phase_seconds' `phase` label that the projector records. */
export const projectorPhases = ["project"] as const;

export const projectorLag = new client.Gauge({
  name: "tally_projector_lag_records",
  help: "Applier next offset minus the projector checkpoint, per partition",
  labelNames: ["partition"] as const,
  registers: [metricsRegistry],
});
export const projectorRowsTotal = new client.Counter({
  name: "tally_projector_rows_total",
  help: "Balance-delta rows projected into the views",
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
  phaseSeconds.observe({ phase: "project" }, progress.projectMs / 1000);
}
