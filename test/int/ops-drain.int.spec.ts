// Graceful drain: SIGTERM mid-stream ends the applier with code 0 within TALLY_SHUTDOWN_MS_MAX, the
// stored offsets are exact at that moment, the member has left the group, and a member started
// right after takes every partition at once rather than after the session timeout.
import { afterEach, describe, expect, it } from "vitest";
import { createKafka } from "../../services/common/kafka.ts";
import { createPool } from "../../services/common/pg.ts";
import { sleep } from "../../services/common/retry.ts";
import { runProjector } from "../../services/projector/index.ts";
import { expectExactState, produceLoad, startApplier, waitForApplied } from "../support/pipeline.ts";
import { freePort } from "../support/ports.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";

const events = 60_000;
const shutdownMsMax = 10_000;
// Long, so that a takeover which waited for it would stand out against one that did not.
const sessionTimeoutMs = 30_000;
let stack: TestStack | null = null;
afterEach(async () => {
  if (stack) await dropTestStack(stack);
  stack = null;
});

type StoredPartition = {
  next: bigint;
  first: bigint;
  applied: bigint;
  duplicates: bigint;
  rejected: bigint;
  ledgerRows: bigint;
};

/** applier_offsets and the ledger's row count, per partition, across the shards. */
async function storedPartitions(s: TestStack): Promise<Map<number, StoredPartition>> {
  const partitions = new Map<number, StoredPartition>();
  for (const url of s.config.TALLY_PG_SHARDS) {
    const pool = createPool(s.config, url, "test", 1);
    try {
      const offsets = await pool.query(
        `SELECT "partition", next_offset::text n, first_offset::text f, applied_count::text a,
                duplicate_count::text d, rejected_count::text r FROM applier_offsets`,
      );
      const ledger = await pool.query(
        "SELECT kafka_partition p, count(*)::text c FROM transfers GROUP BY kafka_partition",
      );
      const rows = new Map<number, bigint>(ledger.rows.map((r) => [r.p, BigInt(r.c)]));
      for (const r of offsets.rows) {
        partitions.set(r.partition, {
          next: BigInt(r.n),
          first: BigInt(r.f),
          applied: BigInt(r.a),
          duplicates: BigInt(r.d),
          rejected: BigInt(r.r),
          ledgerRows: rows.get(r.partition) ?? 0n,
        });
      }
    } finally {
      await pool.end();
    }
  }
  return partitions;
}

async function groupState(s: TestStack): Promise<{ state: string; members: number }> {
  const admin = createKafka(s.config, "test-admin").admin();
  await admin.connect();
  try {
    const [group] = (await admin.describeGroups([s.config.TALLY_GROUP])).groups;
    return { state: group!.state, members: group!.members.length };
  } finally {
    await admin.disconnect();
  }
}

/** Milliseconds from `startedMs` until the applier on `port` is ready holding `partitions`. */
async function timeUntilAssigned(port: number, partitions: number, startedMs: number, timeoutMs: number) {
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${port}/health/ready`).then(
      (r) => r.status,
      () => 0,
    );
    const text = ready === 200 ? await (await fetch(`http://127.0.0.1:${port}/metrics`)).text() : "";
    const held = /^tally_applier_assigned_partitions (\d+)$/m.exec(text)?.[1];
    const elapsedMs = performance.now() - startedMs;
    if (Number(held) === partitions) return elapsedMs;
    if (elapsedMs > timeoutMs) throw new Error(`not ready with ${partitions} partitions in ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Milliseconds from `startedMs` until the first commit, and until every partition in `behind` moved. */
async function timeUntilAllMoved(
  s: TestStack,
  behind: Map<number, bigint>,
  startedMs: number,
  timeoutMs: number,
) {
  let firstCommitMs: number | null = null;
  for (;;) {
    const now = await storedPartitions(s);
    const moved = [...behind].filter(([p, next]) => (now.get(p)?.next ?? next) > next);
    const elapsedMs = performance.now() - startedMs;
    if (moved.length > 0) firstCommitMs ??= elapsedMs;
    if (moved.length === behind.size) return { firstCommitMs: firstCommitMs!, allMs: elapsedMs };
    if (elapsedMs > timeoutMs)
      throw new Error(`${moved.length} of ${behind.size} partitions moved in ${timeoutMs} ms`);
    await sleep(25);
  }
}

describe("graceful drain", () => {
  it("given SIGTERM mid-stream, then exit 0 in the bound, exact offsets, and an immediate takeover", async () => {
    stack = testStack("drain", {
      TALLY_BATCH_EVENTS_MAX: "500",
      TALLY_SHUTDOWN_MS_MAX: String(shutdownMsMax),
      TALLY_KAFKA_SESSION_TIMEOUT_MS: String(sessionTimeoutMs),
    });
    const load = await produceLoad(stack, events, 31);
    const first = startApplier(stack);
    await waitForApplied(stack, BigInt(events / 5));
    const signalledMs = performance.now();
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    const drainMs = performance.now() - signalledMs;
    expect(drainMs).toBeLessThan(shutdownMsMax);

    // Exact at the stop: every consumed offset counted once, every applied record in the ledger.
    const drained = await storedPartitions(stack);
    expect(drained.size).toBe(stack.config.TALLY_PARTITIONS);
    let consumed = 0n;
    for (const [partition, p] of drained) {
      expect({ partition, counted: p.applied + p.duplicates + p.rejected }).toEqual({
        partition,
        counted: p.next - p.first,
      });
      expect({ partition, ledgerRows: p.ledgerRows }).toEqual({ partition, ledgerRows: p.applied });
      consumed += p.next - p.first;
    }
    expect(consumed).toBeLessThan(BigInt(events)); // stopped mid-stream, not at the end
    // The member left the group on its way out: nothing for the next one to wait for.
    expect(await groupState(stack)).toEqual({ state: "Empty", members: 0 });

    const port = await freePort();
    const startedMs = performance.now();
    const second = startApplier({ ...stack, env: { ...stack.env, TALLY_METRICS_PORT: String(port) } });
    const behind = new Map([...drained].map(([p, s]) => [p, s.next]));
    const [assignedMs, moved] = await Promise.all([
      timeUntilAssigned(port, stack.config.TALLY_PARTITIONS, startedMs, sessionTimeoutMs),
      timeUntilAllMoved(stack, behind, startedMs, sessionTimeoutMs),
    ]);
    // Process start, join, every partition assigned and loaded, a first commit: all far below the
    // session timeout that a member which vanished without leaving would cost.
    expect(assignedMs).toBeLessThan(sessionTimeoutMs / 3);
    expect(moved.firstCommitMs).toBeLessThan(sessionTimeoutMs / 3);
    // Every partition moving depends on the work queued before it (2 partitions at a time here).
    expect(moved.allMs).toBeLessThan(sessionTimeoutMs / 2);
    process.stderr.write(
      `ops-drain: drain ${Math.round(drainMs)} ms; second member after its start: ready with every partition ` +
        `${Math.round(assignedMs)} ms, first commit ${Math.round(moved.firstCommitMs)} ms, every partition moved ` +
        `${Math.round(moved.allMs)} ms (session timeout ${sessionTimeoutMs} ms)\n`,
    );

    await waitForApplied(stack, BigInt(events));
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    await runProjector(stack.config, { untilCaughtUp: true });
    await expectExactState(stack, load);
  });

  it("given a chunk waiting out a registry outage, when SIGTERM, then it is abandoned whole and exit 0 at once", async () => {
    stack = testStack("drainwait", { TALLY_SHUTDOWN_MS_MAX: String(shutdownMsMax) });
    await produceLoad(stack, 2_000, 32);
    const port = await freePort();
    const deadRegistry = `http://127.0.0.1:${await freePort()}/apis/ccompat/v7`; // nothing listens
    const applier = startApplier({
      ...stack,
      env: {
        ...stack.env,
        TALLY_METRICS_PORT: String(port),
        TALLY_SCHEMA_REGISTRY_URL: deadRegistry,
        TALLY_RETRY_BACKOFF_MS_MAX: "60000",
      },
    });
    // The n-th retry waits between 12.5·2^n and 25·2^n ms: the 8th, 3.2 s at least.
    const retriesBeforeStop = 8;
    const deadlineMs = Date.now() + 60_000;
    for (;;) {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
        (r) => r.text(),
        () => "",
      );
      const retries = Number(/^tally_retries_total\{cause="registry"\} (\d+)$/m.exec(text)?.[1] ?? 0);
      if (retries >= retriesBeforeStop) break;
      expect(Date.now()).toBeLessThan(deadlineMs);
      await sleep(50);
    }
    const signalledMs = performance.now();
    applier.child.kill("SIGTERM");
    expect(await applier.exited).toBe(0);
    const drainMs = performance.now() - signalledMs;
    // The backoff in progress was cut short, not waited out.
    expect(drainMs).toBeLessThan(2_500);
    // Abandoned whole: no partition moved, nothing counted, no ledger row.
    const stored = await storedPartitions(stack);
    for (const [partition, p] of stored) {
      expect({
        partition,
        next: p.next,
        counted: p.applied + p.duplicates + p.rejected,
        rows: p.ledgerRows,
      }).toEqual({
        partition,
        next: p.first,
        counted: 0n,
        rows: 0n,
      });
    }
    process.stderr.write(
      `ops-drain: stopped while retrying the registry: exit 0 in ${Math.round(drainMs)} ms\n`,
    );
  });
});
