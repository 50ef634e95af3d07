// Metrics and health of long-running `tally apply` and `tally project` processes: scraped over HTTP
// after a known load, the counters equal the generator's outcome, the phase histograms count every
// batch, the lag gauges reach 0, both are ready, and the JSON logs carry the same figures.
import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { rejectionReasons } from "../../services/applier/decide.ts";
import { sleep } from "../../services/common/retry.ts";
import { expectExactState, produceLoad } from "../support/pipeline.ts";
import { freePort } from "../support/ports.ts";
import { dropTestStack, repoRoot, type TestStack, testStack } from "../support/stack.ts";

const events = 20_000;
const batchEventsMax = 2_000;
const settleMsMax = 60_000;
let stack: TestStack | null = null;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
  if (stack) await dropTestStack(stack);
  stack = null;
});

type Sample = { name: string; labels: Record<string, string>; value: number };
type Tally = {
  child: ChildProcess;
  port: number;
  logLines: () => Record<string, unknown>[];
  exited: Promise<number | null>;
};

/** `bin/tally <command>` serving metrics on a free port, its JSON log lines kept whole. */
async function startTally(s: TestStack, command: "apply" | "project"): Promise<Tally> {
  const port = await freePort();
  const child = spawn(`${repoRoot}bin/tally`, [command], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...s.env,
      TALLY_METRICS_PORT: String(port),
      TALLY_LOG_LEVEL: "info", // the per-batch and per-round lines are info
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const logLines = () =>
    stderr
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { child, port, logLines, exited };
}

/** The Prometheus text format, one sample per line: name{label="value",...} number. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape(port: number): Promise<Sample[]> {
  return parseMetrics(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
}

const status = async (port: number, path: string) => (await fetch(`http://127.0.0.1:${port}${path}`)).status;

/** The one sample of `name` whose labels include `labels`; 0 when there is none. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  expect(found.length).toBeLessThanOrEqual(1);
  return found[0]?.value ?? 0;
}

/** Polls `check` on fresh scrapes until it holds; returns the scrape it held on. */
async function scrapeUntil(port: number, what: string, check: (s: Sample[]) => boolean): Promise<Sample[]> {
  const deadlineMs = Date.now() + settleMsMax;
  for (;;) {
    const samples = await scrape(port);
    if (check(samples)) return samples;
    if (Date.now() > deadlineMs) throw new Error(`${what}: not within ${settleMsMax} ms`);
    await sleep(200);
  }
}

/** Milliseconds until /health/ready answers 200; refused connections mean "not serving yet". */
async function timeUntilReady(port: number): Promise<number> {
  const startedMs = performance.now();
  const deadlineMs = Date.now() + settleMsMax;
  for (;;) {
    if ((await status(port, "/health/ready").catch(() => 0)) === 200) return performance.now() - startedMs;
    if (Date.now() > deadlineMs) throw new Error(`port ${port} not ready within ${settleMsMax} ms`);
    await sleep(50);
  }
}

const lagGauges = (samples: Sample[], name: string) => samples.filter((s) => s.name === name);
const allZero = (gauges: Sample[], partitions: number) =>
  gauges.length === partitions && gauges.every((g) => g.value === 0);

describe("metrics and health of apply and project", () => {
  it("given a known load, then the scraped counters equal the outcome and the lag gauges reach 0", async () => {
    stack = testStack("metrics", { TALLY_BATCH_EVENTS_MAX: String(batchEventsMax) });
    const partitions = stack.config.TALLY_PARTITIONS;
    const load = await produceLoad(stack, events, 41);
    const outcome = load.outcome;
    const apply = await startTally(stack, "apply");
    const project = await startTally(stack, "project");
    const readyMs = [await timeUntilReady(apply.port), await timeUntilReady(project.port)];

    const applied = await scrapeUntil(apply.port, "applier caught up", (s) => {
      const lag = lagGauges(s, "tally_consumer_lag_records");
      return allZero(lag, partitions) && sampleValue(s, "tally_batch_events_sum") === events;
    });
    expect(await status(apply.port, "/health/ready")).toBe(200);
    expect(await status(apply.port, "/health/live")).toBe(200);
    expect(sampleValue(applied, "tally_records_total", { outcome: "applied" })).toBe(outcome.applied);
    expect(sampleValue(applied, "tally_records_total", { outcome: "duplicate" })).toBe(outcome.duplicates);
    const rejectedByReason = Object.fromEntries(
      rejectionReasons.map((reason) => [
        reason,
        sampleValue(applied, "tally_records_total", { outcome: "rejected", reason }),
      ]),
    );
    expect(rejectedByReason).toEqual(
      Object.fromEntries(
        rejectionReasons.map((r) => [r, r === "state_conflict" ? outcome.rejected.state_conflict : 0]),
      ),
    );
    const batches = sampleValue(applied, "tally_batch_events_count");
    expect(batches).toBeGreaterThanOrEqual(Math.ceil(events / batchEventsMax));
    for (const phase of ["decode", "validate", "write", "commit"]) {
      // Every committed batch times each of its phases once.
      expect({ phase, count: sampleValue(applied, "tally_phase_seconds_count", { phase }) }).toEqual({
        phase,
        count: batches,
      });
      expect(sampleValue(applied, "tally_phase_seconds_sum", { phase })).toBeGreaterThan(0);
    }
    for (const cause of ["registry", "database", "kafka"])
      expect({ cause, retries: sampleValue(applied, "tally_retries_total", { cause }) }).toEqual({
        cause,
        retries: 0,
      });
    expect(sampleValue(applied, "tally_applier_assigned_partitions")).toBe(partitions);

    const projected = await scrapeUntil(
      project.port,
      "projector level",
      (s) =>
        allZero(lagGauges(s, "tally_projector_lag_records"), partitions) &&
        sampleValue(s, "tally_projector_rows_total") > 0,
    );
    expect(await status(project.port, "/health/ready")).toBe(200);
    expect(await status(project.port, "/health/live")).toBe(200);
    const rounds = sampleValue(projected, "tally_projector_rounds_total", { result: "rows" });
    expect(rounds).toBeGreaterThan(0);
    expect(sampleValue(projected, "tally_phase_seconds_count", { phase: "project" })).toBe(rounds);

    // The logs carry the same figures: one line per batch with its phase timings, one per round.
    const batchLines = apply.logLines().filter((l) => l.msg === "batch committed");
    expect(batchLines.length).toBe(batches);
    expect(batchLines.reduce((sum, l) => sum + Number(l.events), 0)).toBe(events);
    for (const field of ["decode_ms", "validate_ms", "write_ms", "commit_ms"])
      expect(batchLines.every((l) => typeof l[field] === "number")).toBe(true);
    const roundLines = project.logLines().filter((l) => l.msg === "projector: round" && Number(l.rows) > 0);
    expect(roundLines.reduce((sum, l) => sum + Number(l.rows), 0)).toBe(
      sampleValue(projected, "tally_projector_rows_total"),
    );
    expect(roundLines.every((l) => typeof l.project_ms === "number")).toBe(true);

    apply.child.kill("SIGTERM");
    project.child.kill("SIGTERM");
    expect([await apply.exited, await project.exited]).toEqual([0, 0]);
    await expectExactState(stack, load);
    process.stderr.write(
      `ops-metrics: apply ready ${Math.round(readyMs[0]!)} ms after start, project ${Math.round(readyMs[1]!)} ms ` +
        `after that; ${batches} batches, ${rounds} projector rounds with rows\n`,
    );
  });
});
