// The producer teams use to emit transfer events. Every event is checked before anything leaves the
// process (a bad event is reported, never sent); good ones go out as Avro with Confluent framing,
// keyed by the plain UTF-8 token_id, on the Java-compatible partition, through an idempotent producer
// with one request in flight, so a token's events land in its partition in the order given.
import type avro from "avsc";
import type { Kafka, Producer } from "kafkajs";
import { assert } from "../common/assert.ts";
import { avroTypeOf, frame, transferEventSchemaText, transferEventType } from "../common/avro.ts";
import { eventProblems, type FieldProblem, type TransferEvent } from "../common/event.ts";
import { createKafka, javaCompatiblePartitioner } from "../common/kafka.ts";
import { createRegistry, registerTransferSchema } from "../common/registry.ts";
import { isTransient, TransientError, withRetry } from "../common/retry.ts";
import { type ProducerConnection, type ProducerSettings, producerSettingsOf } from "./connection.ts";

export type SendResult =
  | { ok: true; partition: number; offset: string }
  | { ok: false; problems: FieldProblem[] };
export type RawMessage = { key: Buffer | string | null; value: Buffer | null };
export type Placement = { partition: number; offset: string };

export type TransferProducerOptions = {
  /** The writer schema (e.g. a v2 with an added optional field); the v1 schema when absent. */
  schemaText?: string;
  /** Produce with this schema id as is, without registering: evolution and unknown-id tests. */
  schemaId?: number;
  /** Messages per Kafka produce call. */
  batchMessagesMax?: number;
  /** Bytes (keys + values) per produce call; below the broker's 1 MiB message.max.bytes. */
  batchBytesMax?: number;
  clientIdSuffix?: string;
};

export const batchMessagesMaxDefault = 2000;
export const batchBytesMaxDefault = 512 * 1024;
/** One send() call: callers with more events send them in chunks (see LoadRun.chunks). */
export const sendEventsMax = 100_000;
/** Encoded messages waiting behind the one request in flight, across concurrent send() calls. */
export const queuedMessagesMax = 4 * sendEventsMax;
// Per-record overhead in a Kafka record batch (varints, attributes, headers count), for the byte bound.
const recordOverheadBytes = 24;

type Outgoing = { key: Buffer | string | null; value: Buffer | null; partition: number; bytes: number };
type PartitionInfo = { partitionId: number; leader: number };
type Partitioner = ReturnType<typeof javaCompatiblePartitioner>;

/** The problems that keep an event from being sent: its fields, then its fit to the writer schema. */
export function sendProblems(event: unknown, writerType: avro.Type = transferEventType): FieldProblem[] {
  const problems = shapeProblems(event);
  return problems.length > 0 ? problems : schemaProblems(event, writerType);
}

/** Why the writer type refuses the value, one problem per field path; empty when it fits. */
export function schemaProblems(event: unknown, writerType: avro.Type): FieldProblem[] {
  const problems: FieldProblem[] = [];
  writerType.isValid(event, {
    errorHook: (path: string[], value: unknown, type: avro.Type) => {
      const field = (path[0] ?? "event") as FieldProblem["field"];
      const shown = typeof value === "bigint" ? `${value}n` : JSON.stringify(value);
      problems.push({ field, problem: `${shown} does not fit the writer schema's ${typeName(type)}` });
    },
  });
  return problems;
}

function typeName(type: avro.Type): string {
  const schema = type.schema() as unknown;
  return typeof schema === "string" ? schema : JSON.stringify(schema);
}

/** "amount must be ...; asset must be ...": the problems as one line for a log or an error. */
export function problemsText(problems: readonly FieldProblem[]): string {
  return problems.map((p) => `${p.field} ${p.problem}`).join("; ");
}

export class TransferProducer {
  readonly topic: string;
  readonly writerType: avro.Type;
  private readonly config: ProducerSettings;
  private readonly options: TransferProducerOptions;
  private readonly batchMessagesMax: number;
  private readonly batchBytesMax: number;
  private readonly kafka: Kafka;
  private readonly producer: Producer;
  private readonly partitioner: Partitioner = javaCompatiblePartitioner();
  private partitions: PartitionInfo[] = [];
  private schemaIdValue: number | null = null;
  private phase: "new" | "connected" | "closed" = "new";
  // Sends run one after another on this chain: a later send never overtakes an earlier one.
  private tail: Promise<void> = Promise.resolve();
  private queuedMessages = 0;
  private failure: unknown = null;

  /**
   * `connection`: brokers, registry and topic (ProducerConnection, or fromEnv()); a service's whole
   * Tally configuration also fits. Nothing connects before connect().
   */
  constructor(connection: ProducerConnection | ProducerSettings, options: TransferProducerOptions = {}) {
    const config = "TALLY_KAFKA_BROKERS" in connection ? connection : producerSettingsOf(connection);
    const batchMessagesMax = options.batchMessagesMax ?? batchMessagesMaxDefault;
    const batchBytesMax = options.batchBytesMax ?? batchBytesMaxDefault;
    if (!(Number.isSafeInteger(batchMessagesMax) && batchMessagesMax >= 1 && batchMessagesMax <= 100_000))
      throw new RangeError("batchMessagesMax must be a whole number from 1 to 100000");
    if (!(Number.isSafeInteger(batchBytesMax) && batchBytesMax >= 1024 && batchBytesMax <= 1_000_000))
      throw new RangeError("batchBytesMax must be a whole number from 1024 to 1000000");
    const { schemaId } = options;
    if (schemaId !== undefined && !(Number.isSafeInteger(schemaId) && schemaId >= 0 && schemaId < 2 ** 32))
      throw new RangeError("schemaId must be a whole number from 0 to 2^32-1");
    this.config = config;
    this.options = options;
    this.topic = config.TALLY_TOPIC;
    this.batchMessagesMax = batchMessagesMax;
    this.batchBytesMax = batchBytesMax;
    this.writerType = options.schemaText ? avroTypeOf(options.schemaText) : transferEventType;
    this.schemaIdValue = schemaId ?? null;
    this.kafka = createKafka(config, options.clientIdSuffix ?? "producer");
    this.producer = this.kafka.producer({
      idempotent: true,
      // kafkajs assigns idempotent sequence numbers per request and cannot reorder them after a
      // failed request, so it needs one request in flight per broker (tulios/kafkajs#598, #980).
      maxInFlightRequests: 1,
      createPartitioner: javaCompatiblePartitioner,
      allowAutoTopicCreation: false,
      // Bounded: once exhausted the send fails and this producer refuses further sends (see send).
      retry: {
        retries: config.TALLY_RETRY_ATTEMPTS_MAX,
        maxRetryTime: config.TALLY_RETRY_BACKOFF_MS_MAX,
        initialRetryTime: 100,
      },
    });
  }

  get schemaId(): number {
    assert(this.schemaIdValue !== null, "the schema id is known after connect()");
    return this.schemaIdValue;
  }

  get partitionCount(): number {
    return this.partitions.length;
  }

  /** Reads the topic's partitions, ensures the schema id (registering the writer schema) and connects. */
  async connect(): Promise<void> {
    assert(this.phase === "new", "connect() is called once");
    this.partitions = await this.fetchPartitions();
    this.schemaIdValue = this.options.schemaId ?? (await this.registerSchema());
    await this.producer.connect();
    this.phase = "connected";
  }

  /** Waits for every queued send, then leaves; safe to call twice. */
  async disconnect(): Promise<void> {
    if (this.phase === "closed") return;
    const wasConnected = this.phase === "connected";
    this.phase = "closed";
    await this.tail;
    if (wasConnected) await this.producer.disconnect();
  }

  /** The Java-compatible partition of a key, among the topic's partitions read at connect(). */
  partitionOf(key: Buffer | string | null): number {
    assert(this.partitions.length > 0, "partitions are known after connect()");
    const partitionMetadata = this.partitions as Parameters<Partitioner>[0]["partitionMetadata"];
    return this.partitioner({ topic: this.topic, partitionMetadata, message: { key, value: null } });
  }

  /** The framed Avro bytes of an event under this producer's writer schema and id. */
  encode(event: TransferEvent): Buffer {
    return frame(this.schemaId, this.writerType.toBuffer(event));
  }

  /**
   * Checks every event, sends the good ones in order, and answers one result per event, in order.
   * Events of the writer's extra fields (a v2 schema) may carry them as extra properties.
   * Checking and encoding happen at the call, before any wait, so the caller may start the next
   * send while this one is in flight; sends complete in call order. If a send fails after its
   * retries, order can no longer be promised: this send and every later one reject.
   */
  async send(events: readonly TransferEvent[]): Promise<SendResult[]> {
    if (events.length > sendEventsMax)
      throw new RangeError(`send() takes at most ${sendEventsMax} events; send them in chunks`);
    const results: SendResult[] = new Array(events.length);
    const outgoing: Outgoing[] = [];
    const indexes: number[] = [];
    for (const [index, event] of events.entries()) {
      const encoded = this.encodeChecked(event);
      if (Array.isArray(encoded)) {
        results[index] = { ok: false, problems: encoded };
        continue;
      }
      // Kafka hashes the key's UTF-8 bytes; so does the partitioner given the string.
      const key = event.token_id;
      outgoing.push({ key, value: encoded, partition: this.partitionOf(key), bytes: size(key, encoded) });
      indexes.push(index);
    }
    if (outgoing.length === 0) return results;
    const placements = await this.enqueue(outgoing);
    assert(placements.length === indexes.length, "one placement per message sent");
    for (const [k, placement] of placements.entries()) results[indexes[k]!] = { ok: true, ...placement };
    return results;
  }

  /** Sends bytes as they are, unchecked: for tests of undecodable records and unknown schema ids. */
  async sendRaw(messages: readonly RawMessage[]): Promise<Placement[]> {
    if (messages.length > sendEventsMax)
      throw new RangeError(`sendRaw() takes at most ${sendEventsMax} messages; send them in chunks`);
    const outgoing = messages.map(({ key, value }) => ({
      key,
      value,
      partition: this.partitionOf(key),
      bytes: size(key, value),
    }));
    return outgoing.length === 0 ? [] : await this.enqueue(outgoing);
  }

  // Field checks need no connection, so bad events are reported even before connect(); a good
  // event needs the schema id, which connect() provides.
  private encodeChecked(event: TransferEvent): Buffer | FieldProblem[] {
    const problems = shapeProblems(event);
    if (problems.length > 0) return problems;
    if (this.phase !== "connected") throw new Error(`producer is ${this.phase}: connect() before sending`);
    try {
      return frame(this.schemaId, this.writerType.toBuffer(event));
    } catch {
      const found = schemaProblems(event, this.writerType);
      return found.length > 0 ? found : [{ field: "event", problem: "does not fit the writer schema" }];
    }
  }

  private enqueue(outgoing: Outgoing[]): Promise<Placement[]> {
    if (this.phase !== "connected") throw new Error(`producer is ${this.phase}: connect() before sending`);
    if (this.queuedMessages + outgoing.length > queuedMessagesMax)
      throw new RangeError(`more than ${queuedMessagesMax} messages queued: await earlier sends first`);
    this.queuedMessages += outgoing.length;
    const run = this.tail.then(() => this.transmit(outgoing));
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.tail = settled;
    return run.finally(() => {
      this.queuedMessages -= outgoing.length;
    });
  }

  private async transmit(outgoing: Outgoing[]): Promise<Placement[]> {
    const placements: Placement[] = [];
    for (const batch of batchesOf(outgoing, this.batchMessagesMax, this.batchBytesMax)) {
      if (this.failure !== null)
        throw new Error("an earlier send failed: order is no longer guaranteed", { cause: this.failure });
      try {
        placements.push(...(await this.produceBatch(batch)));
      } catch (error) {
        this.failure = error;
        throw error;
      }
    }
    return placements;
  }

  private async produceBatch(batch: Outgoing[]): Promise<Placement[]> {
    const metadata = await this.producer.send({
      topic: this.topic,
      acks: -1, // all in-sync replicas: what idempotence requires
      messages: batch.map(({ key, value, partition }) => ({ key, value, partition })),
    });
    const baseOffsets = new Map<number, bigint>();
    for (const m of metadata) {
      assert(m.errorCode === 0, `partition ${m.partition} answered error ${m.errorCode}`);
      assert(m.baseOffset !== undefined, "a produce answer with acks=-1 has a base offset");
      baseOffsets.set(m.partition, BigInt(m.baseOffset));
    }
    // kafkajs writes a call's messages for one partition as one record batch, in the order given,
    // so the n-th message of a partition in this call sits at base offset + n.
    const seen = new Map<number, bigint>();
    return batch.map(({ partition }) => {
      const base = baseOffsets.get(partition);
      assert(base !== undefined, `no answer for partition ${partition}`);
      const n = seen.get(partition) ?? 0n;
      seen.set(partition, n + 1n);
      return { partition, offset: String(base + n) };
    });
  }

  private async fetchPartitions(): Promise<PartitionInfo[]> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const existing = await admin.listTopics();
      if (!existing.includes(this.topic))
        throw new Error(`topic ${this.topic} does not exist: create it first (tally topics)`);
      const [metadata] = (await admin.fetchTopicMetadata({ topics: [this.topic] })).topics;
      const partitions = [...(metadata?.partitions ?? [])].sort((a, b) => a.partitionId - b.partitionId);
      assert(partitions.length > 0, `topic ${this.topic} has partitions`);
      for (const [k, p] of partitions.entries()) assert(p.partitionId === k, "partition ids are 0..n-1");
      return partitions;
    } finally {
      await admin.disconnect();
    }
  }

  /**
   * Registers the writer schema (or finds its id). Only that: the subject's compatibility belongs
   * to the operator and `tally topics` (docs/schema-evolution.md); a producer that set it on every
   * connect() would override the operator, and a registry refusing the schema says so here.
   */
  private async registerSchema(): Promise<number> {
    const registry = createRegistry(this.config);
    const schemaText = this.options.schemaText ?? transferEventSchemaText;
    const policy = {
      attemptsMax: this.config.TALLY_RETRY_ATTEMPTS_MAX,
      backoffMsMax: this.config.TALLY_RETRY_BACKOFF_MS_MAX,
    };
    return withRetry("register the event schema", policy, async () => {
      try {
        return await registerTransferSchema(this.config, registry, schemaText);
      } catch (error) {
        throw asRegistryError(error);
      }
    });
  }
}

/** fetch() hides the refused connection in `cause`; a 5xx is the registry's own trouble. */
function asRegistryError(error: unknown): unknown {
  const status = (error as { status?: number }).status ?? 0;
  const cause = (error as { cause?: unknown }).cause;
  if (isTransient(error)) return error;
  if (status >= 500 || (cause !== undefined && isTransient(cause)))
    return new TransientError(`registry: ${(error as Error).message}`, "registry", { cause: error });
  return error;
}

function shapeProblems(event: unknown): FieldProblem[] {
  if (typeof event !== "object" || event === null) return [{ field: "event", problem: "must be an object" }];
  return eventProblems(event as TransferEvent);
}

function size(key: Buffer | string | null, value: Buffer | null): number {
  const keyBytes = key === null ? 0 : typeof key === "string" ? Buffer.byteLength(key) : key.length;
  return keyBytes + (value?.length ?? 0) + recordOverheadBytes;
}

/** Consecutive runs of at most `messagesMax` messages and `bytesMax` bytes (a larger one goes alone). */
export function* batchesOf<T extends { bytes: number }>(
  items: readonly T[],
  messagesMax: number,
  bytesMax: number,
): Generator<T[]> {
  let batch: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (batch.length > 0 && (batch.length === messagesMax || bytes + item.bytes > bytesMax)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(item);
    bytes += item.bytes;
  }
  if (batch.length > 0) yield batch;
}
