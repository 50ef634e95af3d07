// The simulated topic: per partition a log of records with offsets (some offsets hold no record, as
// transaction markers and compaction leave them), a low offset that retention moves up, and the
// topic's id. Re-creating the topic starts a new incarnation with a new id and empty logs; earlier
// incarnations are kept so the model can still be folded over them. It is also the member's
// LogInspector, answering from the current incarnation, fresh at each call.
import type { LogWindow } from "../../../services/applier/incarnation.ts";
import type { LogInspector } from "../../../services/applier/store.ts";
import { assert } from "../../../services/common/assert.ts";
import { TransientError } from "../../../services/common/retry.ts";
import type { LogRecord } from "./model.ts";

export type PartitionLog = { records: LogRecord[]; lowOffset: bigint; highOffset: bigint };

export class Incarnation {
  readonly topicId: string;
  readonly partitions: PartitionLog[];

  constructor(topicId: string, partitionCount: number) {
    this.topicId = topicId;
    this.partitions = Array.from({ length: partitionCount }, () => ({
      records: [],
      lowOffset: 0n,
      highOffset: 0n,
    }));
  }

  /** Records of the partition at or above `offset`, at most `countMax`, in offset order. */
  recordsFrom(partition: number, offset: bigint, countMax: number): LogRecord[] {
    const { records } = this.partitions[partition]!;
    let lo = 0;
    let hi = records.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (records[mid]!.offset < offset) lo = mid + 1;
      else hi = mid;
    }
    return records.slice(lo, lo + countMax);
  }
}

export class SimLog implements LogInspector {
  readonly incarnations: Incarnation[] = [];
  /** While true, window() fails as kafkajs does when no broker answers. */
  unavailable = false;
  readonly partitionCount: number;
  /**
   * How long one answer serves every partition (KafkaLog reuses one for 500 ms); 0: always fresh.
   * `nowMs` is the simulation's clock.
   */
  private readonly reuse: { ms: number; nowMs: () => number };
  private latest: { atMs: number; windows: LogWindow[] } | null = null;
  /** Delivers an answer now or later (the network): the simulation's store holds it. */
  deliver: <T>(what: string, answer: () => T) => Promise<T> = (_, answer) => Promise.resolve().then(answer);

  constructor(partitionCount: number, topicId: string, reuse = { ms: 0, nowMs: () => 0 }) {
    this.partitionCount = partitionCount;
    this.incarnations.push(new Incarnation(topicId, partitionCount));
    this.reuse = reuse;
  }

  get current(): Incarnation {
    return this.incarnations[this.incarnations.length - 1]!;
  }

  incarnationOf(topicId: string | null): Incarnation | undefined {
    return this.incarnations.find((i) => i.topicId === topicId);
  }

  /** Appends a record; `skipped` offsets before it hold no record (markers, compaction). */
  append(partition: number, body: Omit<LogRecord, "offset">, skipped: number): LogRecord {
    const log = this.current.partitions[partition]!;
    const record = { ...body, offset: log.highOffset + BigInt(skipped) };
    log.records.push(record);
    log.highOffset = record.offset + 1n;
    return record;
  }

  /** Retention: records below `lowOffset` leave the log (the simulation only deletes applied ones). */
  retain(partition: number, lowOffset: bigint): void {
    const log = this.current.partitions[partition]!;
    assert(lowOffset <= log.highOffset, "retention stays within the log");
    if (lowOffset > log.lowOffset) log.lowOffset = lowOffset;
  }

  /** The topic deleted and created again: a new id, every partition empty from offset 0. */
  recreate(topicId: string): void {
    assert(this.incarnationOf(topicId) === undefined, "a topic id is never reused");
    this.incarnations.push(new Incarnation(topicId, this.partitionCount));
  }

  async window(partition: number): Promise<LogWindow> {
    const nowMs = this.reuse.nowMs();
    if (this.latest === null || this.reuse.ms === 0 || nowMs - this.latest.atMs > this.reuse.ms) {
      if (this.unavailable) throw new TransientError("no broker answered the metadata request", "kafka");
      const { topicId, partitions } = this.current;
      const windows = partitions.map((log) => ({
        topicId,
        lowOffset: log.lowOffset,
        highOffset: log.highOffset,
      }));
      this.latest = { atMs: nowMs, windows };
    }
    const window = this.latest.windows[partition];
    if (window === undefined) throw new Error(`topic has no partition ${partition}`);
    return this.deliver(`log window ${partition}`, () => window); // as it was when asked
  }
}
