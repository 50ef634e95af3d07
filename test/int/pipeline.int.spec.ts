// Given a stream mixing every outcome, the ledger, rejections and balances are exactly those
// labelled by hand in the scenario.
import { SchemaType } from "@kafkajs/confluent-schema-registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runApplier } from "../../services/applier/applier.ts";
import { createPool } from "../../services/common/pg.ts";
import { createRegistry, registerTransferSchema, subjectOf } from "../../services/common/registry.ts";
import { TransferProducer } from "../../services/producer/producer.ts";
import { readBalances, runProjector } from "../../services/projector/index.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import { verify } from "../../services/verify/index.ts";
import {
  buildScenario,
  expectedBalances,
  type ScenarioMessage,
  trickyWallets,
  v2SchemaText,
} from "../support/scenario.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";

let stack: TestStack;
let scenario: ScenarioMessage[];

beforeAll(async () => {
  stack = testStack("pipe");
  const { config } = stack;
  await migrate(config);
  await ensureTopic(config);
  const registry = createRegistry(config);
  const v1 = await registerTransferSchema(config, registry);
  const v2 = (
    await registry.register(
      { type: SchemaType.AVRO, schema: v2SchemaText },
      { subject: subjectOf(config.TALLY_TOPIC) },
    )
  ).id;
  expect(v2).not.toBe(v1);
  scenario = buildScenario({ v1, v2 }, Date.now());
  const producer = new TransferProducer(config, { schemaId: v1 });
  await producer.connect();
  await producer.sendRaw(scenario.map(({ key, value }) => ({ key, value })));
  await producer.disconnect();
  await runApplier(config, { untilCaughtUp: true });
  await runProjector(config, { untilCaughtUp: true });
});
afterAll(async () => dropTestStack(stack));

async function shardRows<T>(sql: string): Promise<T[]> {
  const rows: T[] = [];
  for (const url of stack.config.TALLY_PG_SHARDS) {
    const pool = createPool(stack.config, url, "test", 1);
    rows.push(...(await pool.query(sql)).rows);
    await pool.end();
  }
  return rows;
}

describe("a stream mixing every outcome", () => {
  it("then the ledger holds exactly the transfers labelled applied", async () => {
    const ledger = await shardRows<{ transfer_id: string; amount: string }>(
      "SELECT transfer_id::text, amount::text FROM transfers",
    );
    const expected = scenario.filter((m) => m.expected === "applied").map((m) => m.event!.transfer_id);
    expect(ledger.map((r) => r.transfer_id).sort()).toEqual(expected.sort());
    expect(ledger.map((r) => r.amount)).toContain((10n ** 38n - 1n).toString());
  });

  it("then every rejection is stored with its reason and raw bytes, none dropped", async () => {
    const rejected = await shardRows<{ reason: string; raw_value: Buffer }>(
      "SELECT reason, raw_value FROM rejected_transfers",
    );
    const expectedReasons = scenario
      .filter((m) => m.expected !== "applied" && m.expected !== "duplicate")
      .map((m) => m.expected);
    expect(rejected.map((r) => r.reason).sort()).toEqual(expectedReasons.sort());
    const raw = rejected.find(
      (r) => r.reason === "undecodable" && r.raw_value.toString() === "plain text, not Avro",
    );
    expect(raw).toBeDefined();
  });

  it("then applied + duplicates + rejected = records consumed", async () => {
    const [totals] = await shardRows<{ a: string; d: string; r: string; n: string }>(
      "SELECT sum(applied_count)::text a, sum(duplicate_count)::text d, sum(rejected_count)::text r, sum(next_offset - first_offset)::text n FROM applier_offsets",
    ).then(async (rows) => [
      rows.reduce(
        (acc, r) => ({
          a: acc.a + BigInt(r.a),
          d: acc.d + BigInt(r.d),
          r: acc.r + BigInt(r.r),
          n: acc.n + BigInt(r.n),
        }),
        { a: 0n, d: 0n, r: 0n, n: 0n },
      ),
    ]);
    expect(totals).toEqual({
      a: BigInt(scenario.filter((m) => m.expected === "applied").length),
      d: BigInt(scenario.filter((m) => m.expected === "duplicate").length),
      r: BigInt(scenario.filter((m) => m.expected !== "applied" && m.expected !== "duplicate").length),
      n: BigInt(scenario.length),
    });
  });

  it("then every wallet's balance is the one computed independently, quotes and non-Latin ids included", async () => {
    const expected = expectedBalances(scenario);
    const actual = new Map<string, bigint>();
    for (const wallet of trickyWallets) {
      for (const b of await readBalances(stack.config, wallet))
        if (b.balance !== 0n) actual.set(`${wallet}|${b.asset}`, b.balance);
    }
    expect(actual).toEqual(expected);
    expect(actual.get(`${trickyWallets[2]}|RBT`)).toBe(2n ** 64n + 7n);
  });

  it("then verify finds every invariant holding", async () => {
    const report = await verify(stack.config);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
