// Kafka's topic id (KIP-516): what tells one incarnation of a topic from the next one under the same
// name. kafkajs 2.2.4 speaks Metadata only up to v6, which has no ids, so this sends one Metadata v12
// request over a kafkajs connection (its TLS and SASL included) and reads just far enough to get the id.
import type { Kafka } from "kafkajs";
import { assert } from "./assert.ts";

const metadataApiKey = 3;
/** v10 added topic ids, v12 made the name nullable; Kafka 3.1 to 4.x answer v12. */
const metadataVersion = 12;
const metadataVersionWithIdsMin = 10;
const requestTimeoutMs = 10_000;

export class TopicNotFoundError extends Error {
  override name = "TopicNotFoundError";
}

/** kafkajs keeps its cluster factory behind a symbol; the pinned version's name for it. */
const createClusterSymbolName = "private:Kafka:createCluster";

type ConnectionPool = { send(protocol: object): Promise<unknown> };
type Cluster = {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  brokerPool: {
    seedBroker: { connectionPool: ConnectionPool };
    versions: Record<number, { minVersion: number; maxVersion: number }>;
  };
};

function createCluster(kafka: Kafka): Cluster {
  const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === createClusterSymbolName);
  assert(symbol !== undefined, "kafkajs exposes its cluster factory (kafkajs is pinned to 2.2.4)");
  const factory = (kafka as unknown as Record<symbol, (o: object) => Cluster>)[symbol]!;
  return factory({ metadataMaxAge: 300_000, allowAutoTopicCreation: false });
}

async function askTopicId(cluster: Cluster, topic: string): Promise<string | null> {
  const versions = cluster.brokerPool.versions[metadataApiKey];
  if (versions === undefined || versions.maxVersion < metadataVersionWithIdsMin) return null;
  const answer = (await cluster.brokerPool.seedBroker.connectionPool.send({
    request: metadataRequest(topic),
    response: { decode: async (payload: Buffer) => payload, parse: async (payload: Buffer) => payload },
    requestTimeout: requestTimeoutMs,
  })) as Buffer;
  return topicIdOf(answer, topic);
}

/**
 * The topic's id as Kafka prints it (base64url of its 16 bytes, as in `kafka-topics --describe` and
 * partition.metadata); null when the brokers predate topic ids (Kafka < 2.8).
 * Throws TopicNotFoundError when the topic does not exist. One connection, opened and closed.
 */
export async function fetchTopicId(kafka: Kafka, topic: string): Promise<string | null> {
  const cluster = createCluster(kafka);
  await cluster.connect();
  try {
    return await askTopicId(cluster, topic);
  } finally {
    await cluster.disconnect().catch(() => {});
  }
}

/**
 * The same question over one kept connection, for asking before every chunk (a round trip on an
 * open connection, not a connect and a SASL handshake each time). A failed ask drops the
 * connection, so the next ask opens a new one.
 */
export class TopicIdReader {
  private readonly kafka: Kafka;
  private readonly topic: string;
  private cluster: Promise<Cluster> | null = null;

  constructor(kafka: Kafka, topic: string) {
    this.kafka = kafka;
    this.topic = topic;
  }

  async read(): Promise<string | null> {
    this.cluster ??= (async () => {
      const cluster = createCluster(this.kafka);
      await cluster.connect();
      return cluster;
    })();
    const connecting = this.cluster;
    try {
      return await askTopicId(await connecting, this.topic);
    } catch (error) {
      if (!(error instanceof TopicNotFoundError) && this.cluster === connecting) {
        this.cluster = null;
        connecting.then((c) => c.disconnect()).catch(() => {});
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    const connecting = this.cluster;
    this.cluster = null;
    if (connecting) await connecting.then((c) => c.disconnect()).catch(() => {});
  }
}

/** kafkajs's request writer takes any object with the encoded bytes in `buf` and `buffer`. */
function metadataRequest(topic: string) {
  const name = Buffer.from(topic, "utf8");
  const body = Buffer.concat([
    // kafkajs writes header v1; a flexible request (header v2) adds empty tagged fields after it.
    Buffer.from([0]),
    uvarint(1 + 1), // topics: a compact array of one
    Buffer.alloc(16), // topic_id: zero, so the broker looks the topic up by name
    uvarint(name.length + 1),
    name,
    Buffer.from([0]), // the topic's tagged fields
    Buffer.from([0]), // allow_auto_topic_creation: false
    Buffer.from([0]), // include_topic_authorized_operations: false
    Buffer.from([0]), // tagged fields
  ]);
  return {
    apiKey: metadataApiKey,
    apiVersion: metadataVersion,
    apiName: "Metadata",
    encode: async () => ({ buf: body, buffer: body }),
  };
}

function uvarint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** A reader over a Metadata v12 answer (response header v1 included): only what the id needs. */
class Reader {
  private offset = 0;
  private readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
  uvarint(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.bytes.readUInt8(this.offset++);
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
    }
    throw new Error("Metadata answer: a varint longer than 5 bytes");
  }
  skip(bytes: number): void {
    assert(this.offset + bytes <= this.bytes.length, "Metadata answer: shorter than its fields");
    this.offset += bytes;
  }
  int16(): number {
    const value = this.bytes.readInt16BE(this.offset);
    this.offset += 2;
    return value;
  }
  compactString(): string | null {
    const length = this.uvarint() - 1;
    if (length < 0) return null;
    const text = this.bytes.toString("utf8", this.offset, this.offset + length);
    this.skip(length);
    return text;
  }
  taggedFields(): void {
    const count = this.uvarint();
    for (let k = 0; k < count; k++) {
      this.uvarint(); // tag
      this.skip(this.uvarint());
    }
  }
  base64url(bytes: number): string {
    const text = this.bytes.subarray(this.offset, this.offset + bytes).toString("base64url");
    this.skip(bytes);
    return text;
  }
}

const unknownTopicErrorCode = 3;

/** Exported for its unit test: parses the answer up to the one topic's id. */
export function topicIdOf(answer: Buffer, topic: string): string {
  const r = new Reader(answer);
  r.taggedFields(); // response header v1
  r.skip(4); // throttle_time_ms
  const brokers = r.uvarint() - 1;
  for (let k = 0; k < brokers; k++) {
    r.skip(4); // node_id
    r.compactString(); // host
    r.skip(4); // port
    r.compactString(); // rack
    r.taggedFields();
  }
  r.compactString(); // cluster_id
  r.skip(4); // controller_id
  const topics = r.uvarint() - 1;
  assert(topics === 1, `Metadata answer: one topic asked for, ${topics} answered`);
  const errorCode = r.int16();
  const name = r.compactString();
  if (errorCode === unknownTopicErrorCode) throw new TopicNotFoundError(`topic ${topic} does not exist`);
  if (errorCode !== 0) throw new Error(`Metadata for topic ${topic}: Kafka error code ${errorCode}`);
  assert(name === topic, `Metadata answer: asked for ${topic}, answered ${name}`);
  const id = r.base64url(16);
  assert(id !== "AAAAAAAAAAAAAAAAAAAAAA", "Metadata answer: an existing topic has a zero id");
  return id;
}
