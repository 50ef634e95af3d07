// The dead-letter relay's Prometheus metrics, in the process's registry (services/common/metrics.ts,
// which also holds tally_build_info and tally_retries_total). Names and labels are a contract with
// dashboards and alerts: docs/operations.md.
import client from "prom-client";
import { metricsRegistry, phaseBucketsSeconds, retriesTotal, retryCauses } from "../common/metrics.ts";

export const dlqPublishedTotal = new client.Counter({
  name: "tally_dlq_published_total",
  help: "Rejections published to the dead-letter topic, by reason (a record repeated after a crash counts again)",
  labelNames: ["reason"] as const,
  registers: [metricsRegistry],
});
export const dlqBatchSeconds = new client.Histogram({
  name: "tally_dlq_batch_seconds",
  help: "Time per published batch: read the rejections, produce them (acks all), advance the checkpoints",
  buckets: phaseBucketsSeconds,
  registers: [metricsRegistry],
});
export const dlqCaughtUp = new client.Gauge({
  name: "tally_dlq_caught_up",
  help: "1 when the last pass over every shard found fewer rejections than a batch (the relay is level), else 0",
  registers: [metricsRegistry],
});

export function initDlqMetrics(reasons: readonly string[]): void {
  for (const reason of reasons) dlqPublishedTotal.inc({ reason }, 0);
  for (const cause of retryCauses) retriesTotal.inc({ cause }, 0);
  dlqCaughtUp.set(0);
}
