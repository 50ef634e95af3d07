// The applier's Prometheus metrics, in the process's registry (services/common/metrics.ts, which
// also holds tally_build_info and tally_retries_total, recorded by every process). Names and
// labels are a contract with dashboards and alerts: docs/operations.md.
import client from "prom-client";
import { metricsRegistry, phaseBucketsSeconds, retriesTotal, retryCauses } from "../common/metrics.ts";

/** The values of tally_applier_phase_seconds' `phase` label. */
export const applierPhases = ["decode", "validate", "write", "commit"] as const;

export const applierPhaseSeconds = new client.Histogram({
  name: "tally_applier_phase_seconds",
  help: "Time per committed applier chunk in each phase: decode, validate, write, commit",
  labelNames: ["phase"] as const,
  buckets: phaseBucketsSeconds,
  registers: [metricsRegistry],
});

export const recordsTotal = new client.Counter({
  name: "tally_records_total",
  help: "Consumed records committed, by outcome (applied, duplicate, rejected); reason only on rejected",
  labelNames: ["outcome", "reason"] as const,
  registers: [metricsRegistry],
});
export const chunkEvents = new client.Histogram({
  name: "tally_batch_events",
  help: "Records per committed applier transaction",
  buckets: [1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000],
  registers: [metricsRegistry],
});
export const consumerLag = new client.Gauge({
  name: "tally_consumer_lag_records",
  help: "High watermark minus the stored next offset, per partition, group-wide (take max by partition across appliers)",
  labelNames: ["partition"] as const,
  registers: [metricsRegistry],
});
export const assignedPartitions = new client.Gauge({
  name: "tally_applier_assigned_partitions",
  help: "Partitions assigned to this applier by the consumer group",
  registers: [metricsRegistry],
});

export const pausedPartitions = new client.Gauge({
  name: "tally_applier_paused_partitions",
  help: "Partitions this applier holds paused after a transient failure (retry-or-pause), resumed after a backoff",
  registers: [metricsRegistry],
});
export const partitionPausesTotal = new client.Counter({
  name: "tally_applier_partition_pauses_total",
  help: "Times a partition was paused after a transient failure (a pause may last less than a scrape interval)",
  registers: [metricsRegistry],
});

/**
 * Every label value a dashboard plots starts at 0, so rate() and "no rejections yet" read as 0,
 * not as a missing series. Applied and duplicate records have no reason: their series carry no
 * `reason` label at all (an empty label value is a series of its own in Prometheus' eyes).
 */
export function initApplierMetrics(rejectionReasons: readonly string[]): void {
  recordsTotal.inc({ outcome: "applied" }, 0);
  recordsTotal.inc({ outcome: "duplicate" }, 0);
  for (const reason of rejectionReasons) recordsTotal.inc({ outcome: "rejected", reason }, 0);
  for (const cause of retryCauses) retriesTotal.inc({ cause }, 0);
  assignedPartitions.set(0);
  pausedPartitions.set(0);
  partitionPausesTotal.inc(0);
  for (const phase of applierPhases) applierPhaseSeconds.zero({ phase });
}
