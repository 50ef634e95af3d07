// The dead-letter topic's producer: kafkajs, idempotent, acks from all in-sync replicas, one request
// in flight (a partition's records keep their order). Each record goes to its source partition's
// number folded into the dead-letter topic's partitions (headers.ts). The topic is created when
// missing, as Kafka Connect creates its dead-letter queue: TALLY_PARTITIONS partitions, so each
// source partition has its own.
import type { Admin, Producer } from "kafkajs";
import { assert } from "../common/assert.ts";
import type { Config } from "../common/config.ts";
import { createKafka } from "../common/kafka.ts";
import { TransientError } from "../common/retry.ts";
import { type DeadLetter, deadLetterPartitionOf } from "./headers.ts";

/** Bytes per produce call, under the broker's 1 MiB message.max.bytes; a bigger record goes alone. */
const callBytesMax = 512 * 1024;

export type Outgoing = { letter: DeadLetter; sourcePartition: number };

export class DeadLetterProducer {
  private readonly config: Config;
  private readonly topic: string;
  private readonly producer: Producer;
  private connected = false;
  private partitionCount: number | null = null;

  constructor(config: Config) {
    this.config = config;
    this.topic = config.TALLY_DLQ_TOPIC;
    this.producer = createKafka(config, "dlq-relay").producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      retry: { retries: 5, maxRetryTime: config.TALLY_RETRY_BACKOFF_MS_MAX, initialRetryTime: 100 },
    });
  }

  /** Creates the dead-letter topic if it is missing; learns its partition count. */
  async ensureTopic(): Promise<{ created: boolean; partitions: number }> {
    return kafkaCall(async () => {
      const admin = createKafka(this.config, "dlq-relay-admin").admin();
      await admin.connect();
      try {
        const created = !(await admin.listTopics()).includes(this.topic) && (await this.create(admin));
        const [topic] = (await admin.fetchTopicMetadata({ topics: [this.topic] })).topics;
        const partitions = topic?.partitions.length ?? 0;
        assert(partitions > 0, `the dead-letter topic ${this.topic} has no partitions`);
        this.partitionCount = partitions;
        return { created, partitions };
      } finally {
        await admin.disconnect();
      }
    });
  }

  private async create(admin: Admin): Promise<boolean> {
    const rf = this.config.TALLY_REPLICATION_FACTOR;
    return admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: this.topic,
          numPartitions: this.config.TALLY_PARTITIONS,
          replicationFactor: rf,
          configEntries: [{ name: "min.insync.replicas", value: String(Math.min(2, rf)) }],
        },
      ],
    });
  }

  /** Sends in the order given, call after call; resolves once Kafka acknowledged every record. */
  async send(outgoing: readonly Outgoing[]): Promise<void> {
    const partitions = this.partitionCount;
    assert(partitions !== null, "ensureTopic() before send()");
    await kafkaCall(async () => {
      if (!this.connected) {
        await this.producer.connect();
        this.connected = true;
      }
      for (const call of callsOf(outgoing)) {
        const answers = await this.producer.send({
          topic: this.topic,
          acks: -1,
          messages: call.map(({ letter, sourcePartition }) => ({
            ...letter,
            partition: deadLetterPartitionOf(sourcePartition, partitions),
          })),
        });
        for (const a of answers)
          assert(a.errorCode === 0, `dead-letter partition ${a.partition} answered ${a.errorCode}`);
      }
    });
  }

  async close(): Promise<void> {
    if (this.connected) await this.producer.disconnect();
    this.connected = false;
  }
}

/** A kafkajs failure is transient for the relay: retried with backoff, bounded by TALLY_RETRY_ATTEMPTS_MAX. */
async function kafkaCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const name = (error as Error | null)?.name ?? "";
    if (name.startsWith("KafkaJS"))
      throw new TransientError(`kafka: ${String(error)}`, "kafka", { cause: error });
    throw error;
  }
}

function callsOf(outgoing: readonly Outgoing[]): Outgoing[][] {
  const calls: Outgoing[][] = [];
  let current: Outgoing[] = [];
  let bytes = 0;
  for (const o of outgoing) {
    const headerBytes = Object.entries(o.letter.headers).reduce(
      (n, [k, v]) => n + k.length + Buffer.byteLength(v),
      0,
    );
    const size = (o.letter.key?.length ?? 0) + (o.letter.value?.length ?? 0) + headerBytes + 24;
    if (current.length > 0 && bytes + size > callBytesMax) {
      calls.push(current);
      current = [];
      bytes = 0;
    }
    current.push(o);
    bytes += size;
  }
  if (current.length > 0) calls.push(current);
  return calls;
}
