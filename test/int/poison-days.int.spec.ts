// Day partitions made while applying: a backfill over 2,000 days made in bounded steps, and a batch
// re-planned after a duplicate id, whose move to a day without a partition applies and creates it.
import { describe, expect, it } from "vitest";
import { dayCatalogue, dayOf, dayPartitionsPerTransactionMax } from "../../services/storage/partitions.ts";
import {
  homePartitionOf,
  offsetsRows,
  onShard,
  sendEvents,
  shardOfPartition,
  tokensOn,
} from "../support/applier-process.ts";
import { mintOf, moveOf } from "../support/events.ts";
import { startApplier } from "../support/pipeline.ts";
import {
  applyUntilCaughtUp,
  dayMs,
  expectExact,
  ledgerRowOf,
  ledgerRows,
  poisonCases,
  rejectedRows,
  tokenState,
} from "../support/poison.ts";
import { waitUntil } from "../support/wait.ts";

const { freshStack } = poisonCases();

describe("poison records become rejections and the partition moves on", () => {
  it("given a backfill over 2,000 distinct days in one batch, then the days are made in bounded steps, every event applies and every day has its partition", async () => {
    const s = await freshStack("pbackfill", { TALLY_WINDOW_PAST_DAYS: "36600" });
    const days = 2_000;
    const partition = 1;
    const shard = shardOfPartition(s, partition);
    const today = dayOf(Date.now());
    const tokens = tokensOn(s, partition, days, "backfill");
    // One mint a day, 10 to 2,009 days ago: none of these days has a partition yet.
    const mints = tokens.map((token, k) =>
      mintOf({ token_id: token, to_wallet: `w${k % 50}`, occurred_at: (today - 10 - k) * dayMs + 3_600_000 }),
    );
    const placed = await sendEvents(s, mints);
    expect(new Set(placed.map((p) => p.partition))).toEqual(new Set([partition]));
    const eventDays = new Set(mints.map((m) => dayOf(m.occurred_at)));
    expect(eventDays.size).toBe(days);
    const madeNow = async () => {
      const catalogue = await onShard(s, shard, (pool) => dayCatalogue(pool));
      return [...eventDays].filter((day) => catalogue.attached.has(day)).length;
    };
    expect(await madeNow()).toBe(0);

    const applier = startApplier(s, ["--until-caught-up"]);
    // While the batch is still uncommitted, days appear committed in steps of
    // dayPartitionsPerTransactionMax (one transaction each), not all at once at the end.
    const midway = await waitUntil(
      "some of the days made before the batch commits",
      async () => {
        const made = await madeNow();
        if (made === 0 || made >= days) return made >= days ? { made, applied: null } : false;
        const row = (await offsetsRows(s)).find((r) => r.partition === partition);
        return { made, applied: row?.applied_count ?? "0" };
      },
      { timeoutMs: 300_000, intervalMs: 100 },
    );
    expect(midway.applied).toBe("0");
    expect(midway.made % dayPartitionsPerTransactionMax).toBe(0);
    expect(await applier.exited).toBe(0);

    const [row] = (await offsetsRows(s)).filter((r) => r.partition === partition);
    expect([row!.next_offset, row!.applied_count, row!.rejected_count]).toEqual([
      String(days),
      String(days),
      "0",
    ]);
    const ledgerCount = await onShard(s, shard, async (pool) =>
      Number((await pool.query("SELECT count(*)::int n FROM transfers")).rows[0].n),
    );
    expect(ledgerCount).toBe(days);
    expect(await madeNow()).toBe(days);
    await expectExact(s);
  }, 400_000);

  it("given a reused transfer id and a move to a day without a partition in one batch, when the batch is re-planned, then the first is a duplicate, the second applies and its day is created", async () => {
    const s = await freshStack("preplan");
    const token = "replan-token";
    const partition = homePartitionOf(s, token);
    const other = tokensOn(s, partition, 1, "other")[0]!;
    const now = Date.now();
    const mintT = mintOf({ token_id: token, to_wallet: "alice", next_state: "s1", occurred_at: now });
    const moveT = moveOf({
      token_id: token,
      from_wallet: "alice",
      to_wallet: "bob",
      prev_state: "s1",
      next_state: "s2",
      occurred_at: now,
    });
    const mintU = mintOf({ token_id: other, to_wallet: "dora", occurred_at: now });
    const [mintTAt, moveTAt] = await sendEvents(s, [mintT, moveT, mintU]);
    await applyUntilCaughtUp(s);

    // X reuses the id of U's mint (applied, same shard); Y moves T from the same state 10 days ago.
    const tenDaysAgo = dayOf(now) - 10;
    const shard = shardOfPartition(s, partition);
    expect((await onShard(s, shard, (pool) => dayCatalogue(pool))).attached.has(tenDaysAgo)).toBe(false);
    const x = moveOf({
      transfer_id: mintU.transfer_id,
      token_id: token,
      from_wallet: "bob",
      to_wallet: "carol",
      prev_state: "s2",
      next_state: "s3",
      occurred_at: now,
    });
    const y = moveOf({
      token_id: token,
      from_wallet: "bob",
      to_wallet: "erin",
      prev_state: "s2",
      next_state: "s4",
      occurred_at: tenDaysAgo * dayMs + 3_600_000,
    });
    const [xAt, yAt] = await sendEvents(s, [x, y]); // both wait for the applier: one batch
    expect([xAt!.partition, yAt!.partition]).toEqual([partition, partition]);
    const before = (await offsetsRows(s)).find((r) => r.partition === partition)!;

    await applyUntilCaughtUp(s);

    const after = (await offsetsRows(s)).find((r) => r.partition === partition)!;
    const delta = (k: keyof typeof after) => BigInt(after[k] as string) - BigInt(before[k] as string);
    expect({
      applied: delta("applied_count"),
      duplicates: delta("duplicate_count"),
      rejected: delta("rejected_count"),
      next: after.next_offset,
    }).toEqual({ applied: 1n, duplicates: 1n, rejected: 0n, next: String(yAt!.offset + 1n) });
    const ledger = await ledgerRows(s);
    expect(ledger.filter((r) => r.token_id === token)).toEqual([
      ledgerRowOf(mintT, partition, mintTAt!.offset),
      ledgerRowOf(moveT, partition, moveTAt!.offset),
      ledgerRowOf(y, partition, yAt!.offset),
    ]);
    expect(await tokenState(s, token)).toEqual([
      { token_id: token, owner: "erin", state: "s4", kafka_partition: partition },
    ]);
    expect((await onShard(s, shard, (pool) => dayCatalogue(pool))).attached.has(tenDaysAgo)).toBe(true);
    expect(await rejectedRows(s)).toEqual([]);
    await expectExact(s);
  });
});
