// The limit case's pure parts: the load's records told apart as the generator made them, cut into
// the applier's chunks per partition, the plans' rows, the writers' queues, and its report row.
import { describe, expect, it } from "vitest";
import type { TransferEvent } from "../../services/common/event.ts";
import { partitionOfKey } from "../../services/common/partitioner.ts";
import type { LimitResult } from "../../tools/bench/limit.ts";
import {
  expectedRowsOf,
  type LimitChunk,
  type LoadRecord,
  limitChunksOf,
  loadRecords,
  writerQueues,
} from "../../tools/bench/limit-plan.ts";
import { benchLoad } from "../../tools/bench/loads.ts";
import { type BenchResults, limitRow, type Repeated, ratiosOf } from "../../tools/bench/report.ts";
import { expectedOutcome } from "../../tools/load/load.ts";
import { mintOf } from "../support/events.ts";

const day = Date.UTC(2026, 10, 30);
/** A move of token t1 (a mint without `from`, a burn without `to`), in the USD of the builders. */
function event(token: string, from: string | null, to: string | null, prev: string | null, next: string) {
  return mintOf({
    token_id: token,
    amount: 2_500n,
    from_wallet: from,
    to_wallet: to,
    prev_state: prev,
    next_state: next,
  });
}
const applied = (e: TransferEvent): LoadRecord => ({ event: e, kind: "applied" });

/** mint → A, A → B, a duplicate, a double spend, B → C, burn by C: one token, one partition. */
function oneTokenRecords(): LoadRecord[] {
  const mint = event("t1", null, "A", null, "s1");
  return [
    applied(mint),
    applied(event("t1", "A", "B", "s1", "s2")),
    { event: mint, kind: "duplicate" },
    { event: event("t1", "A", "D", "s1", "s9"), kind: "double_spend" },
    applied(event("t1", "B", "C", "s2", "s3")),
    applied(event("t1", "C", null, "s3", "s4")),
  ];
}

describe("limit: chunks planned without the applier", () => {
  it("given a load, when its records are told apart, then the counts are the generator's outcome", () => {
    const load = benchLoad(3_000, 11, day);
    const kinds = { applied: 0, duplicate: 0, double_spend: 0 };
    for (const { kind } of loadRecords(load)) kinds[kind] += 1;
    const outcome = expectedOutcome(load);
    expect(kinds).toEqual({
      applied: outcome.applied,
      duplicate: outcome.duplicates,
      double_spend: outcome.rejected.state_conflict,
    });
    expect(kinds.applied + kinds.duplicate + kinds.double_spend).toBe(3_000);
  });

  it("given one token's records, when cut into chunks of 4, then offsets, token states, deltas and rejections are the applier's", () => {
    const [chunks] = limitChunksOf(oneTokenRecords(), 1, 4) as [LimitChunk[]];
    expect(chunks.map((c) => [c.expectedOffset, c.plan.nextOffset])).toEqual([
      [0n, 4n],
      [4n, 6n],
    ]);
    const [first, second] = chunks as [LimitChunk, LimitChunk];
    expect(first.plan.ledger.map((row) => row.offset)).toEqual([0n, 1n]);
    expect(first.plan.duplicates).toBe(1);
    expect(first.plan.rejections.map((r) => [r.offset, r.reason, r.tokenId])).toEqual([
      [3n, "state_conflict", "t1"],
    ]);
    // Collapsed to the last state per chunk; inserted in the chunk that mints, updated after.
    expect([...first.plan.tokenChanges.values()]).toEqual([
      {
        tokenId: "t1",
        state: { asset: "USD", amount: 2_500n, owner: "B", state: "s2", retired: false },
        existedBefore: false,
        lastOffset: 1n,
      },
    ]);
    expect(second.plan.tokenChanges.get("t1")).toMatchObject({
      existedBefore: true,
      lastOffset: 5n,
      state: { owner: null, state: "s4", retired: true },
    });
    expect(first.plan.balanceDeltas.get("USD")).toEqual(
      new Map([
        ["A", 0n],
        ["B", 2_500n],
      ]),
    );
    expect(first.plan.supplyDeltas.get("USD")).toEqual({ minted: 2_500n, burned: 0n });
    expect(second.plan.supplyDeltas.get("USD")).toEqual({ minted: 0n, burned: 2_500n });
    // A's zero delta is not written; one supply row per chunk; one token state row in all.
    expect(expectedRowsOf(chunks)).toEqual({
      transfers: 4,
      transfer_ids: 4,
      token_state: 1,
      rejected_transfers: 1,
      balance_delta_entries: 4,
    });
  });

  it("given a generated load on 6 partitions, when chunked, then each chunk holds its partition's consecutive records, at most the chunk size", () => {
    const load = benchLoad(6_000, 11, day);
    const perPartition = limitChunksOf(loadRecords(load), 6, 500);
    let records = 0;
    for (const [partition, chunks] of perPartition.entries()) {
      let offset = 0n;
      for (const { partition: p, expectedOffset, plan } of chunks) {
        expect(p).toBe(partition);
        expect(expectedOffset).toBe(offset);
        expect(plan.nextOffset - expectedOffset).toBeLessThanOrEqual(500n);
        for (const row of plan.ledger)
          expect(partitionOfKey(Buffer.from(row.event.token_id), 6)).toBe(partition);
        offset = plan.nextOffset;
      }
      records += Number(offset);
    }
    expect(records).toBe(6_000);
    expect(expectedRowsOf(perPartition.flat()).transfers).toBe(expectedOutcome(load).applied);
  });

  it("given 4 partitions and 2 shards, when queued, then each shard's writer alternates among its own partitions", () => {
    const chunk = (partition: number, k: number) =>
      ({ partition, expectedOffset: BigInt(k), plan: {} }) as unknown as LimitChunk;
    const perPartition = [
      [chunk(0, 0), chunk(0, 1)],
      [chunk(1, 0)],
      [chunk(2, 0), chunk(2, 1)],
      [chunk(3, 0)],
    ];
    const order = writerQueues(perPartition, 2).map((q) =>
      q.map((c) => `${c.partition}@${c.expectedOffset}`),
    );
    expect(order).toEqual([
      ["0@0", "2@0", "0@1", "2@1"],
      ["1@0", "3@0"],
    ]);
  });
});

describe("limit: in the report", () => {
  const limit = {
    events: 200_000,
    chunks: 42,
    chunkEventsMax: 5_000,
    writers: 2,
    expectedRows: { transfers: 197_000 },
    rows: { transfers: 197_000 },
    rowsMatch: true,
    planMs: 900,
    elapsedMs: 2_500,
    eventsPerSecond: 80_000,
    cpuSeconds: { limit: 1.2, postgres: 3 },
    runsEventsPerSecond: [78_000, 80_000, 83_000],
  } as Repeated<LimitResult>;

  it("given a limit run, when tabled, then its rate, chunks, rows and CPU per event are in its row", () => {
    expect(limitRow(limit)).toEqual([
      "limit: Tally's own writes alone (no Kafka, Avro, rules)",
      "200,000",
      "2.50",
      "80,000",
      "42 chunks of ≤ 5,000 records, 2 writers; 197,000 ledger rows; CPU µs/event: this script 6.0, " +
        "PostgreSQL 15.0; runs 78,000 / 80,000 / 83,000",
    ]);
  });

  it("given Tally and the limit, when the ratios are taken, then Tally end to end and apply-only are divided by the limit", () => {
    const rate = (eventsPerSecond: number) => ({ eventsPerSecond });
    const cases = {
      ceiling: { eventsPerSecond: 100_000, copyOnlyEventsPerSecond: 300_000 },
      limit,
      naive: rate(1_000),
      tally: { eventsPerSecond: 20_000, applyEventsPerSecond: 40_000 },
      replay: rate(20_000),
      hotWallet: rate(20_000),
    } as unknown as BenchResults["cases"];
    expect(ratiosOf(cases)).toMatchObject({
      tallyOverLimit: 0.25,
      applyOverLimit: 0.5,
      tallyOverCeiling: 0.2,
    });
    expect(ratiosOf({ ...cases, limit: undefined })).toMatchObject({
      tallyOverLimit: null,
      applyOverLimit: null,
    });
  });
});
