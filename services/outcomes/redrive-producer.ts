// The raw producer path of a re-drive: kafkajs, idempotent, acks from all in-sync replicas, one
// request in flight (so a partition's messages keep their order), the Java-compatible partitioner
// (a key lands where the producers put it). Bytes go out as they are; each answer says where.
import type { Producer } from "kafkajs";
import { assert } from "../common/assert.ts";
import type { Config } from "../common/config.ts";
import { createKafka, javaCompatiblePartitioner } from "../common/kafka.ts";

export type RawMessage = { key: Buffer | null; value: Buffer | null };
export type Placement = { partition: number; offset: bigint };

/** Bytes per produce call, under the broker's 1 MiB message.max.bytes; a bigger message goes alone. */
const callBytesMax = 512 * 1024;

export class RedriveProducer {
  private readonly producer: Producer;
  private connected = false;

  private readonly config: Config;
  private readonly topic: string;

  constructor(config: Config) {
    this.config = config;
    this.topic = config.TALLY_TOPIC;
    this.producer = createKafka(config, "reprocess").producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: javaCompatiblePartitioner,
      allowAutoTopicCreation: false,
      retry: {
        retries: config.TALLY_RETRY_ATTEMPTS_MAX,
        maxRetryTime: config.TALLY_RETRY_BACKOFF_MS_MAX,
        initialRetryTime: 100,
      },
    });
  }

  /** Sends in the order given, call after call; answers one placement per message, in order. */
  async send(messages: readonly RawMessage[]): Promise<Placement[]> {
    if (!this.connected) {
      await this.producer.connect();
      this.connected = true;
    }
    const placements: Placement[] = [];
    for (const call of callsOf(messages)) placements.push(...(await this.sendCall(call)));
    return placements;
  }

  async close(): Promise<void> {
    if (this.connected) await this.producer.disconnect();
    this.connected = false;
  }

  private async sendCall(call: readonly RawMessage[]): Promise<Placement[]> {
    // Each message's partition is decided here, as producers decide it, and sent explicitly.
    const partitionMetadata = await this.partitions();
    const partitionOf = javaCompatiblePartitioner();
    const placed = call.map((m) => ({
      ...m,
      partition: partitionOf({
        topic: this.topic,
        partitionMetadata,
        message: { key: m.key, value: m.value },
      }),
    }));
    const answers = await this.producer.send({ topic: this.topic, acks: -1, messages: placed });
    const bases = new Map<number, bigint>();
    for (const a of answers) {
      assert(
        a.errorCode === 0 && a.baseOffset !== undefined,
        `partition ${a.partition} answered ${a.errorCode}`,
      );
      bases.set(a.partition, BigInt(a.baseOffset));
    }
    // kafkajs sends one call's messages of a partition as one batch, in order: base offset + n.
    const seen = new Map<number, bigint>();
    return placed.map(({ partition }) => {
      const base = bases.get(partition);
      assert(base !== undefined, `no answer for partition ${partition}`);
      const n = seen.get(partition) ?? 0n;
      seen.set(partition, n + 1n);
      return { partition, offset: base + n };
    });
  }

  private metadata: { partitionId: number; leader: number }[] | null = null;

  private async partitions() {
    if (this.metadata === null) {
      const admin = createKafka(this.config, "reprocess-admin").admin();
      await admin.connect();
      try {
        const [topic] = (await admin.fetchTopicMetadata({ topics: [this.topic] })).topics;
        this.metadata = [...(topic?.partitions ?? [])].sort((a, b) => a.partitionId - b.partitionId);
      } finally {
        await admin.disconnect();
      }
    }
    return this.metadata as Parameters<ReturnType<typeof javaCompatiblePartitioner>>[0]["partitionMetadata"];
  }
}

/** Consecutive runs of messages of at most callBytesMax bytes (at least one message each). */
function callsOf(messages: readonly RawMessage[]): RawMessage[][] {
  const calls: RawMessage[][] = [];
  let current: RawMessage[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = (m.key?.length ?? 0) + (m.value?.length ?? 0) + 24;
    if (current.length > 0 && bytes + size > callBytesMax) {
      calls.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) calls.push(current);
  return calls;
}
