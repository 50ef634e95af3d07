// Faults on the multi-server cluster (make up-cluster) under a steady produced load: members scaled
// 1 -> 3 -> 1, the leader broker of a partition killed, one shard's PostgreSQL server crashed, the
// registry stopped. Each ends with nothing lost and nothing doubled, shown by the generator's own
// outcome, a recount of the topic read back independently, and `tally verify`; each reports the
// time to recover and the lag peak (table in the output, JSON in .local/faults-report.json).
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../services/storage/migrate.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import {
  clusterCtl,
  clusterTestStack,
  clusterUp,
  leaderOf,
  quietKafka,
  recountTopic,
  SteadyLoad,
} from "../support/cluster.ts";
import { type FaultFigures, LagSampler, partitionsOfShard, writeFaultsReport } from "../support/lag.ts";
import { type ApplierProcess, expectExactState, finishPipeline, startApplier } from "../support/pipeline.ts";
import { dropTestStack, type TestStack, tally } from "../support/stack.ts";
import { waitUntil } from "../support/wait.ts";

const eventsPerSecond = 2_000;
// Long enough that every fault, its slowest leader move included, happens while producing.
const loadSeconds = 40;
// The applier starts with the load: once it has caught up, the lag over this many samples (one
// every 200 ms) is the baseline.
const baselineSamples = 15;
const recoveryMsMax = 90_000;
const leaderMoveMsMax = 45_000;
const figures: FaultFigures[] = [];

let stack: TestStack | null = null;
let appliers: ApplierProcess[] = [];
let sampler: LagSampler | null = null;
let producing: SteadyLoad | null = null;

afterEach(async () => {
  await producing?.cancel();
  producing = null;
  await sampler?.stop();
  sampler = null;
  for (const a of appliers) a.child.kill("SIGKILL");
  appliers = [];
  // A failed test may have left a part stopped: bring the whole cluster back for the next one.
  await clusterUp();
  if (stack) await dropTestStack(stack);
  stack = null;
});

afterAll(() => {
  if (figures.length > 0)
    console.log(`\nfault figures (also in .local/faults-report.json):\n${writeFaultsReport(figures)}\n`);
});

type Window = { startMs: number; endMs: number };

/**
 * Given a steady load and one applier, when `inject` runs the fault (and returns when it is over),
 * then the lag comes back to its level before the fault (at least one second of production) and
 * the end state is exact.
 */
async function faultUnderLoad(
  fault: string,
  seed: number,
  inject: (sampler: LagSampler, steady: SteadyLoad) => Promise<Window>,
): Promise<FaultFigures> {
  const s = clusterTestStack(fault.replaceAll(/[^a-z]/g, "").slice(0, 8));
  stack = s;
  await migrate(s.config);
  await ensureTopic(s.config);
  await expectReplicated(s);
  const lag = new LagSampler(s);
  sampler = lag;
  await lag.start();
  const steady = new SteadyLoad(s, { eventsPerSecond, seconds: loadSeconds, seed });
  producing = steady;
  appliers.push(startApplier(s));
  const loadStartMs = performance.now();
  steady.start();
  await lag.waitForLagAtMost(eventsPerSecond, loadStartMs, recoveryMsMax);
  const baselineStartMs = performance.now();
  const baselineEndMs = await lag.waitForSamples(baselineSamples, baselineStartMs, recoveryMsMax);
  const baselineLagPeakRecords = lag.peakBetween(baselineStartMs, baselineEndMs);
  // Back to normal: the lag no higher than before the fault, and at most a second of production.
  const recoveredLagRecords = Math.max(eventsPerSecond, baselineLagPeakRecords);
  const { startMs, endMs } = await inject(lag, steady);
  const recoveredMs = await lag.waitForLagAtMost(recoveredLagRecords, endMs, recoveryMsMax);
  const lagPeakRecords = lag.peakBetween(startMs, recoveredMs);
  await steady.done();
  producing = null;
  sampler = null;
  await lag.stop();
  for (const a of appliers.splice(0)) {
    a.child.kill("SIGTERM");
    expect(await a.exited).toBe(0);
  }
  await finishPipeline(s);
  const extra = await recountTopic(s, steady);
  await expectExactState(s, steady.load, extra);
  const verified = await tally(["verify"], s.env);
  expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  const row: FaultFigures = {
    fault,
    faultMs: Math.round(endMs - startMs),
    recoveryMs: Math.round(Math.max(0, recoveredMs - endMs)),
    recoveredAfterStartMs: Math.round(recoveredMs - startMs),
    caughtUpAfterStartMs: Math.round(
      lag.caughtUpBetween(recoveredLagRecords, startMs, recoveredMs) - startMs,
    ),
    lagPeakRecords,
    baselineLagPeakRecords,
    recoveredLagRecords,
    eventsPerSecond,
    events: steady.events,
    resentEvents: steady.resentEvents,
    extraRecords: extra.duplicates + extra.rejected,
    sendFailures: steady.sendFailures,
  };
  figures.push(row);
  return row;
}

/** The topic as `tally topics` made it on the cluster: three replicas in sync, min ISR 2. */
async function expectReplicated(s: TestStack): Promise<void> {
  const admin = quietKafka(s.config, "topic").admin();
  await admin.connect();
  try {
    const [topic] = (await admin.fetchTopicMetadata({ topics: [s.config.TALLY_TOPIC] })).topics;
    expect(topic?.partitions.map((p) => [p.replicas.length, p.isr.length])).toEqual(
      Array.from({ length: s.config.TALLY_PARTITIONS }, () => [3, 3]),
    );
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: s.config.TALLY_TOPIC, configNames: ["min.insync.replicas"] }],
    });
    expect(described.resources[0]?.configEntries[0]?.configValue).toBe("2");
  } finally {
    await admin.disconnect();
  }
}

async function groupMembers(s: TestStack): Promise<number> {
  const admin = quietKafka(s.config, "group").admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([s.config.TALLY_GROUP]);
    return groups[0]?.members.length ?? 0;
  } finally {
    await admin.disconnect();
  }
}

describe("faults on the three-broker, server-per-shard cluster under a steady load", () => {
  it("given one applier, when scaled to three and back to one, then nothing is lost or doubled", async () => {
    await faultUnderLoad("appliers 1 -> 3 -> 1", 21, async () => {
      const startMs = performance.now();
      const joining = [startApplier(stack!), startApplier(stack!)];
      appliers.push(...joining);
      await waitUntil("three members in the group", async () => (await groupMembers(stack!)) === 3, {
        intervalMs: 250,
      });
      // Each new member took part of the load: it committed batches of its own.
      for (const member of joining)
        await member.waitForLine("a batch committed by a new member", (l) => l.msg === "batch committed");
      for (const leaving of appliers.splice(1)) {
        leaving.child.kill("SIGTERM"); // scale-in drains: the member leaves the group
        expect(await leaving.exited).toBe(0);
      }
      return { startMs, endMs: performance.now() };
    });
  });

  it("given the leader broker of a partition SIGKILLed and restarted, then producing and applying go on", async () => {
    let leaderMovedAfterMs = 0;
    const row = await faultUnderLoad("leader broker killed", 22, async (_sampler, steady) => {
      const killed = await leaderOf(stack!, 0);
      const startMs = performance.now();
      await clusterCtl("stop", `kafka-${killed}`, "kill");
      const sentAtKill = steady.sentEvents;
      // The controller fences the dead node after its broker session timeout (9 s by default;
      // longer when the node was the active controller: a new one is elected first), then moves
      // the leadership to a replica in sync.
      await waitUntil(
        "another node leading partition 0",
        async () => (await leaderOf(stack!, 0)) !== killed,
        {
          timeoutMs: leaderMoveMsMax,
          intervalMs: 500,
        },
      );
      leaderMovedAfterMs = Math.round(performance.now() - startMs);
      // A second of production lands with the node still down (acks=all, two replicas in sync).
      const sentAtMove = steady.sentEvents;
      expect(sentAtMove).toBeGreaterThanOrEqual(sentAtKill);
      expect(sentAtMove + eventsPerSecond).toBeLessThanOrEqual(steady.events); // still producing
      await waitUntil(
        "a second of production acknowledged with the node down",
        () => steady.sentEvents >= sentAtMove + eventsPerSecond,
        {
          timeoutMs: leaderMoveMsMax,
          intervalMs: 250,
        },
      );
      await clusterCtl("start", `kafka-${killed}`);
      return { startMs, endMs: performance.now() };
    });
    row.leaderMovedAfterMs = leaderMovedAfterMs;
  });

  it("given one shard's PostgreSQL server crashed and restarted, then the other shards keep applying and it catches up", async () => {
    const appliedShareByShard: Record<string, number> = {};
    const row = await faultUnderLoad("shard server crashed", 23, async (sampler) => {
      const s = stack!;
      const [down, up] = [partitionsOfShard(s, 1), [...partitionsOfShard(s, 0), ...partitionsOfShard(s, 2)]];
      const applier = appliers[0]!;
      const linesAtCrash = applier.lines.length;
      const startMs = performance.now();
      await clusterCtl("stop", "pg-shard-1", "immediate");
      const stoppedMs = performance.now();
      // The signal that the applier met the crash: one of the shard's partitions paused.
      await applier.waitForLine(
        "a partition of the crashed shard paused",
        (l) =>
          applier.lines.indexOf(l) >= linesAtCrash &&
          l.msg === "transient failure persists; partition paused, the others go on" &&
          down.includes(Number(l.partition)),
      );
      // What had been produced to the other shards by then, they apply while the shard is down.
      const atPause = await sampler.sampleAfter(performance.now(), recoveryMsMax);
      await waitUntil(
        "the other shards applied what was produced up to the pause",
        () =>
          sampler.samples.find(
            (x) =>
              x.atMs >= atPause.atMs &&
              up.every((p) => (x.nextOffsets.get(p) ?? 0n) >= atPause.highOffsets.get(p)!),
          ),
        { timeoutMs: recoveryMsMax, intervalMs: 200 },
      );
      const restartingMs = performance.now();
      for (const shard of [0, 2]) {
        const share = sampler.appliedShareBetween(stoppedMs, restartingMs, partitionsOfShard(s, shard));
        appliedShareByShard[`shard ${shard}`] = Math.round(share * 100) / 100;
      }
      await clusterCtl("start", "pg-shard-1");
      return { startMs, endMs: performance.now() };
    });
    // For the report, not asserted: the share of their load the other shards applied meanwhile.
    row.appliedShareByShard = appliedShareByShard;
    expect(appliedShareByShard).toEqual({ "shard 0": expect.any(Number), "shard 2": expect.any(Number) });
  });

  it("given the registry stopped while an applier restarts, then it waits without rejecting and catches up", async () => {
    await faultUnderLoad("registry stopped", 24, async (sampler) => {
      const startMs = performance.now();
      await clusterCtl("stop", "registry");
      // A new member knows no schema yet: it must wait for the registry, not reject records.
      const old = appliers.pop()!;
      old.child.kill("SIGTERM");
      expect(await old.exited).toBe(0);
      const stoppedAt = await sampler.sampleAfter(performance.now(), recoveryMsMax);
      const fresh = startApplier(stack!);
      appliers.push(fresh);
      // The signal: the new member's own retries on the registry.
      await waitUntil(
        "three registry retries of the new member",
        () =>
          fresh.lines.filter((l) => l.msg === "transient failure; retrying" && l.cause === "registry")
            .length >= 3,
        { timeoutMs: recoveryMsMax, intervalMs: 100 },
      );
      // Production goes on and nothing is applied: the lag builds up to 4 s of production.
      const built = await waitUntil(
        "the lag built up while the registry is away",
        () => sampler.samples.find((x) => x.atMs >= stoppedAt.atMs && x.lagRecords > eventsPerSecond * 4),
        { timeoutMs: recoveryMsMax, intervalMs: 200 },
      );
      expect(built.nextOffsets).toEqual(stoppedAt.nextOffsets); // it really could not apply
      expect(fresh.lines.filter((l) => l.msg === "batch committed")).toEqual([]); // nor reject
      await clusterCtl("start", "registry");
      return { startMs, endMs: performance.now() };
    });
  });
});
