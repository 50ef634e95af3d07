// A record that cannot be applied becomes a rejection with its reason and its raw bytes, and the
// partition moves on: each case sends the poison record, then a valid event on the SAME partition,
// through the real stack (Kafka, the registry, `tally apply`, the shards), and shows both outcomes.
import { afterEach, describe, expect, it } from "vitest";
import type { TransferEvent } from "../../services/common/event.ts";
import { migrate } from "../../services/storage/migrate.ts";
import {
  dayCatalogue,
  dayOf,
  dayPartitionsPerTransactionMax,
  partitionNameOf,
} from "../../services/storage/partitions.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import {
  encodeEvent,
  endOfTest,
  homePartitionOf,
  offsetsRows,
  onShard,
  onShards,
  sendEvents,
  sendToPartition,
  shardOfPartition,
  shardRows,
  tokensOn,
} from "../support/applier-process.ts";
import { mintOf, moveOf } from "../support/events.ts";
import { expectExactCounts, storedPartitions } from "../support/offsets.ts";
import { startApplier } from "../support/pipeline.ts";
import type { TallyProcess } from "../support/process.ts";
import { type TestStack, tally, testStack } from "../support/stack.ts";
import { waitUntil } from "../support/wait.ts";

let stack: TestStack | null = null;
const started: TallyProcess[] = [];
afterEach(async () => {
  await endOfTest(started.splice(0), stack);
  stack = null;
});

const dayMs = 86_400_000;

function track(p: TallyProcess): TallyProcess {
  started.push(p);
  return p;
}

/** Waits until the stored offsets add up to `target` records; fails at once if the applier exits first. */
async function appliedOrExited(s: TestStack, applier: TallyProcess, target: bigint): Promise<void> {
  await waitUntil(`${target} records applied`, async () => {
    if (applier.child.exitCode !== null || applier.child.signalCode !== null)
      throw new Error(
        `the applier exited ${applier.child.exitCode} before ${target} records:\n${applier.stderrTail()}`,
      );
    const rows = await offsetsRows(s);
    return rows.reduce((sum, r) => sum + BigInt(r.next_offset), 0n) >= target;
  });
}

/** A fresh topic and shards for one case. */
async function freshStack(label: string, overrides: Record<string, string> = {}): Promise<TestStack> {
  stack = testStack(label, overrides);
  await migrate(stack.config);
  await ensureTopic(stack.config);
  return stack;
}

async function applyUntilCaughtUp(s: TestStack, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const run = await tally(["apply", "--until-caught-up"], { ...s.env, ...env });
  expect(run.code, run.stderr).toBe(0);
}

type RejectedRow = {
  kafka_partition: number;
  kafka_offset: string;
  reason: string;
  detail: string;
  transfer_id: string | null;
  token_id: string | null;
  raw_key: Buffer | null;
  raw_value: Buffer | null;
};

async function rejectedRows(s: TestStack): Promise<RejectedRow[]> {
  return shardRows<RejectedRow>(
    s,
    `SELECT kafka_partition, kafka_offset::text, reason, detail, transfer_id, token_id, raw_key, raw_value
       FROM rejected_transfers WHERE topic = $1 ORDER BY kafka_partition, kafka_offset`,
    [s.config.TALLY_TOPIC],
  );
}

type LedgerRow = {
  transfer_id: string;
  token_id: string;
  prev_state: string | null;
  next_state: string;
  kafka_partition: number;
  kafka_offset: string;
};

async function ledgerRows(s: TestStack): Promise<LedgerRow[]> {
  return shardRows<LedgerRow>(
    s,
    `SELECT transfer_id::text, token_id, prev_state, next_state, kafka_partition, kafka_offset::text
       FROM transfers ORDER BY kafka_partition, kafka_offset`,
  );
}

async function tokenState(s: TestStack, tokenId: string) {
  return shardRows<{ token_id: string; owner: string | null; state: string; kafka_partition: number }>(
    s,
    "SELECT token_id, owner, state, kafka_partition FROM token_state WHERE token_id = $1",
    [tokenId],
  );
}

/** The row of `event` as the ledger holds it, placed at (partition, offset). */
const ledgerRowOf = (event: TransferEvent, partition: number, offset: bigint): LedgerRow => ({
  transfer_id: event.transfer_id,
  token_id: event.token_id,
  prev_state: event.prev_state,
  next_state: event.next_state,
  kafka_partition: partition,
  kafka_offset: String(offset),
});

/** applied + duplicates + rejected = consumed on every partition, each count backed by its rows. */
async function expectExact(s: TestStack): Promise<void> {
  expectExactCounts(await storedPartitions(s));
}

describe("poison records become rejections and the partition moves on", () => {
  it("given a mint sent to a partition other than its key's, then it is rejected wrong_partition with its bytes and the valid event behind it applies", async () => {
    const s = await freshStack("pwrong");
    const poisonToken = "stray-token";
    const home = homePartitionOf(s, poisonToken);
    const partition = (home + 1) % s.config.TALLY_PARTITIONS;
    const poison = mintOf({ token_id: poisonToken, to_wallet: "mallory", occurred_at: Date.now() });
    const poisonBytes = await encodeEvent(s, poison);
    const poisonOffset = await sendToPartition(s, {
      partition,
      key: Buffer.from(poisonToken),
      value: poisonBytes,
    });
    const valid = mintOf({ token_id: tokensOn(s, partition, 1, "ok")[0]!, occurred_at: Date.now() });
    const [placed] = await sendEvents(s, [valid]);
    expect(placed).toEqual({ partition, offset: poisonOffset + 1n });

    await applyUntilCaughtUp(s);

    expect(await rejectedRows(s)).toEqual([
      {
        kafka_partition: partition,
        kafka_offset: String(poisonOffset),
        reason: "wrong_partition",
        detail: `key "${poisonToken}" belongs on partition ${home}, not ${partition}`,
        transfer_id: poison.transfer_id,
        token_id: poisonToken,
        raw_key: Buffer.from(poisonToken),
        raw_value: poisonBytes,
      },
    ]);
    expect(await ledgerRows(s)).toEqual([ledgerRowOf(valid, partition, placed!.offset)]);
    expect(await tokenState(s, poisonToken)).toEqual([]); // minted nowhere
    await expectExact(s);
  });

  it("given a token minted on another partition in the old days, when it is minted again on its own, then wrong_partition (no crash loop on token_state_pkey) and the valid event behind it applies", async () => {
    const s = await freshStack("pforeign");
    const token = "old-days-token";
    const home = homePartitionOf(s, token);
    // Another partition of the same shard: the old row shares the token_state table with `home`.
    const elsewhere = (home + 2) % s.config.TALLY_PARTITIONS;
    expect(shardOfPartition(s, elsewhere)).toBe(shardOfPartition(s, home));
    await onShard(s, shardOfPartition(s, home), (pool) =>
      pool.query(
        `INSERT INTO token_state (token_id, asset, amount, owner, state, retired, kafka_partition, last_offset)
         VALUES ($1, 'USD', 1000, 'old-owner', 'old-state', false, $2, 0)`,
        [token, elsewhere],
      ),
    );
    const poison = mintOf({ token_id: token, to_wallet: "newcomer", occurred_at: Date.now() });
    const valid = mintOf({ token_id: tokensOn(s, home, 1, "ok")[0]!, occurred_at: Date.now() });
    const [poisonAt, validAt] = await sendEvents(s, [poison, valid]);
    expect([poisonAt!.partition, validAt!.partition]).toEqual([home, home]);

    await applyUntilCaughtUp(s);

    expect(await rejectedRows(s)).toEqual([
      {
        kafka_partition: home,
        kafka_offset: String(poisonAt!.offset),
        reason: "wrong_partition",
        detail: `token "${token}" lives on partition ${elsewhere}`,
        transfer_id: poison.transfer_id,
        token_id: token,
        raw_key: Buffer.from(token),
        raw_value: await encodeEvent(s, poison),
      },
    ]);
    expect(await ledgerRows(s)).toEqual([ledgerRowOf(valid, home, validAt!.offset)]);
    // The old row is left as it was: one token, one partition's view.
    expect(await tokenState(s, token)).toEqual([
      { token_id: token, owner: "old-owner", state: "old-state", kafka_partition: elsewhere },
    ]);
    await expectExact(s);
  });

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
