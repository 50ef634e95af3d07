// The balance-delta format an applier writes follows what the shard's projectors read
// (storage/delta-readers.ts): chunk rows only once a projector that reads them is declared, so a
// projector of an older release, which reads only balance_deltas, never checkpoints past rows it
// cannot see. On a real PostgreSQL, Kafka and registry.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runApplier } from "../../services/applier/applier.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { createPool } from "../../services/common/pg.ts";
import { createRegistry, registerTransferSchema } from "../../services/common/registry.ts";
import { TransferProducer } from "../../services/producer/producer.ts";
import { readBalances, runProjector } from "../../services/projector/index.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import { verify } from "../../services/verify/index.ts";
import { mintOf, moveOf } from "../support/events.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";
import { waitUntil } from "../support/wait.ts";

let stack: TestStack;

beforeAll(async () => {
  stack = testStack("dfmt");
  await migrate(stack.config);
  await ensureTopic(stack.config);
  await registerTransferSchema(stack.config, createRegistry(stack.config));
});
afterAll(async () => dropTestStack(stack));

/** Sums over every shard of one count query. */
async function shardCount(sql: string): Promise<number> {
  let total = 0;
  for (const url of stack.config.TALLY_PG_SHARDS) {
    const pool = createPool(stack.config, url, "test", 1);
    try {
      total += (await pool.query<{ n: number }>(sql)).rows[0]!.n;
    } finally {
      await pool.end();
    }
  }
  return total;
}
const legacyRows = () => shardCount("SELECT count(*)::int AS n FROM balance_deltas");
const chunkRows = () => shardCount("SELECT count(*)::int AS n FROM balance_delta_chunks");
const declaredShards = () =>
  shardCount("SELECT count(*)::int AS n FROM delta_readers WHERE format = 'balance_delta_chunks'");
const appliedRows = () => shardCount("SELECT count(*)::int AS n FROM transfers");

async function send(events: TransferEvent[]): Promise<void> {
  const producer = new TransferProducer(stack.config);
  await producer.connect();
  try {
    const results = await producer.send(events);
    expect(results.every((r) => r.ok)).toBe(true);
  } finally {
    await producer.disconnect();
  }
}

const tokens = Array.from({ length: 12 }, (_, k) => `dfmt-${k}`);
const mints = tokens.map((token_id, k) => mintOf({ token_id, amount: BigInt(100 + k), to_wallet: "alice" }));
const moves = tokens.map((token_id, k) =>
  moveOf({ token_id, amount: BigInt(100 + k), to_wallet: `bob-${k % 3}` }),
);

describe("the balance-delta format follows the shard's declared projectors", () => {
  it("given a shard no applier ever wrote to, when migrated, then chunk rows are declared readable", async () => {
    expect(await declaredShards()).toBe(stack.config.TALLY_PG_SHARDS.length);
  });

  it("given a shard upgraded from a release before chunk rows, when a running applier applies before and after a new projector starts, then legacy rows first, chunk rows after, and the views are exact", async () => {
    // As an older release left it: migrated, but no projector that reads chunk rows declared.
    for (const url of stack.config.TALLY_PG_SHARDS) {
      const pool = createPool(stack.config, url, "test", 1);
      await pool.query("DELETE FROM delta_readers");
      await pool.end();
    }
    const stop = new AbortController();
    const applier = runApplier(stack.config, { signal: stop.signal });
    try {
      await send(mints);
      await waitUntil("the mints applied", async () => (await appliedRows()) === mints.length);
      expect(await chunkRows()).toBe(0);
      expect(await legacyRows()).toBeGreaterThan(0);

      await runProjector(stack.config, { untilCaughtUp: true });
      expect(await declaredShards()).toBe(stack.config.TALLY_PG_SHARDS.length);
      expect(await legacyRows()).toBe(0); // projected, then pruned

      // The same applier, its pools kept: it asks again per chunk until it sees the declaration.
      await send(moves);
      await waitUntil("the moves applied", async () => (await appliedRows()) === mints.length + moves.length);
      expect(await chunkRows()).toBeGreaterThan(0);
      expect(await legacyRows()).toBe(0);
    } finally {
      stop.abort();
      await applier;
    }

    await runProjector(stack.config, { untilCaughtUp: true });
    const alice = await readBalances(stack.config, "alice");
    expect(alice.reduce((sum, b) => sum + b.balance, 0n)).toBe(0n);
    const bob = (k: number) => tokens.reduce((sum, _, i) => (i % 3 === k ? sum + BigInt(100 + i) : sum), 0n);
    for (const k of [0, 1, 2])
      expect(await readBalances(stack.config, `bob-${k}`)).toEqual([{ asset: "USD", balance: bob(k) }]);
    const report = await verify(stack.config);
    expect(report.checks.filter((c) => !c.ok).map((c) => c.key)).toEqual([]);
  });
});
