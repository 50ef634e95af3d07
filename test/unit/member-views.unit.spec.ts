// ApplierMember (services/applier/member.ts) when the view it holds changes or must be checked:
// fencing by another writer, batches kafkajs no longer wants, revocation under a batch, single-flight
// loads, a re-created topic. The same harness as member.unit.spec.ts (test/support/sim/member-harness.ts).
import { describe, expect, it, vi } from "vitest";
import { IncarnationError } from "../../services/applier/incarnation.ts";
import { given, payloadOf, range, topicIdA } from "../support/sim/member-harness.ts";
import { deferred } from "../support/sim/scripted.ts";

describe("ApplierMember: fencing", () => {
  it("given a view at 10 and another writer that moved the partition to 15, when a batch is fenced, then the view is dropped, nothing resolved, and the next batch reloads at 15", async () => {
    const { store, member } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    store.stored.set(0, 15n); // another member's commit
    const fenced = payloadOf(0, range(10n, 3));

    await member.eachBatch(fenced);

    expect(member.loadedPartitions()).toEqual([]);
    expect(fenced.resolveOffset).not.toHaveBeenCalled();
    expect(member.fatal).toBeNull();
    const next = payloadOf(0, range(15n, 2));
    await member.eachBatch(next);
    expect(store.loads.map((l) => l.partition)).toEqual([0, 0]);
    expect(store.applies.map((a) => a.expected)).toEqual([10n, 15n]);
    expect(store.applies[1]!.view).toBe(store.loads[1]!.view);
    expect(next.resolveOffset.mock.calls).toEqual([["16"]]);
  });
});

describe("ApplierMember: a batch kafkajs no longer wants", () => {
  it.each([
    ["stale (a seek is pending)", { isStale: () => true }],
    ["from a consumer that stopped running", { isRunning: () => false }],
  ])("given a batch %s, when it is delivered, then nothing is applied or resolved", async (_, callbacks) => {
    const { store, member } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    const payload = { ...payloadOf(0, range(10n, 2)), ...callbacks };

    await member.eachBatch(payload);

    expect(store.applies).toEqual([]);
    expect(payload.resolveOffset).not.toHaveBeenCalled();
  });
});

describe("ApplierMember: the view changes under a batch", () => {
  it("given a batch of 10..13 in chunks of 2, when the partition is revoked during the heartbeat after the first chunk and another member moves it to 20, then the batch ends: nothing applied with the new view, the stored offset never goes back", async () => {
    const { store, member } = given({ stored: { 0: 10n }, chunkEventsMax: 2 });
    await member.onAssigned([0]);
    const beat = deferred();
    const payload = { ...payloadOf(0, range(10n, 4)), heartbeat: vi.fn(() => beat.promise) };
    const delivered = member.eachBatch(payload);
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.stored.get(0)).toBe(12n);

    await member.onAssigned([]); // GROUP_JOIN while the batch waits on its heartbeat
    store.stored.set(0, 20n); // the new owner's commits
    beat.resolve();
    await delivered;

    expect(store.applies.map((a) => [a.expected, a.offsets])).toEqual([[10n, [10n, 11n]]]);
    expect(store.stored.get(0)).toBe(20n);
    expect(payload.resolveOffset.mock.calls).toEqual([["11"]]);
    expect(member.loadedPartitions()).toEqual([]);
  });
});

describe("ApplierMember: single-flight loads", () => {
  it("given partition 0's load held open, when onAssigned and eachBatch race on it and the load is released, then it is loaded ONCE and the batch applies with the loaded view", async () => {
    const { store, member, seeks } = given({ stored: { 0: 10n } });
    const gate = deferred();
    store.loadGates.set(0, gate);
    const assigned = member.onAssigned([0]);
    const payload = payloadOf(0, range(10n, 2));
    const delivered = member.eachBatch(payload);
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.applies).toEqual([]);

    gate.resolve();
    await Promise.all([assigned, delivered]);

    expect(store.loads).toHaveLength(1);
    expect(store.applies).toHaveLength(1);
    expect(store.applies[0]!.view).toBe(store.loads[0]!.view);
    expect(store.applies[0]!.expected).toBe(10n);
    expect(payload.resolveOffset.mock.calls).toEqual([["11"]]);
    expect(seeks()).toHaveLength(1);
    expect(member.loadedPartitions()).toEqual([0]);
    expect(member.assignmentLoaded).toBe(true);
  });

  it("given partition 0's load held open, when the partition is revoked before the load ends, then the view is not published", async () => {
    const { store, member } = given({ stored: { 0: 10n } });
    const gate = deferred();
    store.loadGates.set(0, gate);
    const assigned = member.onAssigned([0]);
    await member.onAssigned([]);

    gate.resolve();
    await assigned;

    expect(member.loadedPartitions()).toEqual([]);
  });
});

describe("ApplierMember: a topic re-created under a loaded view", () => {
  it("given a view of partition 0 at 10 for topic id A, when the topic is re-created (id B) with 40 records and a batch of its 10..12 arrives, then IncarnationError topic_id_changed and nothing applied", async () => {
    const { store, log, member } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);
    log.windows.set(0, { topicId: "topic-id-B", lowOffset: 0n, highOffset: 40n });
    const payload = payloadOf(0, range(10n, 3));

    await member.eachBatch(payload);

    expect(member.fatal).toBeInstanceOf(IncarnationError);
    expect((member.fatal as IncarnationError).problem).toBe("topic_id_changed");
    expect(store.applies).toEqual([]);
    expect(payload.resolveOffset).not.toHaveBeenCalled();
  });
});

describe("ApplierMember: the periodic topic id check", () => {
  it("given views loaded for topic id A, when the check sees the same id or none, then nothing happens", async () => {
    const { member } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);

    member.checkTopicId(topicIdA);
    member.checkTopicId(null);

    expect(member.fatal).toBeNull();
    expect(member.stopping).toBe(false);
  });

  it("given views loaded for topic id A, when the check sees id B (topic re-created), then IncarnationError topic_id_changed and the member stops", async () => {
    const { member } = given({ stored: { 0: 10n } });
    await member.onAssigned([0]);

    member.checkTopicId("topic-id-B");

    expect(member.fatal).toBeInstanceOf(IncarnationError);
    expect((member.fatal as IncarnationError).problem).toBe("topic_id_changed");
    expect(member.fatal!.message).toContain("topic-id-B");
    expect(member.stopping).toBe(true);
  });
});
