// The producer against the test stack (the local one, or the containers' under
// TALLY_TEST_STACK=containers: test/support/stack.ts): what it sends comes back exactly, on Java's
// murmur2 partition, and nothing invalid is sent.
import { randomUUID } from "node:crypto";
import type { KafkaMessage } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  toPlainEvent,
  transferEventSchemaText,
  transferEventType,
  unframe,
} from "../../services/common/avro.ts";
import { amountMax, type TransferEvent } from "../../services/common/event.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { createRegistry, subjectOf, writerTypeOf } from "../../services/common/registry.ts";
import { withRetry } from "../../services/common/retry.ts";
import { type SendResult, TransferProducer } from "../../services/producer/producer.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import { createLoad } from "../../tools/load/load.ts";
import { mintOf, moveOf } from "../support/events.ts";
import { dropTestStack, testStack } from "../support/stack.ts";

const partitionCount = 3;
// The shared test stack: its endpoints are the provider's, never this process's own environment.
const stack = testStack("producer", { TALLY_PARTITIONS: String(partitionCount) });
const { config } = stack;
const topic = config.TALLY_TOPIC;
const registry = createRegistry(config);

// Java's Utils.murmur2, written out again here so the partitioner is checked against an
// independent implementation rather than against itself.
function murmur2(data: Buffer): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  for (let i = 0; i + 4 <= length; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  const rest = length % 4;
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) h = Math.imul(h ^ data[tail]!, m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
const toPositive = (x: number) => x & 0x7fffffff;
const javaPartitionOf = (key: string, n: number) => toPositive(murmur2(Buffer.from(key, "utf8"))) % n;

type Consumed = { partition: number; message: KafkaMessage };

/** Every record of the topic from the start, waiting until `done` holds on what has arrived. */
async function consumeUntil(
  done: (consumed: Consumed[]) => boolean,
  timeoutMs = 60_000,
): Promise<Consumed[]> {
  const consumer = createKafka(config, "test-consumer").consumer({ groupId: `${topic}-${randomUUID()}` });
  const consumed: Consumed[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let enoughNow: () => void = () => {};
    const enough = new Promise<void>((resolve) => {
      enoughNow = resolve;
    });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        consumed.push({ partition, message });
        if (done(consumed)) enoughNow();
      },
    });
    await Promise.race([enough, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
    return consumed;
  } finally {
    await consumer.disconnect();
  }
}

/**
 * The writer's schema from the registry. The registry is shared with other suites, some of which
 * restart it: a transient failure is retried, as the applier would, and is not this test's subject.
 */
const writerOf = (schemaId: number) =>
  withRetry(`schema ${schemaId}`, { attemptsMax: 60, backoffMsMax: 2_000 }, () =>
    writerTypeOf(registry, schemaId),
  );

async function decode(value: Buffer): Promise<TransferEvent> {
  const unframed = unframe(value);
  expect(unframed).not.toBeNull();
  const writer = await writerOf(unframed!.schemaId);
  const resolver = transferEventType.createResolver(writer);
  return toPlainEvent(transferEventType.fromBuffer(unframed!.body, resolver) as Record<string, unknown>);
}

describe("TransferProducer on the test stack", () => {
  const producer = new TransferProducer(config, { batchMessagesMax: 50 });
  const sentGood: { event: TransferEvent; result: SendResult }[] = [];
  const badIds: string[] = [];
  let rawPlacements: { partition: number; offset: string }[] = [];
  const raw = [
    { key: "raw-undecodable", value: Buffer.from([0xde, 0xad, 0xbe, 0xef]) },
    {
      key: "raw-unknown-id",
      value: Buffer.concat([Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0]), Buffer.from([2, 0x41])]),
    },
    { key: null, value: null },
  ];

  beforeAll(async () => {
    await ensureTopic(config);
    await producer.connect();
  });

  afterAll(async () => {
    await producer.disconnect();
    await dropTestStack(stack);
    // Leave no subject behind in the shared registry (soft delete first, as the API requires).
    const subjectUrl = `${config.TALLY_SCHEMA_REGISTRY_URL}/subjects/${encodeURIComponent(subjectOf(topic))}`;
    await fetch(subjectUrl, { method: "DELETE" }).catch(() => undefined);
    await fetch(`${subjectUrl}?permanent=true`, { method: "DELETE" }).catch(() => undefined);
  });

  it("given Kafka's own murmur2 test vectors, when hashed by the test's murmur2, then the values are Java's", () => {
    const cases: [string, number][] = [
      ["21", -973932308],
      ["foobar", -790332482],
      ["a-little-bit-long-string", -985981536],
      ["a-little-bit-longer-string", -1486304829],
      ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
      ["abc", 479470107],
    ];
    for (const [key, hash] of cases) expect(murmur2(Buffer.from(key))).toBe(hash);
  });

  it("given a load with invalid events mixed in, when sent, then the invalid ones are refused and the rest placed", async () => {
    const load = createLoad({
      events: 400,
      tokens: 60,
      wallets: 15,
      duplicateRate: 0.03,
      doubleSpendRate: 0.02,
      seed: 20_260_115,
      nowMs: Date.now(),
    });
    const events: TransferEvent[] = [...load.events()];
    events.push(mintOf({ token_id: `big-${topic}`, amount: 2n ** 63n + 1n, to_wallet: "財布-3" }));
    events.push(mintOf({ token_id: `max-${topic}`, amount: amountMax, to_wallet: 'wallet "q" \\ ,' }));
    const bad = [mintOf({ asset: "usd" }), moveOf({ prev_state: null }), mintOf({ amount: 0n })];
    badIds.push(...bad.map((e) => e.transfer_id));
    const mixed = [
      ...events.slice(0, 100),
      bad[0]!,
      ...events.slice(100, 250),
      bad[1]!,
      bad[2]!,
      ...events.slice(250),
    ];

    const results = await producer.send(mixed);

    expect(results).toHaveLength(mixed.length);
    for (const [k, event] of mixed.entries()) {
      const result = results[k]!;
      expect(result.ok).toBe(!badIds.includes(event.transfer_id));
      if (result.ok) sentGood.push({ event, result });
    }
    expect(sentGood).toHaveLength(events.length);
  });

  it("given raw bytes, when sent unchecked, then they are placed as they are", async () => {
    rawPlacements = await producer.sendRaw(raw);
    expect(rawPlacements).toHaveLength(raw.length);
  });

  it("given what was sent, when consumed back, then every event is exact, on Java's partition, at its reported offset", async () => {
    const consumed = await consumeUntil((c) => c.length >= sentGood.length + raw.length);
    expect(consumed).toHaveLength(sentGood.length + raw.length);
    const at = new Map(consumed.map((c) => [`${c.partition}/${c.message.offset}`, c.message]));

    for (const { event, result } of sentGood) {
      if (!result.ok) throw new Error("only placed events are here");
      expect(result.partition).toBe(javaPartitionOf(event.token_id, partitionCount));
      const message = at.get(`${result.partition}/${result.offset}`);
      expect(message?.key?.toString("utf8")).toBe(event.token_id);
      expect(await decode(message!.value!)).toEqual(event);
    }
    const amounts = sentGood.map((s) => s.event.amount);
    expect(amounts).toContain(amountMax);
    expect(amounts.some((a) => a > 2n ** 63n && a < amountMax)).toBe(true);

    for (const [k, placement] of rawPlacements.entries()) {
      const message = at.get(`${placement.partition}/${placement.offset}`);
      expect(message?.value ?? null).toEqual(raw[k]!.value);
      if (raw[k]!.key !== null)
        expect(placement.partition).toBe(javaPartitionOf(raw[k]!.key!, partitionCount));
    }

    // Nothing invalid reached the topic.
    const decodedIds = new Set<string>();
    for (const { message } of consumed) {
      const unframed = message.value ? unframe(message.value) : null;
      if (unframed && unframed.schemaId === producer.schemaId)
        decodedIds.add((await decode(message.value!)).transfer_id);
    }
    for (const id of badIds) expect(decodedIds.has(id)).toBe(false);
  });

  it("given a v2 writer schema with an added optional field, when events are sent with it, then a v1 reader reads them exactly", async () => {
    const v2 = JSON.parse(transferEventSchemaText);
    v2.fields.push({ name: "channel", type: ["null", "string"], default: null });
    const writer = new TransferProducer(config, {
      schemaText: JSON.stringify(v2),
      clientIdSuffix: "producer-v2",
    });
    await writer.connect();
    const event = mintOf({ token_id: `v2-${topic}`, amount: 10n ** 30n });
    let placed: SendResult | undefined;
    try {
      expect(writer.schemaId).not.toBe(producer.schemaId);
      [placed] = await writer.send([{ ...event, channel: "mobile" } as TransferEvent]);
    } finally {
      await writer.disconnect();
    }
    if (!placed?.ok) throw new Error(`the v2 event was not placed: ${JSON.stringify(placed)}`);
    expect(placed.partition).toBe(javaPartitionOf(event.token_id, partitionCount));

    // What the topic holds at the reported place, read back from Kafka.
    const at = `${placed.partition}/${placed.offset}`;
    const consumed = await consumeUntil((c) => c.some((x) => `${x.partition}/${x.message.offset}` === at));
    const message = consumed.find((x) => `${x.partition}/${x.message.offset}` === at)?.message;
    expect(message?.key?.toString("utf8")).toBe(event.token_id);
    const unframed = unframe(message!.value!)!;
    expect(unframed.schemaId).toBe(writer.schemaId);
    // Written with v2: the registry's v2 sees the added field...
    const writerType = await writerOf(writer.schemaId);
    expect((writerType.fromBuffer(unframed.body) as { channel: string }).channel).toBe("mobile");
    // ...and the pinned v1 reader, resolving v2 into itself, reads the event exactly, without it.
    const read = await decode(message!.value!);
    expect(read).toEqual(event);
    expect(Object.keys(read)).not.toContain("channel");
  });
});
