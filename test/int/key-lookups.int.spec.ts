// A chunk's key look-ups reach their table by its key however large it is (common/pg.ts,
// beginKeyLookups). PostgreSQL's plans are read as it ran them: auto_explain, loaded in the test's
// one connection, sends each statement's plan to the client as a notice.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokens, PartitionState } from "../../services/applier/partition-state.ts";
import { planChunk } from "../../services/applier/plan.ts";
import { writeChunk } from "../../services/applier/write.ts";
import { createPool, type Pool } from "../../services/common/pg.ts";
import { commitProjection, ensureCheckpoints } from "../../services/projector/views-write.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { dayOf, ensureDayPartitions } from "../../services/storage/partitions.ts";
import { fixedNowMs, moveOf } from "../support/events.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";

/** Rows already in the table: where a full scan and a hash join were PostgreSQL's choice. */
const tableRows = 250_000;
/** Keys per statement, as in one chunk of the applier's default size. */
const chunkKeys = 3_000;

let stack: TestStack;
let shard: Pool;
let views: Pool;
const plans: string[] = [];

/** A pool of one connection whose statements' plans arrive as notices. */
async function explainedPool(url: string): Promise<Pool> {
  const pool = createPool(stack.config, url, "test", 1);
  const client = await pool.connect();
  client.on("notice", (notice) => plans.push(notice.message ?? ""));
  await client.query("LOAD 'auto_explain'");
  await client.query("SET auto_explain.log_min_duration = 0");
  await client.query("SET auto_explain.log_level = 'notice'");
  client.release();
  return pool;
}

const plansOn = (table: string) => plans.filter((plan) => plan.includes(` on ${table}`));

beforeAll(async () => {
  stack = testStack("klook");
  await migrate(stack.config);
  const setup = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, "test");
  await setup.query(
    `INSERT INTO token_state (token_id, asset, amount, owner, state, retired, kafka_partition, last_offset)
     SELECT 'tk-' || n, 'USD', 1000, 'w-' || n, 's0', false, 0, 0 FROM generate_series(1, $1) AS n`,
    [tableRows],
  );
  await setup.query(
    `INSERT INTO applier_offsets ("group", topic, "partition", next_offset, first_offset) VALUES ('g', 't', 0, 0, 0)`,
  );
  await setup.query("ANALYZE token_state");
  await ensureDayPartitions(setup, [dayOf(fixedNowMs)]);
  await setup.end();
  const viewsSetup = createPool(stack.config, stack.config.TALLY_PG_VIEWS, "test");
  await viewsSetup.query(
    `INSERT INTO wallet_balances (wallet, asset, balance) SELECT 'w-' || n, 'USD', 5 FROM generate_series(1, $1) AS n`,
    [tableRows],
  );
  await viewsSetup.query("ANALYZE wallet_balances");
  await viewsSetup.end();
  shard = await explainedPool(stack.config.TALLY_PG_SHARDS[0]!);
  views = await explainedPool(stack.config.TALLY_PG_VIEWS);
}, 120_000);

afterAll(async () => {
  await shard?.end();
  await views?.end();
  if (stack) await dropTestStack(stack);
});

describe("a chunk's key look-ups on large tables", () => {
  it(`given ${tableRows} token states, when a chunk moving ${chunkKeys} of them is loaded and written, then token_state is reached by its primary key only`, async () => {
    const ids = Array.from({ length: chunkKeys }, (_, k) => `tk-${k * 80 + 1}`);
    const state = new PartitionState(tableRows);
    plans.length = 0;
    await loadTokens(shard, state, 0, ids);
    const records = ids.map((id, k) => {
      const n = id.slice(3);
      const event = moveOf({ token_id: id, from_wallet: `w-${n}`, to_wallet: "x", occurred_at: fixedNowMs });
      return {
        offset: BigInt(k),
        key: Buffer.from(id),
        value: Buffer.from("raw"),
        timestampMs: fixedNowMs,
        decoded: { ok: true as const, event, schemaId: 1 },
      };
    });
    const plan = planChunk(records, (id) => state.stateOf(id), new Set(), { pastDays: 30, futureDays: 1 });
    expect(plan.ledger.length).toBe(chunkKeys);
    await writeChunk(shard, { group: "g", topic: "t", partition: 0 }, 0n, plan);

    const onTokens = plansOn("token_state");
    expect(onTokens.length).toBe(2); // the look-up and the UPDATE of the moved states
    for (const p of onTokens) {
      expect(p).not.toContain("Seq Scan on token_state");
      expect(p).toContain("token_state_pkey");
    }
    const moved = await shard.query<{ n: string }>(
      "SELECT count(*)::text n FROM token_state WHERE state = 's1' AND owner = 'x'",
    );
    expect(moved.rows[0]!.n).toBe(String(chunkKeys));
  });

  it(`given ${tableRows} wallet balances, when a round empties ${chunkKeys} of them, then wallet_balances is reached by its key only`, async () => {
    await ensureCheckpoints(views, "t", [0]);
    const wallets = Array.from({ length: chunkKeys }, (_, k) => `w-${k * 80 + 1}`).sort();
    const balances = wallets.map((wallet) => ({ wallet, asset: "USD", delta: -5n }));
    plans.length = 0;
    const outcome = await commitProjection(views, "t", [{ partition: 0, from: -1n, to: 10n }], {
      balances,
      supply: [],
      rows: chunkKeys,
    });
    expect(outcome).toBe("committed");
    const onWallets = plansOn("wallet_balances");
    expect(onWallets.length).toBe(2); // the upsert, and the DELETE of the balances now zero
    for (const p of onWallets) expect(p).not.toContain("Seq Scan on wallet_balances");
    const left = await views.query<{ n: string }>("SELECT count(*)::text n FROM wallet_balances");
    expect(left.rows[0]!.n).toBe(String(tableRows - chunkKeys));
  });
});
