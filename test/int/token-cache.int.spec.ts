// Given far more tokens than the applier may keep (TALLY_TOKEN_CACHE_MAX at its floor, 1,000, over 4
// partitions: 250 a partition against about 1,500 tokens each), when a generated load is applied in
// two process lives, then every outcome is the generator's, balances included, and verify holds.
// The cache starts complete (the partitions are empty when loaded), so a cache that dropped tokens
// and still believed itself complete would take their moves for moves of unminted tokens.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runApplier } from "../../services/applier/applier.ts";
import { createRegistry, registerTransferSchema } from "../../services/common/registry.ts";
import { TransferProducer } from "../../services/producer/producer.ts";
import { runProjector } from "../../services/projector/index.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import { verify } from "../../services/verify/index.ts";
import { createLoad, type LoadOutcome } from "../../tools/load/load.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";

const tokens = 6_000;
const partitions = 4;
const tokenCacheMax = 1_000;

let stack: TestStack;
let expected: LoadOutcome;
let expectedBalances: Map<string, Map<string, bigint>>;
const totals = { applied: 0, duplicates: 0, rejected: 0 };

beforeAll(async () => {
  stack = testStack("tcache", {
    TALLY_TOKEN_CACHE_MAX: String(tokenCacheMax),
    TALLY_PARTITIONS: String(partitions),
    // Small chunks: many trims per partition, each generation turning over often.
    TALLY_BATCH_EVENTS_MAX: "200",
  });
  const { config } = stack;
  await migrate(config);
  await ensureTopic(config);
  const schemaId = await registerTransferSchema(config, createRegistry(config));
  const load = createLoad({
    events: 24_000,
    tokens,
    wallets: 400,
    duplicateRate: 0.01,
    doubleSpendRate: 0.01,
    seed: 20_261_130,
    nowMs: Date.now(),
  });
  const events = [...load.events()];
  expected = load.outcome;
  expectedBalances = load.balances();
  const producer = new TransferProducer(config, { schemaId });
  await producer.connect();
  try {
    // Two process lives: the second loads views of partitions that no longer fit their share.
    for (const half of [events.slice(0, 12_000), events.slice(12_000)]) {
      const results = await producer.send(half);
      expect(results.every((r) => r.ok)).toBe(true);
      const summary = await runApplier(config, { untilCaughtUp: true });
      totals.applied += summary.applied;
      totals.duplicates += summary.duplicates;
      totals.rejected += summary.rejected;
    }
  } finally {
    await producer.disconnect();
  }
  await runProjector(config, { untilCaughtUp: true });
}, 240_000);
afterAll(async () => dropTestStack(stack));

describe("an applier keeping a fraction of the tokens it applies", () => {
  it("then the load needed eviction: more tokens per partition than the partition's share", () => {
    expect(expected.mints).toBe(tokens);
    expect(tokens / partitions).toBeGreaterThan((tokenCacheMax / partitions) * 4);
  });

  it("then applied, duplicates and rejections are exactly the generator's", () => {
    const rejected = Object.values(expected.rejected).reduce((sum, n) => sum + n, 0);
    expect(totals).toEqual({ applied: expected.applied, duplicates: expected.duplicates, rejected });
    expect(expected.rejected.state_conflict).toBeGreaterThan(100);
  });

  it("then every wallet's balance is the generator's", async () => {
    const client = new pg.Client({ connectionString: stack.config.TALLY_PG_VIEWS });
    await client.connect();
    try {
      const rows = await client.query<{ wallet: string; asset: string; balance: string }>(
        "SELECT wallet, asset, balance::text AS balance FROM wallet_balances WHERE balance <> 0",
      );
      const stored = new Map<string, Map<string, bigint>>();
      for (const row of rows.rows) {
        const perAsset = stored.get(row.wallet) ?? new Map<string, bigint>();
        perAsset.set(row.asset, BigInt(row.balance));
        stored.set(row.wallet, perAsset);
      }
      expect(stored).toEqual(expectedBalances);
    } finally {
      await client.end();
    }
  });

  it("then verify finds every invariant holding", async () => {
    const report = await verify(stack.config);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
