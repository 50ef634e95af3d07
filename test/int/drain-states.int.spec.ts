// SIGTERM drains in every state an applier can be in: waiting for its topic, joining a group that
// still lists a vanished member, retrying a transient failure, with a partition paused. Each run has
// TALLY_SHUTDOWN_MS_MAX=5000 and the process exits 1 past its own bound, so exit 0 proves the bound;
// and each shows the stored offsets exact afterwards. Every signal is sent on a state the process
// or the group shows (a log line, /health/ready, the group's state), never after a sleep.
import { describe, expect, it } from "vitest";
import { runProjector } from "../../services/projector/index.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { endedAfterEach, groupState, offsetsRows } from "../support/applier-process.ts";
import { httpStatus } from "../support/metrics.ts";
import { expectExactCounts, storedPartitions } from "../support/offsets.ts";
import {
  expectExactState,
  finishPipeline,
  produceLoad,
  startApplier,
  waitForApplied,
} from "../support/pipeline.ts";
import { freePort } from "../support/ports.ts";
import { exitWithin, type LogLine, type TallyProcess } from "../support/process.ts";
import { testStack, withOutage } from "../support/stack.ts";
import { waitUntil } from "../support/wait.ts";

const bounded = { TALLY_SHUTDOWN_MS_MAX: "5000" };
const waitingForTopic = "waiting for the topic to be created (`tally topics`); not ready until it exists";
const assigned = "partitions assigned; sought to stored offsets";
const stopped = "applier stopped";

const { track, use } = endedAfterEach();

const count = (p: TallyProcess, msg: string) => p.lines.filter((l: LogLine) => l.msg === msg).length;

describe("SIGTERM in every state exits 0 within TALLY_SHUTDOWN_MS_MAX=5000, offsets exact", () => {
  it("given apply started before its topic exists, then one waiting line, /health/ready 503, and SIGTERM exits 0 with nothing stored", async () => {
    const stack = use(testStack("dtopic", bounded));
    await migrate(stack.config);
    const port = await freePort();
    const applier = track(startApplier(stack, [], { TALLY_METRICS_PORT: String(port) }));
    await applier.waitForLine("the waiting line", (l) => l.msg === waitingForTopic);

    // Three readiness answers a second apart (the topic is polled every second): still waiting, not ready.
    const answers: number[] = [];
    await waitUntil(
      "three readiness answers",
      async () => {
        answers.push(await httpStatus(port, "/health/ready"));
        return answers.length >= 3;
      },
      { intervalMs: 1_000 },
    );
    expect(answers).toEqual([503, 503, 503]);
    expect(await httpStatus(port, "/health/live")).toBe(200);

    applier.signal("SIGTERM");
    expect(await applier.exited).toBe(0);
    expect(count(applier, waitingForTopic)).toBe(1);
    expect(count(applier, assigned)).toBe(0);
    expect(count(applier, stopped)).toBe(1);
    expect(await offsetsRows(stack)).toEqual([]);
  });

  it("given apply waiting for its topic, when the topic is created and loaded, then it joins and applies, and SIGTERM exits 0 with the state exact", async () => {
    const stack = use(testStack("dtopicnew", bounded));
    await migrate(stack.config);
    const applier = track(startApplier(stack));
    await applier.waitForLine("the waiting line", (l) => l.msg === waitingForTopic);

    const load = await produceLoad(stack, 2_000, 41); // creates the topic, then sends
    await applier.waitForLine("the topic seen", (l) => l.msg === "topic exists; joining the group");
    await waitForApplied(stack, 2_000n);

    applier.signal("SIGTERM");
    expect(await applier.exited).toBe(0);
    expect(count(applier, waitingForTopic)).toBe(1);
    expect(count(applier, stopped)).toBe(1);
    await runProjector(stack.config, { untilCaughtUp: true });
    await expectExactState(stack, load);
  });

  it("given a member joining a group that still lists a SIGKILLed member, when SIGTERM before its assignment, then exit 0 and nothing moved", async () => {
    const stack = use(testStack("djoin", { ...bounded, TALLY_KAFKA_SESSION_TIMEOUT_MS: "30000" }));
    await produceLoad(stack, 4_000, 42);
    const first = track(startApplier(stack));
    await first.waitForLine(
      "every partition assigned to the first member",
      (l) => l.msg === assigned && (l.partitions as number[]).length === 4,
    );
    await first.waitForLine("a batch committed", (l) => l.msg === "batch committed");
    first.signal("SIGKILL");
    expect(await first.exited).toBe(-1);
    const atKill = await storedPartitions(stack);
    expectExactCounts(atKill);
    // The coordinator still lists the killed member (its session runs 30 s).
    expect(await groupState(stack)).toEqual({ state: "Stable", members: 1 });

    const second = track(startApplier(stack));
    // Its JoinGroup starts a rebalance that waits for the killed member: joining, not assigned.
    await waitUntil(
      "the second member's join under way",
      async () => (await groupState(stack)).state === "PreparingRebalance",
    );
    expect(count(second, assigned)).toBe(0);

    second.signal("SIGTERM");
    expect(await second.exited).toBe(0);
    expect(count(second, assigned)).toBe(0);
    expect(count(second, stopped)).toBe(1);
    // It was still joining when it stopped: it went without a LeaveGroup, nothing in flight.
    expect(count(second, "left without LeaveGroup (still joining); nothing was in flight")).toBe(1);
    const after = await storedPartitions(stack);
    expect(after).toEqual(atKill);
    expectExactCounts(after);
  });

  it("given the registry stopped while records wait, when SIGTERM on a retry, then exit 0 and nothing applied past the record; the state is exact after", async ({
    signal,
  }) => {
    const stack = use(testStack("dretry", bounded));
    const load = await produceLoad(stack, 1_000, 43);
    await withOutage("registry", signal, async () => {
      const applier = track(startApplier(stack));
      await applier.waitForLine(
        "a registry retry",
        (l) => l.msg === "transient failure; retrying" && l.cause === "registry",
      );
      applier.signal("SIGTERM");
      expect(await exitWithin(applier)).toBe(0);
      expect(count(applier, stopped)).toBe(1);
    });
    // Nothing counted, nothing written: every stored partition is still where it started.
    const stored = await storedPartitions(stack);
    expect(stored.size).toBeGreaterThan(0);
    for (const [partition, p] of stored) {
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
    }
    await finishPipeline(stack);
    await expectExactState(stack, load);
  });

  it("given one shard unreachable so its partitions are paused while the others apply, when SIGTERM, then exit 0 and the reachable shard exact", async () => {
    const stack = use(testStack("dpause", bounded));
    await produceLoad(stack, 2_000, 44);
    const [reachable] = stack.config.TALLY_PG_SHARDS;
    const unreachable = `postgres://postgres@127.0.0.1:1/${stack.name}_unreachable_1`; // nothing listens on port 1
    const applier = track(startApplier(stack, [], { TALLY_PG_SHARDS: `${reachable},${unreachable}` }));
    const paused = await applier.waitForLine(
      "a partition of the unreachable shard paused",
      (l) => l.msg === "transient failure persists; partition paused, the others go on",
    );
    expect([1, 3]).toContain(paused.partition);
    // ...while the reachable shard's partitions go on.
    const committed = await applier.waitForLine(
      "a batch committed on the reachable shard",
      (l) => l.msg === "batch committed",
    );
    expect([0, 2]).toContain(committed.partition);

    applier.signal("SIGTERM");
    expect(await applier.exited).toBe(0);
    expect(count(applier, stopped)).toBe(1);
    const stored = await storedPartitions(stack);
    // The unreachable shard's partitions have nothing stored (the real shard 1 was never written);
    // the reachable shard's are exact, and moved.
    expect([...stored.keys()].sort()).toEqual([0, 2]);
    expectExactCounts(stored);
    expect([...stored.values()].some((p) => p.next > p.first)).toBe(true);
  });
});
