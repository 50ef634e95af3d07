// The metrics server's contract (paths, status codes, port 0 = off) and what a projector round
// records, without any of the stack.
import { afterEach, describe, expect, it } from "vitest";
import { initApplierMetrics } from "../../services/applier/metrics.ts";
import { loadConfig } from "../../services/common/config.ts";
import {
  buildInfo,
  metricsHostOf,
  metricsRegistry,
  retryCauseOf,
  serveMetrics,
} from "../../services/common/metrics.ts";
import { TransientError } from "../../services/common/retry.ts";
import { tallyVersion } from "../../services/common/version.ts";
import { observeRound } from "../../services/projector/metrics.ts";
import type { RoundProgress } from "../../services/projector/projector.ts";
import type { ShardRound } from "../../services/projector/round.ts";
import { freePort } from "../support/ports.ts";

/**
 * The one sample of `name` with `labels`. A metric or sample that is not there throws: read as 0,
 * a renamed counter would pass every "== 0" check.
 */
async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  // A histogram's _count and _sum are values of the histogram's metric, named by metricName.
  const base = name.replace(/_(count|sum|bucket)$/, "");
  const metric = (await metricsRegistry.getMetricsAsJSON()).find((m) => m.name === base);
  if (metric === undefined) throw new Error(`no metric ${base} is registered`);
  const found = metric.values.filter(
    (v) =>
      ((v as { metricName?: string }).metricName ?? base) === name &&
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  if (found.length !== 1)
    throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples, not 1`);
  return found[0]!.value;
}

let closeServer: (() => Promise<void>) | null = null;
afterEach(async () => {
  await closeServer?.();
  closeServer = null;
  metricsRegistry.resetMetrics();
  buildInfo.set({ version: tallyVersion }, 1);
});

describe("serveMetrics", () => {
  it("given port 0, then nothing is served", async () => {
    expect(await serveMetrics(0, { live: () => true, ready: () => true })).toBeNull();
  });

  it("given a port, then /health/* answer 200 or 503 as health says, /metrics the registry, else 404", async () => {
    let ready = false;
    let live = true;
    const port = await freePort();
    const server = (await serveMetrics(port, { live: () => live, ready: () => ready }))!;
    closeServer = server.close;
    expect(server.port).toBe(port);
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
    expect((await get("/health/ready")).status).toBe(503);
    expect((await get("/health/live")).status).toBe(200);
    ready = true;
    live = false;
    expect((await get("/health/ready")).status).toBe(200);
    expect((await get("/health/live")).status).toBe(503);
    expect((await get("/nothing")).status).toBe(404);
    initApplierMetrics(["state_conflict"]);
    const text = await (await get("/metrics")).text();
    expect(text).toContain('tally_records_total{outcome="rejected",reason="state_conflict"} 0');
    expect(text).toContain('tally_retries_total{cause="kafka"} 0');
    expect(text).toContain("# TYPE tally_applier_phase_seconds histogram");
    expect(text).toContain('tally_applier_phase_seconds_count{phase="commit"} 0');
    expect(text).toContain(`tally_build_info{version="${tallyVersion}"} 1`);
    // Applied and duplicate records carry no reason label, not an empty one.
    expect(text).toContain('tally_records_total{outcome="applied"} 0');
    expect(text).toContain('tally_records_total{outcome="duplicate"} 0');
    expect(text).not.toContain('reason=""');
    // One family per service: the mixed tally_phase_seconds is gone.
    expect(text).not.toContain("tally_phase_seconds");
    expect(text).toContain("# TYPE tally_projector_round_seconds histogram");
    expect(text).toContain("nodejs_eventloop_lag_p99_seconds");
  });

  it("given a port taken, then starting fails naming TALLY_METRICS_PORT", async () => {
    const port = await freePort();
    const first = (await serveMetrics(port, { live: () => true, ready: () => true }))!;
    closeServer = first.close;
    await expect(serveMetrics(port, { live: () => true, ready: () => true })).rejects.toThrow(
      `TALLY_METRICS_PORT=${port}: listening on 127.0.0.1:${port} is taken`,
    );
  });
});

describe("metric helpers", () => {
  it("given a metric name that is not registered (a renamed counter), when read, then the read fails instead of giving 0", async () => {
    initApplierMetrics(["state_conflict"]);
    expect(await metricValue("tally_records_total", { outcome: "rejected", reason: "state_conflict" })).toBe(
      0,
    );
    await expect(metricValue("tally_record_total", { outcome: "applied" })).rejects.toThrow(
      "no metric tally_record_total is registered",
    );
    await expect(metricValue("tally_records_total", { outcome: "renamed" })).rejects.toThrow(/0 samples/);
  });

  it("given errors from each source, then retries are counted under registry, kafka or database", () => {
    expect(retryCauseOf(new TransientError("registry down", "registry"))).toBe("registry");
    expect(retryCauseOf(new TransientError("broker gone", "kafka"))).toBe("kafka");
    expect(retryCauseOf(Object.assign(new Error("terminating connection"), { code: "57P01" }))).toBe(
      "database",
    );
    expect(retryCauseOf(null)).toBe("database");
  });

  it("given no TALLY_METRICS_HOST, then the server binds the loopback only", () => {
    expect(metricsHostOf(loadConfig({}))).toBe("127.0.0.1");
  });

  it("given a projector round, then its lag per partition, rows and duration are recorded", async () => {
    const progress: RoundProgress = {
      round: 1,
      rows: 120,
      projectMs: 42,
      lagRecords: 7n,
      conflicts: 0,
      level: false,
    };
    const shard = (lag: [number, bigint][]): ShardRound => ({
      shard: 0,
      rows: 60,
      level: false,
      conflict: false,
      lagRecords: lag.reduce((sum, [, l]) => sum + l, 0n),
      lagByPartition: new Map(lag),
      checkpoints: new Map(),
      readMs: 1,
      writeMs: 1,
    });
    observeRound(progress, [shard([[0, 7n]]), shard([[1, 0n]])]);
    observeRound({ ...progress, round: 2, rows: 0, projectMs: 1, lagRecords: 0n }, []);
    expect(await metricValue("tally_projector_lag_records", { partition: "0" })).toBe(7);
    expect(await metricValue("tally_projector_lag_records", { partition: "1" })).toBe(0);
    expect(await metricValue("tally_projector_rows_total", {})).toBe(120);
    expect(await metricValue("tally_projector_rounds_total", { result: "rows" })).toBe(1);
    expect(await metricValue("tally_projector_rounds_total", { result: "idle" })).toBe(1);
    // Only the round that moved rows is timed: an idle poll is not work.
    expect(await metricValue("tally_projector_round_seconds_count", {})).toBe(1);
    expect(await metricValue("tally_projector_round_seconds_sum", {})).toBeCloseTo(0.042, 6);
  });
});
