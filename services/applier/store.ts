// What the member needs from the outside world, as two narrow interfaces: the shards (load a
// partition's view, apply a chunk) and Kafka's view of the log (topic id and offsets). The real ones
// are PostgreSQL and kafkajs; the member's tests and the seeded simulation script them.
import type { Admin, Kafka } from "kafkajs";
import { freshAnswers } from "../common/fresh.ts";
import { TransientError } from "../common/retry.ts";
import { shardOf } from "../common/shards.ts";
import { TopicIdReader, TopicNotFoundError } from "../common/topic-id.ts";
import { applyChunk, type ChunkResult, type RawRecord, type ShardContext } from "./apply-chunk.ts";
import type { EventWindow } from "./decide.ts";
import type { EventDecoder } from "./decode.ts";
import { IncarnationError, incarnationProblem, type LogWindow } from "./incarnation.ts";
import { loadPartition, type PartitionState } from "./partition-state.ts";
import type { TokenBudget } from "./token-budget.ts";

export interface PartitionStore {
  /** The partition's view, loaded whole; IncarnationError when the stored offsets are not this log's. */
  load(partition: number, log: LogWindow): Promise<PartitionState>;
  /** The member now owns `count` partitions (each assignment): a store may share out its memory. */
  partitionsOwned?(count: number): void;
  /**
   * One transaction; OffsetFenceError when another writer moved the partition on. `heartbeat` is
   * called between long steps of preparation, so a long chunk keeps the member in its group.
   */
  apply(
    partition: number,
    state: PartitionState,
    chunk: readonly RawRecord[],
    heartbeat?: () => Promise<void>,
  ): Promise<ChunkResult>;
}

export interface LogInspector {
  window(partition: number): Promise<LogWindow>;
}

export type PgStoreSettings = {
  group: string;
  topic: string;
  /** the process's bound on token states in memory, shared among the partitions owned */
  tokenBudget: TokenBudget;
  window: EventWindow;
  partitionOfKey: (key: Buffer) => number;
};

export class PgPartitionStore implements PartitionStore {
  private readonly settings: PgStoreSettings;
  private readonly shards: readonly ShardContext[];
  private readonly decoder: EventDecoder;

  constructor(settings: PgStoreSettings, shards: readonly ShardContext[], decoder: EventDecoder) {
    this.settings = settings;
    this.shards = shards;
    this.decoder = decoder;
  }

  private refOf(partition: number) {
    return { group: this.settings.group, topic: this.settings.topic, partition };
  }

  private shardOf(partition: number): ShardContext {
    return this.shards[shardOf(partition, this.shards.length)]!;
  }

  load(partition: number, log: LogWindow): Promise<PartitionState> {
    const pool = this.shardOf(partition).pool;
    const budget = this.settings.tokenBudget;
    return loadPartition(pool, this.refOf(partition), log, () => budget.perPartition());
  }

  partitionsOwned(count: number): void {
    this.settings.tokenBudget.setPartitionsOwned(count);
  }

  apply(
    partition: number,
    state: PartitionState,
    chunk: readonly RawRecord[],
    heartbeat?: () => Promise<void>,
  ): Promise<ChunkResult> {
    const context = {
      heartbeat,
      shard: this.shardOf(partition),
      decoder: this.decoder,
      ref: this.refOf(partition),
      window: this.settings.window,
      partitionOfKey: this.settings.partitionOfKey,
    };
    return applyChunk(context, state, chunk);
  }
}

/**
 * Kafka's view through kafkajs: the topic id (Metadata v12 on a kept connection) and each partition's
 * offsets, through an admin client of its own. kafkajs's admin keeps its metadata up to 5 minutes
 * and fetchTopicOffsets does not refresh it on a connection error, so after a leader broker dies it
 * would keep asking the dead broker: a failed answer drops the admin, and the next one starts afresh.
 */
export class KafkaLog implements LogInspector {
  private readonly kafka: Kafka;
  private readonly topic: string;
  private readonly ids: TopicIdReader;
  private admin: Promise<Admin> | null = null;
  /** Answers asked for after their callers asked; callers meanwhile share one request. */
  private readonly fresh = freshAnswers(() => this.fetch());

  constructor(kafka: Kafka, topic: string) {
    this.kafka = kafka;
    this.topic = topic;
    this.ids = new TopicIdReader(kafka, topic);
  }

  /**
   * Always an answer asked for after this call began (an older one could miss a commit made since,
   * and read as "stored offset above the log's end"); callers meanwhile share one request.
   */
  async window(partition: number): Promise<LogWindow> {
    const window = (await this.fresh()).get(partition);
    if (window === undefined) throw new Error(`topic ${this.topic} has no partition ${partition}`);
    return window;
  }

  /** The topic's id now: IncarnationError when the topic is gone, TransientError when Kafka is away. */
  topicId(): Promise<string | null> {
    return this.kafkaAnswer(() => this.ids.read());
  }

  async close(): Promise<void> {
    await this.ids.close();
    await this.dropAdmin();
  }

  private async dropAdmin(): Promise<void> {
    const admin = this.admin;
    this.admin = null;
    if (admin) await admin.then((a) => a.disconnect()).catch(() => {});
  }

  private fetch(): Promise<Map<number, LogWindow>> {
    return this.kafkaAnswer(async () => {
      // The id first: offsets read after it cannot belong to an older incarnation than the id.
      const topicId = await this.ids.read();
      this.admin ??= (async () => {
        const admin = this.kafka.admin();
        await admin.connect();
        return admin;
      })();
      const admin = this.admin;
      try {
        const offsets = await (await admin).fetchTopicOffsets(this.topic);
        return new Map(
          offsets.map((o) => [
            o.partition,
            { topicId, lowOffset: BigInt(o.low), highOffset: BigInt(o.high) },
          ]),
        );
      } catch (error) {
        if (this.admin === admin) void this.dropAdmin();
        throw error;
      }
    });
  }

  private async kafkaAnswer<T>(ask: () => Promise<T>): Promise<T> {
    try {
      return await ask();
    } catch (error) {
      if (error instanceof TopicNotFoundError) {
        throw new IncarnationError("topic_deleted", `topic ${this.topic}: ${error.message}`);
      }
      // A leader moving, a broker restarting: Kafka's answers come back, so the caller retries.
      throw new TransientError(`kafka: ${(error as Error).message}`, "kafka", { cause: error });
    }
  }
}

/**
 * Before every chunk, the topic's id is asked again: a chunk fetched from a re-created topic is then
 * never applied onto the offsets of the old one (asked after the fetch, the answer is at least as
 * new as the records). One round trip on a kept connection per chunk.
 */
export class TopicCheckedStore implements PartitionStore {
  private readonly inner: PartitionStore;
  private readonly log: Pick<KafkaLog, "topicId">;
  private readonly topic: string;

  constructor(inner: PartitionStore, log: Pick<KafkaLog, "topicId">, topic: string) {
    this.inner = inner;
    this.log = log;
    this.topic = topic;
  }

  partitionsOwned(count: number): void {
    this.inner.partitionsOwned?.(count);
  }

  load(partition: number, log: LogWindow): Promise<PartitionState> {
    return this.inner.load(partition, log);
  }

  async apply(
    partition: number,
    state: PartitionState,
    chunk: readonly RawRecord[],
    heartbeat?: () => Promise<void>,
  ): Promise<ChunkResult> {
    const topicId = await this.log.topicId();
    if (state.topicId !== null && topicId !== null && topicId !== state.topicId) {
      const stored = { nextOffset: state.nextOffset!, topicId: state.topicId };
      const window = { topicId, lowOffset: 0n, highOffset: state.nextOffset! };
      throw incarnationProblem({ topic: this.topic, partition }, stored, window)!;
    }
    return this.inner.apply(partition, state, chunk, heartbeat);
  }
}
