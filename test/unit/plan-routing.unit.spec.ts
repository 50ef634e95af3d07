// The plan's routing checks: a token's records belong on its key's partition, a detached day is a
// rejection that leaves the chain where it was, and no instant past the named days is planned.
import { describe, expect, it } from "vitest";
import { type DecodedRecord, type PlanRouting, planChunk } from "../../services/applier/plan.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { keyPartitioner } from "../../services/common/partitioner.ts";
import { dayOf } from "../../services/storage/partitions.ts";
import { fixedNowMs, mintOf, moveOf } from "../support/events.ts";

const window = { pastDays: 30, futureDays: 1 };
const none = () => undefined;
const partitionCount = 6;
const partitionOfKey = keyPartitioner(partitionCount);

function recordsOf(events: TransferEvent[], timestampMs = fixedNowMs): DecodedRecord[] {
  return events.map((event, i) => ({
    offset: BigInt(10 + i),
    key: Buffer.from(event.token_id),
    value: Buffer.from(`raw-${i}`),
    timestampMs,
    decoded: { ok: true, event, schemaId: 3 },
  }));
}

function routingOf(partition: number, overrides: Partial<PlanRouting> = {}): PlanRouting {
  return { partition, partitionOfKey, homeOf: () => undefined, archivedDays: new Set(), ...overrides };
}

describe("keyPartitioner", () => {
  it("given keys, when partitioned, then the Java client's murmur2 partitions come out", () => {
    // Fixed vectors computed by the Java client itself (kafka-clients 4.3.1:
    // Utils.toPositive(Utils.murmur2(utf8 bytes)) % 6); a change would move tokens between partitions.
    expect(["a", "coin-1", "token-42", ""].map((k) => partitionOfKey(Buffer.from(k)))).toEqual([4, 4, 0, 3]);
  });
});

describe("planChunk with routing", () => {
  const token = "coin-1"; // partition 4 of 6
  const home = partitionOfKey(Buffer.from(token));

  it("given a mint on its key's partition, when planned, then it is applied", () => {
    const plan = planChunk(
      recordsOf([mintOf({ token_id: token })]),
      none,
      new Set(),
      window,
      routingOf(home),
    );
    expect(plan.ledger).toHaveLength(1);
    expect(plan.rejections).toEqual([]);
  });

  it("given a mint on another partition, when planned, then it is rejected wrong_partition, naming both", () => {
    const other = (home + 1) % partitionCount;
    const plan = planChunk(
      recordsOf([mintOf({ token_id: token })]),
      none,
      new Set(),
      window,
      routingOf(other),
    );
    expect(plan.ledger).toEqual([]);
    expect(plan.rejections.map((r) => [r.reason, r.detail])).toEqual([
      ["wrong_partition", `key "coin-1" belongs on partition ${home}, not ${other}`],
    ]);
    expect(plan.tokenChanges.size).toBe(0);
  });

  it("given a token that lives on another partition, when a mint of it arrives on its key's partition, then wrong_partition", () => {
    const routing = routingOf(home, { homeOf: (id) => (id === token ? 1 : undefined) });
    const plan = planChunk(recordsOf([mintOf({ token_id: token })]), none, new Set(), window, routing);
    expect(plan.rejections.map((r) => [r.reason, r.detail])).toEqual([
      ["wrong_partition", 'token "coin-1" lives on partition 1'],
    ]);
  });

  it("given a detached day, when a move of that day arrives, then archived_day and the chain does not move", () => {
    const dayBeforeMs = fixedNowMs - 86_400_000;
    const events = [
      mintOf({ token_id: token, occurred_at: dayBeforeMs }),
      moveOf({ token_id: token }), // s0 → s1 on the detached day
      moveOf({ token_id: token, next_state: "s1b", occurred_at: dayBeforeMs }), // s0 → s1b: the chain is still at s0
    ];
    const routing = routingOf(home, { archivedDays: new Set([dayOf(fixedNowMs)]) });
    const plan = planChunk(recordsOf(events), none, new Set(), window, routing);
    expect(plan.rejections.map((r) => [r.offset, r.reason, r.detail])).toEqual([
      [11n, "archived_day", "the day partition of 2026-11-22 is detached (archived)"],
    ]);
    expect(plan.ledger.map((r) => r.offset)).toEqual([10n, 12n]);
    expect(plan.tokenChanges.get(token)?.state.state).toBe("s1b");
    expect([...plan.days]).toEqual([dayOf(dayBeforeMs)]);
  });

  it("given an event after 9999-12-31 within its record's window, when planned, then out_of_window", () => {
    const lateMs = Date.UTC(10000, 0, 1, 0, 0, 0);
    const records = recordsOf([mintOf({ token_id: token, occurred_at: lateMs })], lateMs);
    const plan = planChunk(records, none, new Set(), window, routingOf(home));
    expect(plan.rejections.map((r) => [r.reason, r.detail])).toEqual([
      ["out_of_window", `occurred_at ${lateMs} ms is after 9999-12-31`],
    ]);
  });

  it("given the last instant of 9999-12-31, when planned, then it is applied to that day", () => {
    const lastMs = Date.UTC(10000, 0, 1) - 1;
    const records = recordsOf([mintOf({ token_id: token, occurred_at: lastMs })], lastMs);
    const plan = planChunk(records, none, new Set(), window, routingOf(home));
    expect(plan.ledger).toHaveLength(1);
    expect([...plan.days]).toEqual([dayOf(lastMs)]);
  });

  it("given a key with invalid UTF-8 that reads as the token_id leniently, when planned, then invalid_field", () => {
    // Found by the plan property (seed 20261122): 74 6f 6b 2d ff read leniently is "tok-\uFFFD".
    const event = mintOf({ token_id: "tok-\uFFFD" });
    const records = recordsOf([event]).map((r) => ({
      ...r,
      key: Buffer.from([0x74, 0x6f, 0x6b, 0x2d, 0xff]),
    }));
    const plan = planChunk(records, none, new Set(), window);
    expect(plan.rejections.map((r) => [r.reason, r.detail])).toEqual([
      ["invalid_field", "key: must be the token_id"],
    ]);
    const exact = planChunk(recordsOf([event]), none, new Set(), window);
    expect(exact.ledger).toHaveLength(1);
  });

  it("given keys of the token_id's length, when planned, then only the token_id's exact UTF-8 bytes pass", () => {
    // The ASCII fast path compares bytes to code units; these are the cases it must not let through.
    const keyed = (tokenId: string, key: Buffer) =>
      planChunk(
        recordsOf([mintOf({ token_id: tokenId })]).map((r) => ({ ...r, key })),
        none,
        new Set(),
        window,
      );
    const reasons = (plan: ReturnType<typeof planChunk>) => [
      plan.ledger.length,
      plan.rejections.map((r) => r.reason),
    ];
    expect(reasons(keyed("coin-1", Buffer.from("coin-1")))).toEqual([1, []]);
    expect(reasons(keyed("coin-1", Buffer.from("coin-2")))).toEqual([0, ["invalid_field"]]);
    expect(reasons(keyed("coin-1", Buffer.from("Coin-1")))).toEqual([0, ["invalid_field"]]);
    // é is one code unit and two UTF-8 bytes: equal only as UTF-8, never as Latin-1.
    expect(reasons(keyed("cé", Buffer.from("cé", "utf8")))).toEqual([1, []]);
    expect(reasons(keyed("cé", Buffer.from("cé", "latin1")))).toEqual([0, ["invalid_field"]]);
    expect(reasons(keyed("ab", Buffer.from([0x61, 0x62 | 0x80])))).toEqual([0, ["invalid_field"]]);
    expect(reasons(keyed("coin-1", Buffer.from("coin-1 ")))).toEqual([0, ["invalid_field"]]);
  });

  it("given a record timestamp near the largest Date, when an event is out of window, then out_of_window, not a throw", () => {
    // Found by the plan property: the window's end past the largest Date made toISOString throw.
    const timestampMs = 8_640_000_000_000_000;
    const event = mintOf({ token_id: token, occurred_at: 8_639_999_999_999_999 - 2 * 86_400_000 });
    const plan = planChunk(recordsOf([event], timestampMs), none, new Set(), { pastDays: 0, futureDays: 1 });
    expect(plan.rejections.map((r) => r.reason)).toEqual(["out_of_window"]);
    expect(plan.rejections[0]!.detail).toContain("8640000086400000 ms]");
  });
});
