// The stack is real: a real broker, a real Apicurio registry, a real PostgreSQL.
import { SchemaType } from "@kafkajs/confluent-schema-registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toPlainEvent, transferEventSchemaText } from "../../services/common/avro.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { createKafka, javaCompatiblePartitioner } from "../../services/common/kafka.ts";
import { createPool } from "../../services/common/pg.ts";
import { createRegistry, registerTransferSchema } from "../../services/common/registry.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { dayOf, ensureDayPartitions, existingDays } from "../../services/storage/partitions.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import { mintOf } from "../support/events.ts";
import { dropTestStack, stackCtl, type TestStack, tally, testStack } from "../support/stack.ts";

let stack: TestStack;
beforeAll(async () => {
  stack = testStack("stack");
  await migrate(stack.config);
  await ensureTopic(stack.config);
});
afterAll(async () => dropTestStack(stack));

async function produceAndConsume(
  events: TransferEvent[],
): Promise<{ schemaId: number; decoded: TransferEvent[] }> {
  const { config } = stack;
  const registry = createRegistry(config);
  const schemaId = await registerTransferSchema(config, registry);
  const kafka = createKafka(config, "test");
  const producer = kafka.producer({ createPartitioner: javaCompatiblePartitioner, idempotent: true });
  await producer.connect();
  const messages = await Promise.all(
    events.map(async (e) => ({ key: e.token_id, value: await registry.encode(schemaId, e) })),
  );
  await producer.send({ topic: config.TALLY_TOPIC, acks: -1, messages });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `${config.TALLY_TOPIC}-reader-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic: config.TALLY_TOPIC, fromBeginning: true });
  const decoded: TransferEvent[] = [];
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        eachMessage: async ({ message }) => {
          decoded.push(toPlainEvent(await registry.decode(message.value!)));
          if (decoded.length >= events.length) resolve();
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return { schemaId, decoded };
}

describe("the local stack", () => {
  it("given events with amounts above 2^63 and 10^38-1, when registered, produced and consumed, then they decode exactly", async () => {
    const events = [
      mintOf({ token_id: "a", amount: 2n ** 63n + 1n }),
      mintOf({ token_id: "b", amount: 10n ** 38n - 1n, to_wallet: "財布-3" }),
    ];
    const { decoded } = await produceAndConsume(events);
    const byToken = (list: TransferEvent[]) => [...list].sort((x, y) => x.token_id.localeCompare(y.token_id));
    expect(byToken(decoded)).toEqual(byToken(events));
  });

  it("given a registered schema id, when the registry restarts, then the id still resolves to the same schema", async () => {
    const registry = createRegistry(stack.config);
    const schemaId = await registerTransferSchema(stack.config, registry);
    await stackCtl("restart", "registry");
    const fresh = createRegistry(stack.config);
    const body = await fresh.encode(schemaId, mintOf({ amount: 10n ** 37n }));
    expect(toPlainEvent(await fresh.decode(body)).amount).toBe(10n ** 37n);
    const again = await fresh.register(
      { type: SchemaType.AVRO, schema: transferEventSchemaText },
      { subject: `${stack.config.TALLY_TOPIC}-value` },
    );
    expect(again.id).toBe(schemaId);
  });

  it("given a migrated database, when migrate runs again, then the catalogue is unchanged", async () => {
    const catalogue = async () => {
      const pool = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, "test", 1);
      const result = await pool.query(
        `SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) AS type
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
          WHERE n.nspname = 'public' ORDER BY 1, 3`,
      );
      await pool.end();
      return result.rows;
    };
    const before = await catalogue();
    expect(before.length).toBeGreaterThan(20);
    const report = await migrate(stack.config);
    expect(report).toEqual({ databasesCreated: [], partitionsCreated: 0 });
    expect(await catalogue()).toEqual(before);
  });

  it("given a day with no partition, when a batch needs it, then it is created once and rows route into it", async () => {
    const pool = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, "test", 2);
    const day = dayOf(Date.UTC(2031, 0, 15));
    expect((await existingDays(pool)).has(day)).toBe(false);
    const [first, second] = await Promise.all([
      ensureDayPartitions(pool, [day]),
      ensureDayPartitions(pool, [day]),
    ]);
    expect([...first!, ...second!]).toEqual([day]);
    await pool.query(
      `INSERT INTO transfers (transfer_id, token_id, asset, amount, to_wallet, next_state, occurred_at, kafka_partition, kafka_offset, schema_id)
       VALUES (gen_random_uuid(), 't', 'USD', 1, 'w', 's', '2031-01-15 23:59:59+00', 0, 0, 1)`,
    );
    const routed = await pool.query("SELECT count(*)::int AS n FROM transfers_20310115");
    expect(routed.rows[0].n).toBe(1);
    await pool.end();
  });

  it("given a bad configuration value, when tally runs, then it exits 2 naming the variable", async () => {
    const result = await tally(["migrate"], { ...stack.env, TALLY_PARTITIONS: "lots" });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('TALLY_PARTITIONS="lots" is invalid: a whole number from 1 to 1024');
  });

  it("given the stack, when tally topics runs twice, then the topic exists with its partitions and one schema id", async () => {
    const first = await tally(["topics"], stack.env);
    const second = await tally(["topics"], stack.env);
    expect(first.code).toBe(0);
    expect(second.stdout).toMatch(
      new RegExp(`${stack.config.TALLY_TOPIC} exists with 4 partitions; schema id \\d+`),
    );
    const id = (s: string) => /schema id (\d+)/.exec(s)?.[1];
    expect(id(first.stdout)).toBe(id(second.stdout));
  });
});
