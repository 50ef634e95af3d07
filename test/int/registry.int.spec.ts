// The schema registry and hostile records through the real stack (Kafka, Apicurio, PostgreSQL):
// the subject's compatibility policy, schema evolution, poison records that must each end as a
// rejection with a valid event behind them applied, and a misconfigured registry that must stall
// the applier (transient) rather than reject anything.
import { SchemaType } from "@kafkajs/confluent-schema-registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runApplier } from "../../services/applier/applier.ts";
import { avroTypeOf, frame, transferEventSchemaText, transferEventType } from "../../services/common/avro.ts";
import { type Config, loadConfig } from "../../services/common/config.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { createPool } from "../../services/common/pg.ts";
import { createRegistry, subjectOf } from "../../services/common/registry.ts";
import { type RawMessage, TransferProducer } from "../../services/producer/producer.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { ensureTopic, topics } from "../../services/topics/topics.ts";
import { mintOf } from "../support/events.ts";
import { dropTestStack, type TestStack, tally, testStack } from "../support/stack.ts";

let stack: TestStack;
let v1 = 0;
const subjectsMade: string[] = [];

beforeAll(async () => {
  stack = testStack("schemareg");
  await migrate(stack.config);
  subjectsMade.push(subjectOf(stack.config.TALLY_TOPIC));
  v1 = (await topics(stack.config)).schemaId;
});
afterAll(async () => {
  await dropTestStack(stack);
  for (const subject of subjectsMade) await deleteSubject(stack.config, subject);
});

/** Leaves no subject behind in the shared registry (soft delete first, as the API requires). */
async function deleteSubject(config: Config, subject: string): Promise<void> {
  const url = `${config.TALLY_SCHEMA_REGISTRY_URL}/subjects/${encodeURIComponent(subject)}`;
  await fetch(url, { method: "DELETE" }).catch(() => undefined);
  await fetch(`${url}?permanent=true`, { method: "DELETE" }).catch(() => undefined);
}

async function compatibilityOf(config: Config, subject: string): Promise<unknown> {
  const url = `${config.TALLY_SCHEMA_REGISTRY_URL}/config/${encodeURIComponent(subject)}`;
  return (await fetch(url)).json();
}

async function setCompatibility(config: Config, subject: string, level: string): Promise<void> {
  const url = `${config.TALLY_SCHEMA_REGISTRY_URL}/config/${encodeURIComponent(subject)}`;
  const response = await fetch(url, {
    method: "PUT",
    headers: { "content-type": "application/vnd.schemaregistry.v1+json" },
    body: JSON.stringify({ compatibility: level }),
  });
  expect(response.status).toBe(200);
}

/** Tally's schema with fields retyped or dropped (a string written as bytes has the same wire form). */
function schemaWith(types: Record<string, unknown>, drop: string[] = []): string {
  const schema = JSON.parse(transferEventSchemaText);
  schema.fields = schema.fields
    .filter((field: { name: string }) => !drop.includes(field.name))
    .map((field: { name: string; type: unknown }) =>
      field.name in types ? { ...field, type: types[field.name] } : field,
    );
  return JSON.stringify(schema);
}

const now = () => Date.now() - 60_000;
const eventOf = (overrides: Partial<TransferEvent>) => mintOf({ occurred_at: now(), ...overrides });
const v1Message = (event: TransferEvent): RawMessage => ({
  key: event.token_id,
  value: frame(v1, transferEventType.toBuffer(event)),
});

async function sendRaw(config: Config, messages: RawMessage[]) {
  const producer = new TransferProducer(config, { schemaId: v1 });
  await producer.connect();
  try {
    return await producer.sendRaw(messages);
  } finally {
    await producer.disconnect();
  }
}

type Row = Record<string, unknown>;
async function shardRows(config: Config, sql: string): Promise<Row[]> {
  const rows: Row[] = [];
  for (const url of config.TALLY_PG_SHARDS) {
    const pool = createPool(config, url, "test", 1);
    try {
      rows.push(...(await pool.query(sql)).rows);
    } finally {
      await pool.end();
    }
  }
  return rows;
}

const rejectionsOf = (config: Config, tokenId: string) =>
  shardRows(
    config,
    `SELECT reason, detail, kafka_partition, kafka_offset::int AS kafka_offset, length(raw_value) AS bytes
       FROM rejected_transfers WHERE token_id = '${tokenId}' OR (token_id IS NULL AND raw_key = convert_to('${tokenId}', 'UTF8'))
      ORDER BY kafka_offset`,
  );
const ledgerOf = (config: Config, tokenId: string) =>
  shardRows(
    config,
    `SELECT transfer_id::text, to_wallet, kafka_partition, kafka_offset::int AS kafka_offset
       FROM transfers WHERE token_id = '${tokenId}' ORDER BY kafka_offset`,
  );
const storedOffsets = async (config: Config) =>
  (
    await shardRows(config, `SELECT "partition", next_offset::int AS next FROM applier_offsets ORDER BY 1`)
  ).map((row) => `${row.partition}:${row.next}`);

describe("the subject's compatibility", () => {
  it("given a fresh subject, when tally topics runs twice, then FULL_TRANSITIVE is set once and then kept", async () => {
    expect(await compatibilityOf(stack.config, subjectOf(stack.config.TALLY_TOPIC))).toEqual({
      compatibilityLevel: "FULL_TRANSITIVE",
    });
    const again = await topics(stack.config);
    expect(again).toMatchObject({
      schemaId: v1,
      compatibility: "FULL_TRANSITIVE",
      compatibilitySetByTally: false,
    });
  });

  it("given FULL_TRANSITIVE, when a v2 dropping the required next_state is registered, then the registry refuses it (409)", async () => {
    const registry = createRegistry(stack.config);
    const dropped = schemaWith({}, ["next_state"]);
    const error = await registry
      .register({ type: SchemaType.AVRO, schema: dropped }, { subject: subjectOf(stack.config.TALLY_TOPIC) })
      .catch((e: unknown) => e);
    expect((error as { status?: number }).status).toBe(409);
  });

  it("given an operator's NONE set beforehand, when tally topics and a producer run, then NONE stays", async () => {
    const operator = testStack("schemaregop");
    const subject = subjectOf(operator.config.TALLY_TOPIC);
    subjectsMade.push(subject);
    try {
      await setCompatibility(operator.config, subject, "NONE");

      const run = await tally(["topics"], operator.env);
      const producer = new TransferProducer(operator.config, { schemaText: schemaWith({}, ["batch_id"]) });
      await producer.connect(); // registers a version NONE allows; sets nothing
      await producer.disconnect();

      expect(run.code).toBe(0);
      expect(await compatibilityOf(operator.config, subject)).toEqual({ compatibilityLevel: "NONE" });
    } finally {
      await dropTestStack(operator);
    }
  });

  it("given a subject a producer created before tally topics (no level of its own), when tally topics runs, then FULL_TRANSITIVE", async () => {
    const late = testStack("schemareglate");
    const subject = subjectOf(late.config.TALLY_TOPIC);
    subjectsMade.push(subject);
    try {
      await ensureTopic(late.config);
      const producer = new TransferProducer(late.config);
      await producer.connect();
      await producer.disconnect();
      expect(await compatibilityOf(late.config, subject)).toEqual({ compatibilityLevel: "NONE" });

      const report = await topics(late.config);

      expect(report).toMatchObject({ compatibility: "FULL_TRANSITIVE", compatibilitySetByTally: true });
      expect(await compatibilityOf(late.config, subject)).toEqual({ compatibilityLevel: "FULL_TRANSITIVE" });
    } finally {
      await dropTestStack(late);
    }
  });
});

describe("records of every kind, each poison one followed by a valid event on its partition", () => {
  const v2SchemaText = (() => {
    const v2 = JSON.parse(transferEventSchemaText);
    v2.fields.push({ name: "memo", type: ["null", "string"], default: null });
    return JSON.stringify(v2);
  })();
  const valid = {
    b: eventOf({ token_id: "tok-b", to_wallet: "w-b" }),
    d: eventOf({ token_id: "tok-d", to_wallet: "w-d" }),
    f: eventOf({ token_id: "tok-f", to_wallet: "w-f" }),
    g: eventOf({ token_id: "tok-g", to_wallet: "w-g" }),
  };
  let v2 = 0;

  beforeAll(async () => {
    const { config } = stack;
    // (b) a writer whose decimal has scale 2, registered under a side subject: ids are global.
    const scaledSubject = `${config.TALLY_TOPIC}-scaled-value`;
    subjectsMade.push(scaledSubject);
    const scaled = schemaWith({ amount: { type: "bytes", logicalType: "decimal", precision: 38, scale: 2 } });
    const scaledId = (
      await createRegistry(config).register(
        { type: SchemaType.AVRO, schema: scaled },
        { subject: scaledSubject },
      )
    ).id;
    // (f) an amount of 900 KiB, written as plain bytes (the decimal's wire form).
    const bytesAmount = avroTypeOf(schemaWith({ amount: "bytes" }));
    const hugeAmount = bytesAmount.toBuffer({
      ...eventOf({ token_id: "tok-f" }),
      amount: Buffer.alloc(921_600, 7),
    });
    // (g) two wallets that differ only in an invalid UTF-8 byte.
    const rawWallet = avroTypeOf(schemaWith({ to_wallet: ["null", "bytes"] }));
    const walletWith = (byte: number) =>
      rawWallet.toBuffer({
        ...eventOf({ token_id: "tok-g" }),
        to_wallet: Buffer.concat([Buffer.from("w-"), Buffer.from([byte]), Buffer.from("AAAAAAAAAA")]),
      });
    await sendRaw(config, [
      { key: "tok-b", value: frame(scaledId, transferEventType.toBuffer(eventOf({ token_id: "tok-b" }))) },
      v1Message(valid.b),
      { key: "tok-f", value: frame(v1, hugeAmount) },
      v1Message(valid.f),
      { key: "tok-g", value: frame(v1, walletWith(0xff)) },
      { key: "tok-g", value: frame(v1, walletWith(0xfe)) },
      v1Message(valid.g),
    ]);
    // (d) a producer upgraded to a v2 with an added optional field: registered, then sent.
    const producer = new TransferProducer(config, { schemaText: v2SchemaText });
    await producer.connect();
    v2 = producer.schemaId;
    expect((await producer.send([valid.d]))[0]?.ok).toBe(true);
    await producer.disconnect();
    await runApplier(config, { untilCaughtUp: true });
  });

  it("given a writer decimal of scale 2, then incompatible_schema, and the mint behind it applied", async () => {
    const [rejected] = await rejectionsOf(stack.config, "tok-b");
    const ledger = await ledgerOf(stack.config, "tok-b");
    expect(rejected).toMatchObject({ reason: "incompatible_schema" });
    expect(String(rejected?.detail)).toMatch(/scale/);
    expect(ledger.map((row) => row.transfer_id)).toEqual([valid.b.transfer_id]);
    expect(ledger[0]?.kafka_partition).toBe(rejected?.kafka_partition);
    expect(ledger[0]?.kafka_offset).toBe(Number(rejected?.kafka_offset) + 1);
  });

  it("given an amount of 900 KiB, then invalid_field for amount with its raw bytes, and the mint behind it applied", async () => {
    const [rejected] = await rejectionsOf(stack.config, "tok-f");
    const ledger = await ledgerOf(stack.config, "tok-f");
    expect(rejected).toMatchObject({ reason: "invalid_field" });
    expect(String(rejected?.detail)).toMatch(/^amount: a decimal of 921600 significant bytes/);
    expect(Number(rejected?.bytes)).toBeGreaterThan(921_600);
    expect(ledger.map((row) => row.transfer_id)).toEqual([valid.f.transfer_id]);
    expect(ledger[0]?.kafka_partition).toBe(rejected?.kafka_partition);
  });

  it("given two wallets differing in an invalid UTF-8 byte, then both invalid_field, and the mint behind them applied", async () => {
    const rejected = await rejectionsOf(stack.config, "tok-g");
    const ledger = await ledgerOf(stack.config, "tok-g");
    expect(rejected.map((row) => [row.reason, String(row.detail).split(" (")[0]])).toEqual([
      ["invalid_field", "to_wallet is not valid UTF-8"],
      ["invalid_field", "to_wallet is not valid UTF-8"],
    ]);
    expect(ledger.map((row) => [row.transfer_id, row.to_wallet])).toEqual([[valid.g.transfer_id, "w-g"]]);
    expect(ledger[0]?.kafka_partition).toBe(rejected[0]?.kafka_partition);
  });

  it("given a v2 adding an optional field with a default, then it registered under FULL_TRANSITIVE and its event applied", async () => {
    expect(v2).not.toBe(v1);
    const ledger = await ledgerOf(stack.config, "tok-d");
    expect(ledger.map((row) => [row.transfer_id, row.to_wallet])).toEqual([[valid.d.transfer_id, "w-d"]]);
    expect(await rejectionsOf(stack.config, "tok-d")).toEqual([]);
  });

  it("given a registry base URL without /apis/ccompat/v7, then the applier retries and gives up, nothing rejected, no offset moved", async () => {
    const event = eventOf({ token_id: "tok-a", to_wallet: "w-a" });
    await sendRaw(stack.config, [v1Message(event)]);
    const offsetsBefore = await storedOffsets(stack.config);
    const wrongBase = loadConfig({
      ...stack.env,
      TALLY_SCHEMA_REGISTRY_URL: new URL(stack.config.TALLY_SCHEMA_REGISTRY_URL).origin,
      TALLY_RETRY_ATTEMPTS_MAX: "3",
      TALLY_RETRY_BACKOFF_MS_MAX: "200",
    });

    const failure = await runApplier(wrongBase, { untilCaughtUp: true }).then(
      () => null,
      (error: unknown) => error as Error,
    );

    expect(failure?.name).toBe("RetriesExhaustedError");
    expect(String((failure?.cause as Error)?.message)).toMatch(
      /answered 404 \(a 404 without error_code 40403/,
    );
    expect(await rejectionsOf(stack.config, "tok-a")).toEqual([]);
    expect(await storedOffsets(stack.config)).toEqual(offsetsBefore);

    await runApplier(stack.config, { untilCaughtUp: true }); // the right base: the record was not skipped
    expect((await ledgerOf(stack.config, "tok-a")).map((row) => row.transfer_id)).toEqual([
      event.transfer_id,
    ]);
  });
});
