// Graceful drain: SIGTERM mid-stream ends the applier with code 0 (so within its own bound,
// TALLY_SHUTDOWN_MS_MAX: past it the process exits 1), the stored offsets are exact at that moment,
// the member has left the group, and a member started right after takes every partition. States
// only: exit codes, the drain's log line, offsets and counts; never a figure of wall time.
import { afterEach, describe, expect, it } from "vitest";
import { runProjector } from "../../services/projector/index.ts";
import { groupState } from "../support/applier-process.ts";
import { sampleValue, scrape, scrapeUntil, waitReady } from "../support/metrics.ts";
import { expectExactCounts, highWatermarks, storedPartitions } from "../support/offsets.ts";
import {
  expectExactState,
  onAppliedLine,
  produceLoad,
  startApplier,
  waitForApplied,
} from "../support/pipeline.ts";
import { freePort } from "../support/ports.ts";
import type { LogLine, TallyProcess } from "../support/process.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";
import { waitUntil } from "../support/wait.ts";

const events = 60_000;
const shutdownMsMax = 10_000;
// Long, so that a takeover which waited for it would not end before the test's own guard.
const sessionTimeoutMs = 30_000;
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

const drainLine = (p: TallyProcess) => p.lines.filter((l: LogLine) => l.msg === "applier stopped");

describe("graceful drain", { timeout: 300_000 }, () => {
  it("given SIGTERM mid-stream, then exit 0, exact offsets, the member gone, and a takeover of every partition", async () => {
    stack = testStack("drain", {
      TALLY_BATCH_EVENTS_MAX: "500",
      TALLY_SHUTDOWN_MS_MAX: String(shutdownMsMax),
      TALLY_KAFKA_SESSION_TIMEOUT_MS: String(sessionTimeoutMs),
    });
    const s = stack;
    const partitions = s.config.TALLY_PARTITIONS;
    const load = await produceLoad(s, events, 31);
    const first = startApplier(s);
    started.push(first);
    // SIGTERM on the line that reports a fifth applied: mid-stream by construction.
    await onAppliedLine(first, new Map(), BigInt(events / 5), () => first.signal("SIGTERM"));
    expect(await first.exited).toBe(0);
    expect(drainLine(first)).toHaveLength(1);
    expect(first.lines.filter((l) => l.level === 50 || l.msg === "shutdown exceeded its bound")).toEqual([]);

    // Exact at the stop: every consumed offset counted once, every applied record in the ledger,
    // every batch the process reported committed is in the database, and nothing beyond it.
    const drained = await storedPartitions(s);
    expect(drained.size).toBe(partitions);
    expectExactCounts(drained);
    const reported = new Map<number, bigint>();
    for (const l of first.lines.filter((l) => l.msg === "batch committed"))
      reported.set(Number(l.partition), BigInt(String(l.next_offset)));
    for (const [partition, p] of drained)
      expect({ partition, next: p.next }).toEqual({ partition, next: reported.get(partition) ?? p.first });
    const consumed = [...drained.values()].reduce((sum, p) => sum + (p.next - p.first), 0n);
    expect(consumed).toBeGreaterThanOrEqual(BigInt(events / 5));
    expect(consumed).toBeLessThan(BigInt(events)); // stopped mid-stream, not at the end
    // The member left the group on its way out: nothing for the next one to wait for.
    expect(await groupState(s)).toEqual({ state: "Empty", members: 0 });

    const port = await freePort();
    const secondStartedMs = performance.now();
    const second = startApplier(s, [], { TALLY_METRICS_PORT: String(port) });
    started.push(second);
    const assigned = await second.waitForLine(
      "every partition assigned to the second member",
      (l) => l.msg === "partitions assigned; sought to stored offsets",
    );
    expect([...(assigned.partitions as number[])].sort()).toEqual(
      Array.from({ length: partitions }, (_, p) => p),
    );
    await waitReady(port);
    expect(sampleValue(await scrape(port), "tally_applier_assigned_partitions")).toBe(partitions);
    // Every partition left with records to apply moves on from where the first member left it.
    const highs = await highWatermarks(s);
    const behind = [...drained].filter(([p, d]) => d.next < highs.get(p)!);
    expect(behind.length).toBeGreaterThan(0);
    await waitUntil("every pending partition moved past the drained offsets", async () => {
      const now = await storedPartitions(s);
      return behind.every(([p, d]) => now.get(p)!.next > d.next);
    });

    const movedMs = performance.now() - secondStartedMs;

    await waitForApplied(s, BigInt(events));
    const caughtUpMs = performance.now() - secondStartedMs;
    await scrapeUntil(port, "the second member's lag at 0", (samples) =>
      samples.filter((x) => x.name === "tally_consumer_lag_records").every((x) => x.value === 0),
    );
    second.signal("SIGTERM");
    expect(await second.exited).toBe(0);
    expect(drainLine(second)).toHaveLength(1);
    // Nothing double: the two members' batches together tile each partition once.
    const batches = [...first.lines, ...second.lines].filter((l) => l.msg === "batch committed");
    expect(batches.reduce((sum, l) => sum + Number(l.events), 0)).toBe(events);
    await runProjector(s.config, { untilCaughtUp: true });
    await expectExactState(s, load);
    // For the reader, not asserted: figures of time depend on the machine's load.
    process.stderr.write(
      `ops-drain: first member's drain ${drainLine(first)[0]!.drain_ms} ms (its own figure); second member: ` +
        `every pending partition moved ${Math.round(movedMs)} ms, caught up ${Math.round(caughtUpMs)} ms after its start ` +
        `(session timeout ${sessionTimeoutMs} ms)\n`,
    );
  });

  it("given a chunk waiting out a registry outage, when SIGTERM, then it is abandoned whole and exit 0", async () => {
    stack = testStack("drainwait", { TALLY_SHUTDOWN_MS_MAX: String(shutdownMsMax) });
    const s = stack;
    await produceLoad(s, 2_000, 32);
    const port = await freePort();
    const deadRegistry = `http://127.0.0.1:${await freePort()}/apis/ccompat/v7`; // nothing listens
    const applier = startApplier(s, [], {
      TALLY_METRICS_PORT: String(port),
      TALLY_SCHEMA_REGISTRY_URL: deadRegistry,
      TALLY_RETRY_BACKOFF_MS_MAX: "60000",
    });
    started.push(applier);
    // The signal: the retry counter, and the applier's own retry lines, at 8 or more.
    const retriesBeforeStop = 8;
    await scrapeUntil(
      port,
      `${retriesBeforeStop} registry retries`,
      (samples) => sampleValue(samples, "tally_retries_total", { cause: "registry" }) >= retriesBeforeStop,
    );
    expect(
      applier.lines.filter((l) => l.msg === "transient failure; retrying" && l.cause === "registry").length,
    ).toBeGreaterThanOrEqual(retriesBeforeStop);
    applier.signal("SIGTERM");
    // Exit 0: the drain ended within TALLY_SHUTDOWN_MS_MAX (past it the process exits 1), although
    // the backoff under way could be up to a minute: it was cut short, not waited out.
    expect(await applier.exited).toBe(0);
    expect(drainLine(applier)).toHaveLength(1);
    expect(applier.lines.filter((l) => l.msg === "batch committed")).toEqual([]);
    // Abandoned whole: every partition's row is there, none moved, nothing counted, no ledger row.
    const stored = await storedPartitions(s);
    expect([...stored.keys()].sort()).toEqual(Array.from({ length: s.config.TALLY_PARTITIONS }, (_, p) => p));
    for (const [partition, p] of stored) {
      expect({
        partition,
        next: p.next,
        counted: p.applied + p.duplicates + p.rejected,
        rows: p.ledgerRows + p.rejectedRows,
      }).toEqual({ partition, next: p.first, counted: 0n, rows: 0n });
    }
  });
});
