// Scripted stand-ins for what ApplierMember talks to: Kafka messages and eachBatch payloads built by
// hand, promises a test holds open and releases, a silent logger, and a partition view at an offset.
// The member's unit tests, the race test against the real store and the seeded simulation share them.
import type { Batch, KafkaMessage } from "kafkajs";
import { pino } from "pino";
import { PartitionState } from "../../../services/applier/partition-state.ts";

export const silentLogger = pino({ level: "silent" });

export type Deferred<T = void> = {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
  settled: () => boolean;
};

/** A promise settled from outside: a load or a write held open until the test releases it. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  let done = false;
  const promise = new Promise<T>((ok, fail) => {
    resolve = (value) => {
      done = true;
      ok(value);
    };
    reject = (error) => {
      done = true;
      fail(error);
    };
  });
  return { promise, resolve, reject, settled: () => done };
}

/** A partition view as a load returns it: stored offset, topic id, every token known (none here). */
export function viewAt(nextOffset: bigint, topicId: string | null, tokensMax = 1_000): PartitionState {
  const state = new PartitionState(tokensMax);
  state.nextOffset = nextOffset;
  state.topicId = topicId;
  state.complete = true;
  return state;
}

export type RecordSpec = { offset: bigint; key: Buffer | null; value: Buffer | null; timestampMs: number };

export function kafkaMessage(record: RecordSpec): KafkaMessage {
  return {
    offset: record.offset.toString(),
    key: record.key,
    value: record.value,
    timestamp: String(record.timestampMs),
    attributes: 0,
    headers: {},
  } as KafkaMessage;
}

/** A record with no meaning for a store that does not decode (the member's unit tests). */
export const opaqueRecord = (offset: bigint): RecordSpec => ({
  offset,
  key: Buffer.from("k"),
  value: Buffer.from("v"),
  timestampMs: 0,
});

/** The part of kafkajs's eachBatch payload the member uses, with each callback replaceable. */
export type ScriptedPayload = {
  batch: Batch;
  resolveOffset: (offset: string) => void;
  heartbeat: () => Promise<void>;
  isRunning: () => boolean;
  isStale: () => boolean;
};

export function batchOf(topic: string, partition: number, records: readonly RecordSpec[]): Batch {
  const messages = records.map(kafkaMessage);
  const last = messages[messages.length - 1];
  return {
    topic,
    partition,
    highWatermark: last === undefined ? "0" : String(BigInt(last.offset) + 1n),
    messages,
    isEmpty: () => messages.length === 0,
    firstOffset: () => messages[0]?.offset ?? null,
    lastOffset: () => last?.offset ?? "-1",
    offsetLag: () => "0",
    offsetLagLow: () => "0",
  };
}
