// The pure parts of services/outcomes: filters, the page cursor, the reasons, the re-drive plan,
// JSON and the printed lines.
import { describe, expect, it } from "vitest";
import { rejectionReasons as appliersReasons } from "../../services/applier/decide.ts";
import { decodeCursor, encodeCursor, newestFirst } from "../../services/outcomes/cursor.ts";
import { filterConditions, parseSince } from "../../services/outcomes/filters.ts";
import { toJson } from "../../services/outcomes/json.ts";
import {
  reasonsOf,
  redrivableByDefault,
  rejectionReasons,
  whyNotByDefault,
} from "../../services/outcomes/reasons.ts";
import { type Candidate, type Precheck, planRedrive } from "../../services/outcomes/redrive-plan.ts";
import { reprocessLines, transferLines } from "../../services/outcomes/text.ts";
import type { TransferOutcome } from "../../services/outcomes/transfer.ts";

describe("filters", () => {
  const nowMs = Date.UTC(2026, 10, 30, 12, 0, 0);

  it("given 30m, 12h or 7d, when parsed as --since, then that long before now", () => {
    expect(parseSince("30m", nowMs).getTime()).toBe(nowMs - 30 * 60_000);
    expect(parseSince("12h", nowMs).getTime()).toBe(nowMs - 12 * 3_600_000);
    expect(parseSince("7d", nowMs).getTime()).toBe(nowMs - 7 * 86_400_000);
  });

  it("given an ISO instant with a zone, or a date, then that instant; given a local time or words, then a RangeError", () => {
    expect(parseSince("2026-11-30T08:00:00Z", nowMs).toISOString()).toBe("2026-11-30T08:00:00.000Z");
    expect(parseSince("2026-11-30", nowMs).toISOString()).toBe("2026-11-30T00:00:00.000Z");
    expect(() => parseSince("2026-11-30T08:00:00", nowMs)).toThrow(RangeError);
    expect(() => parseSince("yesterday", nowMs)).toThrow(RangeError);
    expect(() => parseSince("2026-13-45", nowMs)).toThrow(RangeError);
  });

  it("given every filter, when turned into conditions, then the values travel as parameters only", () => {
    const params: unknown[] = [];
    const since = new Date(0);
    const conditions = filterConditions(
      { topic: "t'; DROP TABLE x", reasons: ["unknown_schema"], since, tokenId: "tok'1" },
      params,
    );
    expect(conditions).toEqual([
      "topic = $1",
      "reason = ANY($2::text[])",
      "rejected_at >= $3::timestamptz",
      "(token_id = $4 OR (token_id IS NULL AND raw_key = convert_to($4, 'UTF8')))",
    ]);
    expect(params).toEqual(["t'; DROP TABLE x", ["unknown_schema"], since, "tok'1"]);
  });

  it("given no filter but the topic, then one condition", () => {
    const params: unknown[] = ["earlier"];
    expect(filterConditions({ topic: "t", reasons: null, since: null, tokenId: null }, params)).toEqual([
      "topic = $2",
    ]);
  });
});

describe("the page cursor", () => {
  it("given a cursor, when encoded and decoded, then the same cursor", () => {
    const cursor = { rejectedAtMicros: 1_796_028_195_287_831n, partition: 3, offset: 12_345_678_901n };
    expect(decodeCursor(encodeCursor(cursor))).toEqual(cursor);
  });

  it("given text that is no cursor, then a RangeError", () => {
    expect(() => decodeCursor("1.2")).toThrow(RangeError);
    expect(() => decodeCursor("-1.2.3")).toThrow(RangeError);
  });

  it("given rows of one instant, then newest first means higher partition, then higher offset (10 before 9)", () => {
    const at = (partition: number, offset: bigint, rejectedAtMicros = 5n) => ({
      rejectedAtMicros,
      partition,
      offset,
    });
    const rows = [at(0, 9n), at(3, 2n), at(0, 10n), at(1, 1n, 6n)];
    expect(rows.sort(newestFirst).map((r) => `${r.partition}/${r.offset}`)).toEqual([
      "1/1",
      "3/2",
      "0/10",
      "0/9",
    ]);
  });
});

describe("reasons", () => {
  it("given no reason named, then the defaults: unknown_schema and incompatible_schema", () => {
    expect(reasonsOf(null)).toEqual(["unknown_schema", "incompatible_schema"]);
    expect(reasonsOf([])).toEqual([...redrivableByDefault]);
  });

  it("given reasons named, then those (once each); given an unknown one, then a RangeError naming the reasons", () => {
    expect(reasonsOf(["state_conflict", "state_conflict", "archived_day"])).toEqual([
      "state_conflict",
      "archived_day",
    ]);
    expect(() => reasonsOf(["nope"])).toThrow(/unknown reason nope; reasons: undecodable/);
  });

  it("given every reason of the applier, then each says why it is or is not re-driven by default", () => {
    expect([...rejectionReasons]).toEqual([...appliersReasons]);
    expect(Object.keys(whyNotByDefault).sort()).toEqual([...rejectionReasons].sort());
  });
});

describe("the re-drive plan", () => {
  const candidate = (
    offset: number,
    key: string | null,
    reason: Candidate["reason"] = "unknown_schema",
  ): Candidate => ({
    partition: 1,
    offset: BigInt(offset),
    reason,
    key: key === null ? null : Buffer.from(key),
    value: Buffer.from([0, 0, 0, 0, 7]),
  });
  const decodes: Precheck = { decodes: true };
  const stillUnknown: Precheck = {
    decodes: false,
    reason: "unknown_schema",
    detail: "schema id 7 not found",
  };

  it("given records that decode now, when planned, then all re-driven in their order", () => {
    const page = [candidate(1, "a"), candidate(2, "b"), candidate(3, "a")];
    const { planned, budgetLeft } = planRedrive(page, () => decodes, new Set(), 10);
    expect(planned.map((p) => [p.candidate.offset, p.action])).toEqual([
      [1n, "redrive"],
      [2n, "redrive"],
      [3n, "redrive"],
    ]);
    expect(budgetLeft).toBe(7);
  });

  it("given a key's first record still unknown, then it and the key's later records are held back, other keys go, and the hold carries to the next page", () => {
    const held = new Set<string>();
    const first = planRedrive(
      [candidate(1, "a"), candidate(2, "b"), candidate(3, "a")],
      (c) => (c.offset === 1n ? stillUnknown : decodes),
      held,
      10,
    );
    expect(first.planned.map((p) => p.action)).toEqual(["hold", "redrive", "hold"]);
    expect(first.planned[0]).toMatchObject({
      why: "cause not fixed: would be unknown_schema again (schema id 7 not found)",
    });
    expect(first.planned[2]).toMatchObject({ why: "an earlier rejection of its key is held back" });
    const next = planRedrive([candidate(9, "a")], () => decodes, held, 10);
    expect(next.planned.map((p) => p.action)).toEqual(["hold"]);
  });

  it("given records without a key, then a held one holds back no other", () => {
    const { planned } = planRedrive(
      [candidate(1, null), candidate(2, null)],
      (c) => (c.offset === 1n ? stillUnknown : decodes),
      new Set(),
      10,
    );
    expect(planned.map((p) => p.action)).toEqual(["hold", "redrive"]);
  });

  it("given a budget of 2, then two re-driven and the rest of the page left for the next run", () => {
    const page = [candidate(1, "a"), candidate(2, "a"), candidate(3, "a")];
    const { planned, budgetLeft } = planRedrive(page, () => null, new Set(), 2);
    expect(planned.map((p) => p.candidate.offset)).toEqual([1n, 2n]);
    expect(budgetLeft).toBe(0);
  });
});

describe("output", () => {
  it("given bigints, when printed as JSON, then decimal strings, exact beyond 2^53", () => {
    expect(toJson({ offset: 2n ** 63n - 1n, n: 1 })).toBe('{"offset":"9223372036854775807","n":1}');
  });

  const applied: TransferOutcome = {
    transferId: "0b7c5c5e-0000-4000-8000-000000000001",
    status: "applied",
    applied: [
      {
        shard: 1,
        coordinates: { topic: "transfers", partition: 3, offset: 17n },
        day: "2026-11-30",
        tokenId: "tok-1",
        batchId: null,
        asset: "USD",
        amount: 1000n,
        fromWallet: null,
        toWallet: "alice",
        prevState: null,
        nextState: "s0",
        occurredAt: "2026-11-30T08:00:00.000Z",
        schemaId: 7,
      },
    ],
    appliedWithoutRow: [],
    rejections: [
      {
        shard: 1,
        coordinates: { topic: "transfers", partition: 3, offset: 12n },
        reason: "unknown_schema",
        detail: "schema id 7 is not in the registry",
        transferId: null,
        tokenId: null,
        schemaId: 7,
        rejectedAt: "2026-11-30T08:00:01.000Z",
        redriven: { at: "2026-11-30T09:00:00.000Z", to: { partition: 3, offset: 17n } },
        foundBy: "raw_bytes",
        redriveFate: { kind: "applied" },
      },
    ],
    duplicateCounts: [{ partition: 3, counted: 2n }],
  };

  it("given a transfer applied by a re-drive, then its row, the rejection, where the re-drive went and an honest duplicates line", () => {
    const text = transferLines(applied).join("\n");
    expect(text).toMatch(/^transfer 0b7c5c5e-0000-4000-8000-000000000001: applied\n/);
    expect(text).toContain("applied    shard 1, partition 3, offset 17, day 2026-11-30");
    expect(text).toContain("token tok-1: (none) → s0 ((mint) → alice, 1000 USD)");
    expect(text).toContain("rejected   shard 1, partition 3, offset 12: unknown_schema");
    expect(text).toContain("found by the id's bytes in its raw value");
    expect(text).toContain(
      "re-driven 2026-11-30T09:00:00.000Z to partition 3, offset 17: applied (the row above)",
    );
    expect(text).toContain(
      "partition 3 has counted 2 in all; whether any was a copy of this transfer is not recorded",
    );
  });

  it("given an unknown transfer, then one verdict and what unknown can mean", () => {
    const unknown: TransferOutcome = {
      ...applied,
      status: "unknown",
      applied: [],
      rejections: [],
      duplicateCounts: [],
    };
    expect(transferLines(unknown)[0]).toBe("transfer 0b7c5c5e-0000-4000-8000-000000000001: unknown");
  });

  it("given a dry run, then 'would re-drive' and the held-back records with why", () => {
    const lines = reprocessLines({
      dryRun: true,
      reasons: ["unknown_schema"],
      redriven: 1,
      held: 1,
      redrivenList: [
        { shard: 0, from: { topic: "t", partition: 2, offset: 5n }, reason: "unknown_schema", to: null },
      ],
      heldList: [
        { shard: 0, from: { topic: "t", partition: 2, offset: 6n }, reason: "unknown_schema", why: "x" },
      ],
      limitReached: false,
    });
    expect(lines).toEqual([
      "reprocess (dry run): 1 would re-drive, 1 held back; reasons unknown_schema",
      "  would re-drive shard 0, partition 2, offset 5 (unknown_schema)",
      "  held back shard 0, partition 2, offset 6 (unknown_schema): x",
    ]);
  });
});
