// Poison records of archived days (archived_day): an event of a detached day partition, before and while
// the applier runs, rejected without moving the chain; and the day re-attached, where a re-drive applies.
import { describe, expect, it } from "vitest";
import { dayCatalogue, dayOf, partitionNameOf } from "../../services/storage/partitions.ts";
import { encodeEvent, onShard, onShards, sendEvents, shardOfPartition } from "../support/applier-process.ts";
import { mintOf, moveOf } from "../support/events.ts";
import { startApplier } from "../support/pipeline.ts";
import {
  appliedOrExited,
  applyUntilCaughtUp,
  dayMs,
  expectExact,
  ledgerRowOf,
  ledgerRows,
  poisonCases,
  rejectedRows,
  tokenState,
} from "../support/poison.ts";

const { freshStack, track } = poisonCases();

describe("poison records become rejections and the partition moves on", () => {
  it("given a detached (archived) day partition, when an event of that day comes, then archived_day, the chain does not move, and the next move from the unchanged state applies", async () => {
    const s = await freshStack("parchive");
    const token = "archived-day-token";
    const mint = mintOf({ token_id: token, to_wallet: "alice", next_state: "s0", occurred_at: Date.now() });
    const [minted] = await sendEvents(s, [mint]);
    await applyUntilCaughtUp(s);

    // Given: yesterday's day partition archived on every shard (made by migrate, then detached).
    const yesterday = dayOf(Date.now()) - 1;
    const name = partitionNameOf(yesterday);
    await onShards(s, (pool) => pool.query(`ALTER TABLE transfers DETACH PARTITION ${name}`));
    const late = moveOf({
      token_id: token,
      from_wallet: "alice",
      to_wallet: "bob",
      prev_state: "s0",
      next_state: "s1",
      occurred_at: yesterday * dayMs + 12 * 3_600_000,
    });
    const next = moveOf({
      token_id: token,
      from_wallet: "alice",
      to_wallet: "carol",
      prev_state: "s0",
      next_state: "s2",
      occurred_at: Date.now(),
    });
    const [lateAt, nextAt] = await sendEvents(s, [late, next]);
    expect([lateAt!.partition, nextAt!.partition]).toEqual([minted!.partition, minted!.partition]);

    await applyUntilCaughtUp(s);

    expect(await rejectedRows(s)).toEqual([
      {
        kafka_partition: minted!.partition,
        kafka_offset: String(lateAt!.offset),
        reason: "archived_day",
        detail: `the day partition of ${new Date(yesterday * dayMs).toISOString().slice(0, 10)} is detached (archived)`,
        transfer_id: late.transfer_id,
        token_id: token,
        raw_key: Buffer.from(token),
        raw_value: await encodeEvent(s, late),
      },
    ]);
    expect(await ledgerRows(s)).toEqual([
      ledgerRowOf(mint, minted!.partition, minted!.offset),
      ledgerRowOf(next, minted!.partition, nextAt!.offset),
    ]);
    expect(await tokenState(s, token)).toEqual([
      { token_id: token, owner: "carol", state: "s2", kafka_partition: minted!.partition },
    ]);
    // The archived day stays archived: the applier did not attach or re-create it.
    const shard = shardOfPartition(s, minted!.partition);
    const catalogue = await onShard(s, shard, (pool) => dayCatalogue(pool));
    expect([catalogue.detached.has(yesterday), catalogue.attached.has(yesterday)]).toEqual([true, false]);
    await expectExact(s);
  });

  it("given a running applier, when a day is detached under it, then a late event of that day is archived_day and the applier goes on", async () => {
    const s = await freshStack("parchrun");
    const token = "archived-live-token";
    const applier = track(startApplier(s));
    const mint = mintOf({ token_id: token, to_wallet: "alice", next_state: "s0", occurred_at: Date.now() });
    const [minted] = await sendEvents(s, [mint]);
    await appliedOrExited(s, applier, 1n);

    // When: yesterday's day (attached when the applier read the catalogue) is archived while it runs.
    const yesterday = dayOf(Date.now()) - 1;
    await onShards(s, (pool) =>
      pool.query(`ALTER TABLE transfers DETACH PARTITION ${partitionNameOf(yesterday)}`),
    );
    const late = moveOf({
      token_id: token,
      to_wallet: "bob",
      prev_state: "s0",
      next_state: "s1",
      occurred_at: yesterday * dayMs + 12 * 3_600_000,
    });
    const next = moveOf({
      token_id: token,
      to_wallet: "carol",
      prev_state: "s0",
      next_state: "s2",
      occurred_at: Date.now(),
    });
    const [lateAt, nextAt] = await sendEvents(s, [late, next]);
    await appliedOrExited(s, applier, 3n);

    // Then: the late event is archived_day, the next move applies from the unchanged state.
    expect((await rejectedRows(s)).map((r) => [r.kafka_offset, r.reason, r.transfer_id])).toEqual([
      [String(lateAt!.offset), "archived_day", late.transfer_id],
    ]);
    expect(await ledgerRows(s)).toEqual([
      ledgerRowOf(mint, minted!.partition, minted!.offset),
      ledgerRowOf(next, minted!.partition, nextAt!.offset),
    ]);
    applier.signal("SIGTERM");
    expect(await applier.exited).toBe(0);
    await expectExact(s);
  });

  it("given an archived day re-attached under a running applier, when a later event of that day comes, then it applies", async () => {
    const s = await freshStack("pattach");
    const token = "reattached-token";
    const yesterday = dayOf(Date.now()) - 1;
    const name = partitionNameOf(yesterday);
    await onShards(s, (pool) => pool.query(`ALTER TABLE transfers DETACH PARTITION ${name}`));
    const applier = track(startApplier(s));
    // Given: the applier has met the archived day (its catalogue says detached).
    const mint = mintOf({ token_id: token, to_wallet: "alice", next_state: "s0", occurred_at: Date.now() });
    const late = moveOf({
      token_id: token,
      to_wallet: "bob",
      prev_state: "s0",
      next_state: "s1",
      occurred_at: yesterday * dayMs + 12 * 3_600_000,
    });
    const [minted, lateAt] = await sendEvents(s, [mint, late]);
    await appliedOrExited(s, applier, 2n);
    expect((await rejectedRows(s)).map((r) => [r.kafka_offset, r.reason])).toEqual([
      [String(lateAt!.offset), "archived_day"],
    ]);

    // When: the operator attaches the day again and the event comes again (a re-drive: same content, same id).
    const from = new Date(yesterday * dayMs).toISOString().slice(0, 10);
    const to = new Date((yesterday + 1) * dayMs).toISOString().slice(0, 10);
    await onShards(s, (pool) =>
      pool.query(
        `ALTER TABLE transfers ATTACH PARTITION ${name} FOR VALUES FROM ('${from} 00:00:00+00') TO ('${to} 00:00:00+00')`,
      ),
    );
    const [redriveAt] = await sendEvents(s, [late]);
    await appliedOrExited(s, applier, 3n);

    // Then: it applies (the chain had not moved), into the re-attached day.
    expect(await ledgerRows(s)).toEqual([
      ledgerRowOf(mint, minted!.partition, minted!.offset),
      ledgerRowOf(late, minted!.partition, redriveAt!.offset),
    ]);
    expect(await tokenState(s, token)).toEqual([
      { token_id: token, owner: "bob", state: "s1", kafka_partition: minted!.partition },
    ]);
    applier.signal("SIGTERM");
    expect(await applier.exited).toBe(0);
    await expectExact(s);
  });
});
