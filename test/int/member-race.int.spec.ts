// The assignment race of issue 11 (finding 2), deterministic, against the REAL store on a real
// PostgreSQL: onAssigned's load of a partition is held open by a table lock another connection holds,
// a batch of the same partition arrives meanwhile, then the lock goes. The member must load the
// partition ONCE, apply the batch on that view, and then reject the previous owner's replayed move.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ShardContext } from "../../services/applier/apply-chunk.ts";
import { EventDecoder } from "../../services/applier/decode.ts";
import type { LogWindow } from "../../services/applier/incarnation.ts";
import { ApplierMember } from "../../services/applier/member.ts";
import { PgPartitionStore } from "../../services/applier/store.ts";
import { TokenBudget } from "../../services/applier/token-budget.ts";
import { frame, transferEventType } from "../../services/common/avro.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { keyPartitioner } from "../../services/common/partitioner.ts";
import { type Client, createPool, type Pool } from "../../services/common/pg.ts";
import { createRegistry, registerTransferSchema } from "../../services/common/registry.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { fixedNowMs, mintOf, moveOf } from "../support/events.ts";
import {
  batchOf,
  deferred,
  type RecordSpec,
  type ScriptedPayload,
  silentLogger,
} from "../support/sim/scripted.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";
import { waitUntil } from "../support/wait.ts";

const partitions = 4;
const applicationName = "tally-race-member";
const topicId = "race-topic-id-1";

let stack: TestStack;
let pool: Pool;
let lockPool: Pool;
let schemaId: number;
let decoder: EventDecoder;

beforeAll(async () => {
  stack = testStack("race", { shards: "1", TALLY_PARTITIONS: String(partitions) });
  await migrate(stack.config);
  const registry = createRegistry(stack.config);
  schemaId = await registerTransferSchema(stack.config, registry);
  decoder = new EventDecoder(registry);
  pool = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, applicationName, 4);
  lockPool = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, "tally-race-lock", 2);
});
afterAll(async () => {
  await pool?.end();
  await lockPool?.end();
  await dropTestStack(stack);
});

/** The real store, counting its loads and the view each apply was given. */
function countingStore(group: string) {
  const store = new PgPartitionStore(
    {
      group,
      topic: stack.config.TALLY_TOPIC,
      tokenBudget: new TokenBudget(1_000),
      window: { pastDays: 400, futureDays: 2 },
      partitionOfKey: keyPartitioner(partitions),
    },
    [new ShardContext(pool)],
    decoder,
  );
  return {
    store,
    loads: vi.spyOn(store, "load"),
    applies: vi.spyOn(store, "apply"),
  };
}

function memberOn(group: string, store: PgPartitionStore, highOffset: bigint): ApplierMember {
  const window: LogWindow = { topicId, lowOffset: 0n, highOffset };
  return new ApplierMember({
    settings: {
      group,
      topic: stack.config.TALLY_TOPIC,
      chunkEventsMax: 100,
      retry: { attemptsMax: 3, backoffMsMax: 100 },
    },
    store,
    log: { window: async () => window },
    consumer: { seek: vi.fn(), pause: vi.fn(), resume: vi.fn() },
    logger: silentLogger,
  });
}

const recordOf = (offset: bigint, event: TransferEvent): RecordSpec => ({
  offset,
  key: Buffer.from(event.token_id),
  value: frame(schemaId, transferEventType.toBuffer(event)),
  timestampMs: fixedNowMs,
});

function payloadOf(partition: number, records: RecordSpec[]) {
  return {
    batch: batchOf(stack.config.TALLY_TOPIC, partition, records),
    resolveOffset: vi.fn<(offset: string) => void>(),
    heartbeat: async () => {},
    isRunning: () => true,
    isStale: () => false,
  } satisfies ScriptedPayload;
}

/** Backends of the member's pool waiting for a lock on token_state: the held load. */
async function loadsWaitingOnLock(): Promise<number> {
  const result = await lockPool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE '%token_state%'`,
    [applicationName],
  );
  return result.rows[0]!.n;
}

/** How the load is held open: its first query on token_state waits until `release`. */
type Hold = { start(): Promise<void>; whileHeld(): Promise<void>; release(): Promise<void> };

/** Another connection holds an ACCESS EXCLUSIVE lock on token_state in an open transaction. */
function tableLock(): Hold {
  let locker: Client | null = null;
  return {
    async start() {
      locker = await lockPool.connect();
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE token_state IN ACCESS EXCLUSIVE MODE");
    },
    async whileHeld() {
      await waitUntil("the load to wait on the lock", async () => (await loadsWaitingOnLock()) === 1);
    },
    async release() {
      await locker?.query("COMMIT");
      locker?.release();
    },
  };
}

/**
 * The load's count of token_state is held in the test, after its REPEATABLE READ snapshot was taken
 * (by the read of applier_offsets before it), while every other query goes on: a snapshot older than
 * anything committed meanwhile. (A table lock also blocks a batch's own token reads, so on code without
 * single flight the load would usually win the race and hide it: this hold does not.)
 */
function heldQuery(): Hold {
  const gate = deferred();
  const intercepted = deferred();
  type Query = (...args: unknown[]) => Promise<unknown>;
  const wrapped = new WeakSet<object>();
  const wrap = (client: { query: Query }) => {
    if (wrapped.has(client)) return client;
    wrapped.add(client);
    const query = client.query.bind(client);
    client.query = (...args: unknown[]) => {
      const text = String(args[0]);
      if (gate.settled() || !/count\(\*\)/.test(text) || !text.includes("token_state")) return query(...args);
      intercepted.resolve();
      return gate.promise.then(() => query(...args));
    };
    return client;
  };
  const original = pool.connect;
  return {
    async start() {
      // pg's Pool.query connects with a callback, inTransaction with a promise: both are wrapped.
      const connect = original.bind(pool) as (callback?: (...args: unknown[]) => void) => Promise<unknown>;
      (pool as { connect: unknown }).connect = (callback?: (...args: unknown[]) => void) => {
        if (callback === undefined) return connect().then((client) => wrap(client as { query: Query }));
        return connect((error, client, done) => {
          if (client) wrap(client as { query: Query });
          callback(error, client, done);
        });
      };
    },
    whileHeld: () => intercepted.promise,
    async release() {
      pool.connect = original;
      gate.resolve();
    },
  };
}

/** mint to alice, alice -> bob, bob -> carol, bob's replay of s1 (-> dave), carol -> erin. */
function historyOf(token: string) {
  const chain = [
    [null, "alice", null, "s0"],
    ["alice", "bob", "s0", "s1"],
    ["bob", "carol", "s1", "s2"],
    ["bob", "dave", "s1", "s3"],
    ["carol", "erin", "s2", "s4"],
  ] as const;
  const events = chain.map(([from, to, prev, next]) =>
    from === null
      ? mintOf({ token_id: token, to_wallet: to, next_state: next })
      : moveOf({ token_id: token, from_wallet: from, to_wallet: to, prev_state: prev, next_state: next }),
  );
  return { events, records: events.map((event, k) => recordOf(BigInt(k), event)) };
}

describe("ApplierMember on the real store: the assignment race", () => {
  it.each([
    ["an ACCESS EXCLUSIVE lock on token_state", "lock", tableLock],
    ["its token query held after its snapshot", "held", heldQuery],
  ])(
    "given the load of partition p held by %s, when a batch of p (bob -> carol) arrives meanwhile and the load is released, then p is loaded once, the batch applies on that view, and bob's replayed move is rejected state_conflict",
    async (_, label, holdOf) => {
      const group = `${stack.config.TALLY_GROUP}-${label}`;
      const token = `race-token-${label}`;
      const p = keyPartitioner(partitions)(Buffer.from(token));
      const { events, records } = historyOf(token);

      // The previous applier of p: the mint and alice -> bob, stored offset 2.
      const before = memberOn(group, countingStore(group).store, 2n);
      await before.onAssigned([p]);
      await before.eachBatch(payloadOf(p, records.slice(0, 2)));
      expect(before.fatal).toBeNull();

      // The new owner: its load is held; the batch with bob -> carol comes meanwhile.
      const { store, loads, applies } = countingStore(group);
      const member = memberOn(group, store, 5n);
      const hold = holdOf();
      await hold.start();
      let assigned: Promise<void> = Promise.resolve();
      let delivered: Promise<void> = Promise.resolve();
      const raced = payloadOf(p, [records[2]!]);
      try {
        assigned = member.onAssigned([p]);
        await hold.whileHeld();
        delivered = member.eachBatch(raced);
        await new Promise((resolve) => setImmediate(resolve));
        expect(loads).toHaveBeenCalledTimes(1);
      } finally {
        await hold.release();
      }
      await Promise.all([assigned, delivered]);

      expect(member.fatal).toBeNull();
      expect(loads).toHaveBeenCalledTimes(1);
      expect(applies).toHaveBeenCalledTimes(1);
      expect(applies.mock.calls[0]![1]).toBe(await loads.mock.results[0]!.value);
      expect(raced.resolveOffset.mock.calls).toEqual([["2"]]);

      // bob's replay of the state he no longer owns, then carol's true next move.
      const after = payloadOf(p, records.slice(3));
      await member.eachBatch(after);
      expect(after.resolveOffset.mock.calls).toEqual([["4"]]);
      await expectLedger(group, p, token, {
        applied: [0, 1, 2, 4].map((k) => [k, events[k]!.transfer_id] as [number, string]),
        rejected: [[3, "state_conflict"]],
        token: { owner: "erin", state: "s4" },
        offsets: { next: 5, applied: 4, rejected: 1 },
      });
    },
  );
});

async function expectLedger(
  group: string,
  partition: number,
  token: string,
  expected: {
    applied: [number, string][];
    rejected: [number, string][];
    token: { owner: string; state: string };
    offsets: { next: number; applied: number; rejected: number };
  },
): Promise<void> {
  const applied = await pool.query<{ o: number; id: string }>(
    "SELECT kafka_offset::int AS o, transfer_id::text AS id FROM transfers WHERE token_id = $1 ORDER BY kafka_offset",
    [token],
  );
  expect(applied.rows.map((r) => [r.o, r.id])).toEqual(expected.applied);
  const rejected = await pool.query<{ o: number; reason: string }>(
    "SELECT kafka_offset::int AS o, reason FROM rejected_transfers WHERE token_id = $1 ORDER BY kafka_offset",
    [token],
  );
  expect(rejected.rows.map((r) => [r.o, r.reason])).toEqual(expected.rejected);
  const tokens = await pool.query("SELECT owner, state FROM token_state WHERE token_id = $1", [token]);
  expect(tokens.rows).toEqual([expected.token]);
  const offsets = await pool.query(
    `SELECT next_offset::int AS next, applied_count::int AS applied, rejected_count::int AS rejected
       FROM applier_offsets WHERE "group" = $1 AND "partition" = $2`,
    [group, partition],
  );
  expect(offsets.rows).toEqual([expected.offsets]);
}
