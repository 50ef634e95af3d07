// Metrics and health of long-running `tally apply` and `tally project` processes, scraped over HTTP
// after a known load. Every figure is compared with an expectation from outside the process that
// emitted it: the generator's outcome, the database's counts and offsets, the topic's high
// watermarks. A series that is missing fails (it never reads as 0); retries may happen (the
// machine is shared), and the counts must be exact regardless.
import { afterEach, describe, expect, it } from "vitest";
import { rejectionReasons } from "../../services/applier/decide.ts";
import { createPool } from "../../services/common/pg.ts";
import { httpStatus, type Sample, sampleValue, scrapeUntil, waitReady } from "../support/metrics.ts";
import { highWatermarks, storedPartitions } from "../support/offsets.ts";
import { expectExactState, produceLoad, startApplier, startProjector } from "../support/pipeline.ts";
import { freePort } from "../support/ports.ts";
import { committedBatches, type TallyProcess } from "../support/process.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";
import { waitUntil } from "../support/wait.ts";

const events = 20_000;
const batchEventsMax = 2_000;
let stack: TestStack | null = null;
const started: TallyProcess[] = [];
afterEach(async () => {
  for (const p of started.splice(0)) {
    p.signal("SIGKILL");
    await p.exited;
  }
  if (stack) await dropTestStack(stack);
  stack = null;
});

const lagGauges = (samples: Sample[], name: string) => samples.filter((s) => s.name === name);
const allZero = (gauges: Sample[], partitions: number) =>
  gauges.length === partitions && gauges.every((g) => g.value === 0);

/** Rows of a query summed over the shards: key → count. */
async function shardCounts(s: TestStack, sql: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const url of s.config.TALLY_PG_SHARDS) {
    const pool = createPool(s.config, url, "test", 1);
    try {
      for (const row of (await pool.query<{ k: string; n: number }>(sql)).rows)
        counts.set(row.k, (counts.get(row.k) ?? 0) + row.n);
    } finally {
      await pool.end();
    }
  }
  return counts;
}

describe("metrics and health of apply and project", { timeout: 300_000 }, () => {
  it("given a known load, then the scraped counters equal the generator's outcome and the database's, and the lag gauges reach 0", async () => {
    stack = testStack("metrics", { TALLY_BATCH_EVENTS_MAX: String(batchEventsMax) });
    const s = stack;
    const partitions = s.config.TALLY_PARTITIONS;
    const load = await produceLoad(s, events, 41);
    const outcome = load.outcome;

    const applyPort = await freePort();
    const applyStartedMs = performance.now();
    const apply = startApplier(s, [], { TALLY_METRICS_PORT: String(applyPort) });
    started.push(apply);
    await waitReady(applyPort);
    const applyReadyMs = performance.now() - applyStartedMs;
    const applied = await scrapeUntil(applyPort, "the applier caught up", (x) => {
      return (
        allZero(lagGauges(x, "tally_consumer_lag_records"), partitions) &&
        sampleValue(x, "tally_batch_events_sum") === events
      );
    });
    expect(await httpStatus(applyPort, "/health/ready")).toBe(200);
    expect(await httpStatus(applyPort, "/health/live")).toBe(200);
    expect(sampleValue(applied, "tally_applier_assigned_partitions")).toBe(partitions);

    // Records by outcome: the generator's figures, and the database's own counts.
    const stored = await storedPartitions(s);
    const dbTotals = { applied: 0, duplicates: 0, rejected: 0 };
    for (const p of stored.values()) {
      dbTotals.applied += Number(p.applied);
      dbTotals.duplicates += Number(p.duplicates);
      dbTotals.rejected += Number(p.rejected);
    }
    const rejectedRowsByReason = await shardCounts(
      s,
      "SELECT reason k, count(*)::int n FROM rejected_transfers GROUP BY reason",
    );
    const scraped = {
      applied: sampleValue(applied, "tally_records_total", { outcome: "applied" }),
      duplicates: sampleValue(applied, "tally_records_total", { outcome: "duplicate" }),
      rejected: Object.fromEntries(
        rejectionReasons.map((reason) => [
          reason,
          sampleValue(applied, "tally_records_total", { outcome: "rejected", reason }),
        ]),
      ),
    };
    const expectedRejected = Object.fromEntries(
      rejectionReasons.map((r) => [r, r === "state_conflict" ? outcome.rejected.state_conflict : 0]),
    );
    expect(scraped).toEqual({
      applied: outcome.applied,
      duplicates: outcome.duplicates,
      rejected: expectedRejected,
    });
    expect(dbTotals).toEqual({
      applied: outcome.applied,
      duplicates: outcome.duplicates,
      rejected: outcome.rejected.state_conflict,
    });
    expect(Object.fromEntries(rejectedRowsByReason)).toEqual({
      state_conflict: outcome.rejected.state_conflict,
    });
    expect(outcome.applied + outcome.duplicates + outcome.rejected.state_conflict).toBe(events);

    // Batches: the "batch committed" lines tile each partition from its first offset to the
    // topic's high watermark, once, with no gap and no overlap. So their number is the number of
    // committed transactions, which the batch histogram and each phase histogram must count.
    const highs = await highWatermarks(s);
    // The lines come through a pipe, maybe after the scrape: wait until they account for every event.
    const batches = await waitUntil("the batch lines of every event", () => {
      const lines = committedBatches(apply.lines);
      return lines.reduce((sum, b) => sum + b.events, 0) >= events && lines;
    });
    for (const [partition, high] of highs) {
      let next = stored.get(partition)!.first;
      for (const b of batches.filter((x) => x.partition === partition)) {
        expect({ partition, from: next, to: b.next }).toEqual({
          partition,
          from: next,
          to: next + BigInt(b.events),
        });
        expect(b.events).toBeLessThanOrEqual(batchEventsMax);
        next = b.next;
      }
      expect({ partition, end: next }).toEqual({ partition, end: high });
      expect(stored.get(partition)!.next).toBe(high);
    }
    expect(sampleValue(applied, "tally_batch_events_sum")).toBe(events);
    expect(sampleValue(applied, "tally_batch_events_count")).toBe(batches.length);
    for (const phase of ["decode", "validate", "write", "commit"]) {
      expect({ phase, count: sampleValue(applied, "tally_applier_phase_seconds_count", { phase }) }).toEqual({
        phase,
        count: batches.length,
      });
      expect(sampleValue(applied, "tally_applier_phase_seconds_sum", { phase })).toBeGreaterThan(0);
    }
    for (const field of ["decode_ms", "validate_ms", "write_ms", "commit_ms"])
      expect(
        apply.lines.filter((l) => l.msg === "batch committed").every((l) => typeof l[field] === "number"),
      ).toBe(true);
    // Retries may happen on a busy machine; the series must exist, and the counts above are exact anyway.
    const retries = Object.fromEntries(
      ["registry", "database", "kafka"].map((cause) => [
        cause,
        sampleValue(applied, "tally_retries_total", { cause }),
      ]),
    );
    for (const value of Object.values(retries)) expect(value).toBeGreaterThanOrEqual(0);

    // The projector starts once the ledger is complete: the balance-delta entries it must project
    // are counted in the shards first (it prunes them once they are in the views).
    const entriesSql = `SELECT 'all' k, ((SELECT coalesce(sum(entry_count), 0) FROM balance_delta_chunks)
                                         + (SELECT count(*) FROM balance_deltas))::int n`;
    const deltaRows = [...(await shardCounts(s, entriesSql)).values()][0]!;
    expect(deltaRows).toBeGreaterThan(0);
    const projectPort = await freePort();
    const project = startProjector(s, [], { TALLY_METRICS_PORT: String(projectPort) });
    started.push(project);
    await waitReady(projectPort);
    const projected = await scrapeUntil(projectPort, "the projector level", (x) =>
      allZero(lagGauges(x, "tally_projector_lag_records"), partitions),
    );
    expect(await httpStatus(projectPort, "/health/ready")).toBe(200);
    expect(await httpStatus(projectPort, "/health/live")).toBe(200);
    expect(sampleValue(projected, "tally_projector_rows_total")).toBe(deltaRows);
    // Lag 0 means every checkpoint equals the applier's stored offset: read both in the databases.
    const views = createPool(s.config, s.config.TALLY_PG_VIEWS, "test", 1);
    const checkpoints = (
      await views
        .query("SELECT kafka_partition p, end_offset::text e FROM projector_checkpoints WHERE topic = $1", [
          s.config.TALLY_TOPIC,
        ])
        .finally(() => views.end())
    ).rows;
    expect(new Map(checkpoints.map((r) => [r.p as number, BigInt(r.e)]))).toEqual(
      new Map([...stored].map(([p, x]) => [p, x.next])),
    );
    const roundLines = await waitUntil("the round lines of every delta row", () => {
      const lines = project.lines.filter((l) => l.msg === "projector: round" && Number(l.rows) > 0);
      return lines.reduce((sum, l) => sum + Number(l.rows), 0) >= deltaRows && lines;
    });
    expect(roundLines.reduce((sum, l) => sum + Number(l.rows), 0)).toBe(deltaRows);
    expect(roundLines.every((l) => typeof l.project_ms === "number")).toBe(true);
    const rounds = sampleValue(projected, "tally_projector_rounds_total", { result: "rows" });
    expect(rounds).toBe(roundLines.length);
    expect(sampleValue(projected, "tally_projector_round_seconds_count")).toBe(roundLines.length);
    for (const cause of ["registry", "database", "kafka"])
      expect(sampleValue(projected, "tally_retries_total", { cause })).toBeGreaterThanOrEqual(0);

    apply.signal("SIGTERM");
    project.signal("SIGTERM");
    expect([await apply.exited, await project.exited]).toEqual([0, 0]);
    await expectExactState(s, load);
    // For the reader, not asserted: figures of time depend on the machine's load.
    process.stderr.write(
      `ops-metrics: apply ready ${Math.round(applyReadyMs)} ms after start; ${batches.length} batches, ` +
        `${rounds} projector rounds with rows, retries ${JSON.stringify(retries)}\n`,
    );
  });
});
