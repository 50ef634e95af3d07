// ApplierMember (services/applier/member.ts) under a scripted consumer (spies on seek, pause and
// resume), eachBatch payloads built here (spies on resolveOffset, heartbeat, isRunning, isStale) and a
// scripted store and log (test/support/sim/member-harness.ts): each path of the member, with the
// assertion it deserves.
import { afterEach, describe, expect, it, vi } from "vitest";
import { IncarnationError } from "../../services/applier/incarnation.ts";
import { RetriesExhaustedError, TransientError } from "../../services/common/retry.ts";
import {
  deliverUntilFatal,
  given,
  payloadOf,
  range,
  topic,
  topicIdA,
  untilCalled,
} from "../support/sim/member-harness.ts";

const transient = () => new TransientError("connection refused", "database");

afterEach(() => {
  vi.useRealTimers();
});

describe("ApplierMember: assignment", () => {
  it("given stored offsets 5 and 7, when partitions 0 and 1 are assigned, then each is loaded with its log window and sought to its stored offset", async () => {
    const { store, log, member, seeks } = given({ stored: { 0: 5n, 1: 7n } });
    log.windows.set(1, { topicId: topicIdA, lowOffset: 2n, highOffset: 40n });

    await member.onAssigned([0, 1]);

    expect(store.loads.map((l) => [l.partition, l.window])).toEqual([
      [0, { topicId: topicIdA, lowOffset: 0n, highOffset: 1_000n }],
      [1, { topicId: topicIdA, lowOffset: 2n, highOffset: 40n }],
    ]);
    expect(seeks().sort()).toEqual(["0@5", "1@7"]);
    expect(member.assignmentLoaded).toBe(true);
    expect(member.fatal).toBeNull();
  });

  it("given the log's window read (end 0) before another member applied offset 0 (stored 1), when the load compares them, then the window is read again and the view loads at 1, no IncarnationError", async () => {
    const { store, log, member, seeks } = given({ stored: { 0: 1n } });
    vi.spyOn(log, "window")
      .mockResolvedValueOnce({ topicId: topicIdA, lowOffset: 0n, highOffset: 0n }) // read before offset 0 came
      .mockResolvedValue({ topicId: topicIdA, lowOffset: 0n, highOffset: 1n });

    await member.onAssigned([0]);

    expect(member.fatal).toBeNull();
    expect(store.loads.map((l) => l.view.nextOffset)).toEqual([1n]);
    expect(seeks()).toEqual(["0@1"]);
  });

  it("given partitions 0 and 1 loaded, when only 1 is assigned next, then 0's view is dropped and 1's kept without a reload", async () => {
    const { store, member } = given({ stored: { 0: 5n, 1: 7n } });
    await member.onAssigned([0, 1]);

    await member.onAssigned([1]);

    expect(member.loadedPartitions()).toEqual([1]);
    expect(store.loads).toHaveLength(2);
  });
});

describe("ApplierMember: a batch entirely below the stored offset", () => {
  it("given stored offset 10 and a log holding it, when a batch of offsets 3..6 arrives, then the log is checked, the partition sought to 10, nothing applied or resolved", async () => {
    const { store, log, member, seeks } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    const windowCalls = vi.spyOn(log, "window");
    const payload = payloadOf(0, range(3n, 4));

    await member.eachBatch(payload);

    expect(windowCalls).toHaveBeenCalledWith(0);
    expect(seeks()).toEqual(["0@10", "0@10"]);
    expect(store.applies).toEqual([]);
    expect(payload.resolveOffset).not.toHaveBeenCalled();
    expect(member.fatal).toBeNull();
  });

  it("given stored offset 10 and a log that now ends at 5 (re-created, kafkajs reset to earliest), when a batch of 0..2 arrives, then IncarnationError above_log_end and no seek to 10", async () => {
    const { store, log, member, seeks } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    log.windows.set(0, { topicId: topicIdA, lowOffset: 0n, highOffset: 5n });

    await member.eachBatch(payloadOf(0, range(0n, 3)));

    expect(member.fatal).toBeInstanceOf(IncarnationError);
    expect((member.fatal as IncarnationError).problem).toBe("above_log_end");
    expect(seeks()).toEqual(["0@10"]); // the assignment's seek only
    expect(store.applies).toEqual([]);
  });
});

describe("ApplierMember: the log's offsets cannot be read for a moment", () => {
  it("given stored offset 10 and a batch of 3..6, when reading the log's offsets fails once (a broker away), then it is read again, the partition sought to 10, and the member goes on", async () => {
    vi.useFakeTimers();
    const { store, log, member, seeks } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    const window = log.window.bind(log);
    vi.spyOn(log, "window")
      .mockRejectedValueOnce(new TransientError("no broker answered", "kafka"))
      .mockImplementation(window);

    const delivered = member.eachBatch(payloadOf(0, range(3n, 4)));
    await vi.runAllTimersAsync();
    await delivered;

    expect(member.fatal).toBeNull();
    expect(seeks()).toEqual(["0@10", "0@10"]);
    expect(store.applies).toEqual([]);
  });

  it("given a gap sought back once, when the same gap comes again and reading the log's offsets fails once, then it is read again and the batch applied", async () => {
    vi.useFakeTimers();
    const { store, log, member } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    await member.eachBatch(payloadOf(0, range(15n, 3)));
    const window = log.window.bind(log);
    vi.spyOn(log, "window")
      .mockRejectedValueOnce(new TransientError("no broker answered", "kafka"))
      .mockImplementation(window);

    const delivered = member.eachBatch(payloadOf(0, range(15n, 3)));
    await vi.runAllTimersAsync();
    await delivered;

    expect(member.fatal).toBeNull();
    expect(store.applies.map((a) => a.offsets)).toEqual([[15n, 16n, 17n]]);
  });
});

describe("ApplierMember: a batch that starts above the stored offset (a gap)", () => {
  it("given stored offset 10, when a batch starts at 15, then the partition is sought back to 10 and nothing is applied", async () => {
    const { store, member, seeks } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    const payload = payloadOf(0, range(15n, 3));

    await member.eachBatch(payload);

    expect(seeks()).toEqual(["0@10", "0@10"]);
    expect(store.applies).toEqual([]);
    expect(payload.resolveOffset).not.toHaveBeenCalled();
  });

  it("given a gap sought back once, when the same gap comes again and the log still holds offset 10, then the batch is applied from 10's view (offsets with no record)", async () => {
    const { store, member, seeks } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    await member.eachBatch(payloadOf(0, range(15n, 3)));
    const again = payloadOf(0, range(15n, 3));

    await member.eachBatch(again);

    expect(store.applies.map((a) => [a.expected, a.offsets])).toEqual([[10n, [15n, 16n, 17n]]]);
    expect(again.resolveOffset.mock.calls).toEqual([["17"]]);
    expect(store.stored.get(0)).toBe(18n);
    expect(seeks()).toEqual(["0@10", "0@10"]);
  });

  it("given a gap sought back once, when the same gap comes again and the log now starts at 14 (records 10..13 deleted unapplied), then IncarnationError below_log_start and nothing applied", async () => {
    const { store, log, member } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    await member.eachBatch(payloadOf(0, range(15n, 3)));
    log.windows.set(0, { topicId: topicIdA, lowOffset: 14n, highOffset: 18n });

    await member.eachBatch(payloadOf(0, range(15n, 3)));

    expect(member.fatal).toBeInstanceOf(IncarnationError);
    expect((member.fatal as IncarnationError).problem).toBe("below_log_start");
    expect(member.fatal!.message).toContain("partition 0");
    expect(store.applies).toEqual([]);
  });

  it("given a view kept at 10 while another member moved the partition to 20 and retention deleted below 16, when the gap 16..18 comes twice, then no IncarnationError: the view is reloaded at 20 and the records pass as applied", async () => {
    const { store, log, member, seeks } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    store.stored.set(0, 20n); // another member's commits, while this one kept its view
    log.windows.set(0, { topicId: topicIdA, lowOffset: 16n, highOffset: 30n });
    await member.eachBatch(payloadOf(0, range(16n, 3)));

    await member.eachBatch(payloadOf(0, range(16n, 3)));
    await member.eachBatch(payloadOf(0, range(16n, 3)));

    expect(member.fatal).toBeNull();
    expect(store.loads.map((l) => l.view.nextOffset)).toEqual([10n, 20n]);
    expect(seeks().at(-1)).toBe("0@20");
    expect(store.applies).toEqual([]);
  });

  it("given a gap sought back once, when the partition is reassigned and the same gap comes again, then it is sought back again, not accepted", async () => {
    const { store, member, seeks } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    await member.eachBatch(payloadOf(0, range(15n, 3)));
    await member.onAssigned([0]);

    await member.eachBatch(payloadOf(0, range(15n, 3)));

    expect(seeks()).toEqual(["0@10", "0@10", "0@10", "0@10"]);
    expect(store.applies).toEqual([]);
  });
});

describe("ApplierMember: retry-or-pause", () => {
  it("given attemptsMax 5 and a store that always fails transiently, when the batch comes again after each resume, then exactly 5 applies in all, then RetriesExhaustedError; paused once, resumed once", async () => {
    vi.useFakeTimers();
    const { store, consumer, member } = given({ stored: { 0: 10n }, attemptsMax: 5 });
    await member.onAssigned([0]);
    store.forever = transient();

    const rounds = await deliverUntilFatal(member, 0, range(10n, 2), 10);

    expect(store.applies).toHaveLength(5);
    expect(rounds).toBe(2);
    expect(member.fatal).toBeInstanceOf(RetriesExhaustedError);
    expect(consumer.pause.mock.calls).toEqual([[[{ topic, partitions: [0] }]]]);
    expect(consumer.resume.mock.calls).toEqual([[[{ topic, partitions: [0] }]]]);
  });

  it("given a transient failure that clears on the 4th attempt, when the batch comes again after the resume, then it is applied once and resolved", async () => {
    vi.useFakeTimers();
    const { store, consumer, member } = given({ stored: { 0: 10n }, attemptsMax: 5 });
    await member.onAssigned([0]);
    store.applyFailures.push(transient(), transient(), transient());
    const first = payloadOf(0, range(10n, 2));
    const delivered = member.eachBatch(first);
    await vi.runAllTimersAsync();
    await delivered;
    expect(consumer.pause).toHaveBeenCalledTimes(1);
    expect(consumer.resume).toHaveBeenCalledTimes(1);
    const again = payloadOf(0, range(10n, 2));

    await member.eachBatch(again);

    expect(store.applies).toHaveLength(4);
    expect(first.resolveOffset).not.toHaveBeenCalled();
    expect(again.resolveOffset.mock.calls).toEqual([["11"]]);
    expect(store.stored.get(0)).toBe(12n);
    expect(member.fatal).toBeNull();
  });

  it("given a partition paused after 3 failed attempts, when it is reassigned, then it is resumed at once and its attempts count again from zero", async () => {
    vi.useFakeTimers();
    const { store, consumer, member } = given({ stored: { 0: 10n }, attemptsMax: 5 });
    await member.onAssigned([0]);
    store.forever = transient();
    const delivered = member.eachBatch(payloadOf(0, range(10n, 2)));
    await untilCalled(consumer.pause); // the 3 attempts in place, not the resume after them
    await delivered;
    expect(consumer.pause).toHaveBeenCalledTimes(1);
    expect(consumer.resume).not.toHaveBeenCalled();

    await member.onAssigned([0]);
    expect(consumer.resume.mock.calls).toEqual([[[{ topic, partitions: [0] }]]]);
    const again = member.eachBatch(payloadOf(0, range(10n, 2)));
    await untilCalled(consumer.pause, 2);
    await again;

    expect(store.applies).toHaveLength(6); // 3, then 3 more: not cut to 2 by the attempts before
    expect(consumer.pause).toHaveBeenCalledTimes(2);
    expect(member.fatal).toBeNull();
  });

  it("given a transient failure being retried, when the member stops during the backoff, then the chunk is abandoned: no attempt after the stop, nothing resolved, no fatal", async () => {
    vi.useFakeTimers();
    const { store, member } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    store.forever = transient();
    const payload = payloadOf(0, range(10n, 2));
    const delivered = member.eachBatch(payload);
    await vi.advanceTimersByTimeAsync(0);
    expect(store.applies).toHaveLength(1);

    member.stop();
    await vi.runAllTimersAsync();
    await delivered;

    expect(store.applies).toHaveLength(1);
    expect(payload.resolveOffset).not.toHaveBeenCalled();
    expect(member.fatal).toBeNull();
    expect(member.stopping).toBe(true);
  });
});
