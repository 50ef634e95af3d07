// Crashes, rebalances and outages mid-stream end in exactly the state the generator predicts.
// Every kill, pause and outage lands on a signal the process gives (its "batch committed" line, a
// retry line, a checkpoint row, a lock wait in pg_stat_activity), never after a sleep, and each
// test shows where it landed: partitions still pending, the retries it caused, nothing half-written.
import { afterEach, describe, expect, it } from "vitest";
import { databaseNameOf } from "../../services/common/config.ts";
import { createPool, type Pool } from "../../services/common/pg.ts";
import { partitionsOfShard } from "../../services/common/shards.ts";
import { rebuildViews, runProjector } from "../../services/projector/index.ts";
import { ensureCheckpoints } from "../../services/projector/views-write.ts";
import { expectExactAndPending, storedPartitions } from "../support/offsets.ts";
import {
  expectExactState,
  finishPipeline,
  onAppliedLine,
  produceLoad,
  produceLoadStaged,
  startApplier,
  startProjector,
  waitForApplied,
} from "../support/pipeline.ts";
import { committedBatches, exitWithin, type LogLine, type TallyProcess } from "../support/process.ts";
import { dropTestStack, restoreStack, type TestStack, testStack, withOutage } from "../support/stack.ts";
import { waitUntil } from "../support/wait.ts";

const eventsPerTest = 40_000;
// Small transactions make many commits, so that kills and rebalances land mid-stream.
const smallBatches = { TALLY_BATCH_EVENTS_MAX: "500" };
let stack: TestStack | null = null;
const started: TallyProcess[] = [];
afterEach(async () => {
  for (const p of started.splice(0)) {
    p.signal("SIGCONT");
    p.signal("SIGKILL");
    await p.exited;
  }
  // A test that failed or timed out mid-outage left a server stopped: the next test needs it.
  await restoreStack();
  if (stack) await dropTestStack(stack);
  stack = null;
});

function track(p: TallyProcess): TallyProcess {
  started.push(p);
  return p;
}

const nextOffsets = async (s: TestStack) =>
  new Map([...(await storedPartitions(s))].map(([partition, p]) => [partition, p.next]));

const isRetry = (cause: string) => (line: LogLine) =>
  line.msg === "transient failure; retrying" && line.cause === cause;

// A test waits on signals, never a clock: its bound is only against a hang, far above the 120 s
// of the project, since two busy cores can stretch a SIGKILL test's session timeouts.
describe("faults mid-stream", { timeout: 400_000 }, () => {
  it("given an applier killed with SIGKILL three times, when restarted, then the state is exact", async () => {
    stack = testStack("kill", smallBatches);
    const load = await produceLoad(stack, eventsPerTest, 11);
    let appliedBefore = 0n;
    for (let kill = 1; kill <= 3; kill++) {
      const applier = track(startApplier(stack));
      const target = BigInt((kill * eventsPerTest) / 5);
      // Killed on the very line that reports the target reached: mid-stream by construction.
      await onAppliedLine(applier, await nextOffsets(stack), target, () => applier.signal("SIGKILL"));
      expect(await applier.exited).toBe(-1);
      const { applied, pending } = await expectExactAndPending(stack);
      expect(applied).toBeGreaterThanOrEqual(target); // what it reported committed stayed committed
      expect(applied).toBeGreaterThan(appliedBefore); // each incarnation moved the stream on
      expect(pending.length).toBeGreaterThan(0);
      appliedBefore = applied;
    }
    await finishPipeline(stack);
    await expectExactState(stack, load);
  });

  it("given two then three appliers with members joining and leaving, then nothing is lost or doubled", async () => {
    stack = testStack("rebal", { ...smallBatches, TALLY_PARTITIONS: "6" });
    // Sent in parts, each after a fault landed, so that records are pending at every fault.
    const staged = await produceLoadStaged(stack, eventsPerTest, 12);
    await staged.sendUpTo(eventsPerTest * 0.4);
    const first = track(startApplier(stack));
    const second = track(startApplier(stack));
    await waitForApplied(stack, BigInt(eventsPerTest / 5));
    const third = track(startApplier(stack)); // a third member: rebalance
    const assigned = await third.waitForLine(
      "partitions assigned to the third member",
      (l) =>
        l.msg === "partitions assigned; sought to stored offsets" && (l.partitions as number[]).length > 0,
    );
    expect((assigned.partitions as number[]).length).toBeLessThan(6); // it shares: the group rebalanced
    await staged.sendUpTo(eventsPerTest * 0.6);
    await expectExactAndPending(stack); // ...while records were still to apply

    await waitForApplied(stack, BigInt(eventsPerTest / 2));
    first.signal("SIGTERM"); // a member leaves cleanly: rebalance
    expect(await first.exited).toBe(0);
    expect(first.lines.filter((l) => l.msg === "applier stopped")).toHaveLength(1);
    await staged.sendUpTo(eventsPerTest * 0.85);
    await expectExactAndPending(stack);

    // A member vanishes: its partitions move after the session timeout. Killed on the line that
    // reports 70 % applied group-wide, so that the others still have work to take over.
    const members = [second, third];
    await onAppliedLine(members, await nextOffsets(stack), BigInt((eventsPerTest * 7) / 10), () =>
      second.signal("SIGKILL"),
    );
    expect(await second.exited).toBe(-1);
    // The rest is sent now: the killed member's partitions cannot move before the session timeout,
    // so records are pending there whatever the survivor has finished meanwhile.
    await staged.sendUpTo(eventsPerTest);
    await staged.close();
    await expectExactAndPending(stack);
    const load = staged.load;

    await finishPipeline(stack);
    third.signal("SIGTERM");
    expect(await third.exited).toBe(0);
    await expectExactState(stack, load);
  });

  it("given the registry stopped, when the applier starts, then it retries without rejecting and catches up after", async ({
    signal,
  }) => {
    const s = testStack("reg");
    stack = s;
    const events = eventsPerTest / 4;
    const load = await produceLoad(s, events, 13);
    const applier = await withOutage("registry", signal, async () => {
      const applier = track(startApplier(s, ["--until-caught-up"]));
      await applier.waitForLine(
        "the assignment loaded",
        (l) => l.msg === "partitions assigned; sought to stored offsets",
      );
      // The signal: the applier's own retries on the registry, three of them.
      await waitUntil("three registry retries", () => applier.lines.filter(isRetry("registry")).length >= 3, {
        intervalMs: 20,
      });
      expect(applier.child.exitCode).toBeNull(); // still retrying, not failed, not done
      // Nothing applied, nothing rejected, nothing counted: the records wait.
      const stored = await storedPartitions(s);
      expect([...stored.keys()].sort()).toEqual(
        Array.from({ length: s.config.TALLY_PARTITIONS }, (_, p) => p),
      );
      for (const [partition, p] of stored)
        expect({
          partition,
          next: p.next,
          counted: p.applied + p.duplicates + p.rejected,
          rows: p.ledgerRows + p.rejectedRows,
        }).toEqual({
          partition,
          next: p.first,
          counted: 0n,
          rows: 0n,
        });
      expect(committedBatches(applier.lines)).toEqual([]);
      return applier;
    });
    expect(await exitWithin(applier)).toBe(0);
    // The same process applied the whole topic once the registry answered again.
    expect(committedBatches(applier.lines).reduce((sum, b) => sum + b.events, 0)).toBe(events);
    await runProjector(stack.config, { untilCaughtUp: true });
    await expectExactState(stack, load);
  });

  it("given the database stopped mid-stream and started again, then the applier retries and the state is exact", async ({
    signal,
  }) => {
    stack = testStack("pgr", smallBatches);
    const load = await produceLoad(stack, eventsPerTest, 14);
    const applier = track(startApplier(stack, ["--until-caught-up"]));
    // Paused (SIGSTOP) on the line that reports a quarter applied: it cannot finish meanwhile.
    await onAppliedLine(applier, new Map(), BigInt(eventsPerTest / 4), () => applier.signal("SIGSTOP"));
    const { pending } = await expectExactAndPending(stack);
    expect(pending.length).toBeGreaterThan(0);
    const linesAtStop = applier.lines.length;
    const afterStop = (match: (l: LogLine) => boolean) => (l: LogLine) =>
      applier.lines.indexOf(l) >= linesAtStop && match(l);
    const retried = await withOutage("postgres", signal, async () => {
      applier.signal("SIGCONT");
      // The signal: a retry on the database, which is down while records are still pending.
      const retry = await applier.waitForLine("a database retry", afterStop(isRetry("database")));
      expect(applier.child.exitCode).toBeNull();
      return retry;
    });
    expect(await exitWithin(applier)).toBe(0);
    // It went on after the outage: batches committed after its retry.
    const retryIndex = applier.lines.indexOf(retried);
    expect(committedBatches(applier.lines.slice(retryIndex)).length).toBeGreaterThan(0);
    await runProjector(stack.config, { untilCaughtUp: true });
    await expectExactState(stack, load);
  });

  it("given the projector killed with SIGKILL mid-round, when restarted, then its views equal --rebuild's and the generator's", async () => {
    // Small applier batches and a small round bound: the first round takes a sliver of each shard.
    stack = testStack("proj", { TALLY_BATCH_EVENTS_MAX: "100", TALLY_PROJECT_DELTAS_MAX: "100" });
    const s = stack;
    const load = await produceLoad(s, eventsPerTest / 2, 15);
    const applier = track(startApplier(s, ["--until-caught-up"]));
    expect(await applier.exited).toBe(0);
    const applied = await nextOffsets(s);

    const { TALLY_TOPIC: topic, TALLY_PG_SHARDS: shards, TALLY_PARTITIONS: partitionCount } = s.config;
    const [shard0, shard1] = [0, 1].map((k) => partitionsOfShard(k, shards.length, partitionCount)) as [
      number[],
      number[],
    ];
    const views = createPool(s.config, s.config.TALLY_PG_VIEWS, "test", 2);
    const gate = await views.connect();
    try {
      // The gate: shard 1's checkpoint rows locked, so the projector's first round commits shard 0
      // and then waits, its shard-1 transaction open, until it is killed there.
      await ensureCheckpoints(views, topic, [...shard0, ...shard1]);
      await gate.query("BEGIN");
      const locked = await gate.query(
        "SELECT kafka_partition FROM projector_checkpoints WHERE topic = $1 AND kafka_partition = ANY($2::int[]) FOR UPDATE",
        [topic, shard1],
      );
      expect(locked.rowCount).toBe(shard1.length);
      const projector = track(startProjector(s));
      await waitUntil("shard 0's first round committed", async () =>
        [...(await checkpointsOf(views, topic))].some(([p, end]) => shard0.includes(p) && end >= 0n),
      );
      await waitUntil("the projector's shard-1 transaction waiting on the gate", async () => {
        const waiting = await views.query(
          `SELECT count(*)::int n FROM pg_stat_activity
            WHERE datname = $1 AND application_name = 'tally-projector' AND wait_event_type = 'Lock'`,
          [databaseNameOf(s.config.TALLY_PG_VIEWS)],
        );
        return waiting.rows[0].n === 1;
      });
      projector.signal("SIGKILL");
      expect(await projector.exited).toBe(-1);
    } finally {
      await gate.query("ROLLBACK");
      gate.release();
    }
    // The killed process's sessions end (the one behind the gate once it is open): nothing of its
    // open transaction may land.
    await waitUntil("the killed projector's sessions gone", async () => {
      const left = await views.query(
        "SELECT count(*)::int n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tally-projector'",
        [databaseNameOf(s.config.TALLY_PG_VIEWS)],
      );
      return left.rows[0].n === 0;
    });

    // Where the kill landed: shard 0 one round in and short of its end, shard 1 untouched.
    const checkpoints = await checkpointsOf(views, topic);
    for (const p of shard1)
      expect({ partition: p, checkpoint: checkpoints.get(p) }).toEqual({ partition: p, checkpoint: -1n });
    // A checkpoint is the next offset of the last batch it covers (-1: none yet), like applier_offsets.
    const behind = shard0.filter((p) => checkpoints.get(p)! < applied.get(p)!);
    expect(behind.length).toBeGreaterThan(0);
    // What the views hold is exactly the ledger up to those checkpoints, summed here from the rows.
    const partial = await balancesOf(views);
    expect(partial).toEqual(await ledgerBalancesUpTo(s, checkpoints));
    expect(partial.size).toBeGreaterThan(0);

    await runProjector(s.config, { untilCaughtUp: true });
    const incremental = await balancesOf(views);
    expect(incremental).not.toEqual(partial);
    await rebuildViews(s.config);
    expect(await balancesOf(views)).toEqual(incremental);
    await views.end();
    await expectExactState(s, load);
  });
});

async function checkpointsOf(views: Pool, topic: string): Promise<Map<number, bigint>> {
  const rows = (
    await views.query(
      "SELECT kafka_partition p, end_offset::text e FROM projector_checkpoints WHERE topic = $1",
      [topic],
    )
  ).rows;
  return new Map(rows.map((r) => [r.p as number, BigInt(r.e)]));
}

/** wallet|asset → balance, the non-zero rows of the views. */
async function balancesOf(views: Pool): Promise<Map<string, bigint>> {
  const rows = (
    await views.query("SELECT wallet, asset, balance::text b FROM wallet_balances WHERE balance <> 0")
  ).rows;
  return new Map(rows.map((r) => [`${r.wallet}|${r.asset}`, BigInt(r.b)]));
}

/** Σ credits − Σ debits over the ledger rows below each partition's checkpoint (a next offset). */
async function ledgerBalancesUpTo(
  s: TestStack,
  checkpoints: Map<number, bigint>,
): Promise<Map<string, bigint>> {
  const balances = new Map<string, bigint>();
  const add = (wallet: string | null, asset: string, delta: bigint) => {
    if (wallet === null) return;
    const key = `${wallet}|${asset}`;
    balances.set(key, (balances.get(key) ?? 0n) + delta);
  };
  for (const url of s.config.TALLY_PG_SHARDS) {
    const pool = createPool(s.config, url, "test", 1);
    try {
      const rows = (
        await pool.query(
          "SELECT kafka_partition p, kafka_offset::text o, from_wallet, to_wallet, asset, amount::text a FROM transfers",
        )
      ).rows;
      for (const r of rows) {
        if (BigInt(r.o) >= (checkpoints.get(r.p) ?? -1n)) continue;
        add(r.to_wallet, r.asset, BigInt(r.a));
        add(r.from_wallet, r.asset, -BigInt(r.a));
      }
    } finally {
      await pool.end();
    }
  }
  for (const [key, value] of balances) if (value === 0n) balances.delete(key);
  return balances;
}
