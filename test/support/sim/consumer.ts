// A scripted kafkajs consumer group. The coordinator hands out partitions; a member learns its new
// assignment only when it rejoins (until then its heartbeat fails, as kafkajs's does in a
// rebalance), so a revoked member may still be mid-batch while the new owner starts. Each consumer
// fetches from its position as kafkajs does: the resolved offset, else the group's committed offset
// (a hint, which the simulation may corrupt), else the earliest; an offset out of the log's range is
// reset to the earliest; a seek lands at the partition's next fetch, and a batch fetched before it
// is still delivered, stale (isStale() true); paused partitions are not fetched.
import type { TopicPartitions } from "kafkajs";
import type { ConsumerControl } from "../../../services/applier/member.ts";
import type { SimLog } from "./log.ts";
import type { LogRecord } from "./model.ts";
import type { Prng } from "./prng.ts";
import { batchOf, type ScriptedPayload } from "./scripted.ts";

export type FetchedBatch = {
  partition: number;
  records: LogRecord[];
  fetchedOffset: bigint;
  topicId: string;
  state: "fetched" | "processing";
};

export class SimGroup {
  readonly committed = new Map<number, bigint>();
  /** What the consumers saw, for the run's summary. */
  readonly counts = { seeks: 0, pauses: 0, resets: 0, staleBatches: 0, rebalances: 0 };
  readonly members: SimConsumer[] = [];
  generation = 0;
  private readonly partitionCount: number;

  constructor(partitionCount: number) {
    this.partitionCount = partitionCount;
  }

  join(consumer: SimConsumer, prng: Prng): void {
    this.members.push(consumer);
    this.rebalance(prng);
  }

  leave(consumer: SimConsumer, prng: Prng): void {
    const index = this.members.indexOf(consumer);
    if (index < 0) return;
    this.members.splice(index, 1);
    this.rebalance(prng);
  }

  /** A new generation: the partitions dealt out again in a random order; each member must rejoin. */
  rebalance(prng: Prng): void {
    this.generation++;
    this.counts.rebalances++;
    const partitions = Array.from({ length: this.partitionCount }, (_, p) => p);
    for (let k = partitions.length - 1; k > 0; k--) {
      const j = prng.int(k + 1);
      [partitions[k], partitions[j]] = [partitions[j]!, partitions[k]!];
    }
    this.members.forEach((member, index) => {
      member.pendingAssignment = partitions.filter((_, k) => k % this.members.length === index).sort();
    });
  }
}

export class SimConsumer implements ConsumerControl {
  readonly name: string;
  assigned = new Set<number>();
  pendingAssignment: number[] | null = null;
  generation = -1;
  alive = true;
  readonly batches = new Map<number, FetchedBatch>();
  readonly paused = new Set<number>();
  private readonly positions = new Map<number, bigint>();
  private readonly seeks = new Map<number, bigint>();
  private readonly topic: string;
  private readonly group: SimGroup;

  constructor(name: string, topic: string, group: SimGroup) {
    this.name = name;
    this.topic = topic;
    this.group = group;
  }

  seek({ partition, offset }: { topic: string; partition: number; offset: string }): void {
    this.seeks.set(partition, BigInt(offset));
    this.group.counts.seeks++;
  }

  pause(topics: TopicPartitions[]): void {
    for (const t of topics) for (const p of t.partitions) this.paused.add(p);
    this.group.counts.pauses++;
  }

  resume(topics: TopicPartitions[]): void {
    for (const t of topics) for (const p of t.partitions) this.paused.delete(p);
  }

  busy(): boolean {
    return [...this.batches.values()].some((b) => b.state === "processing");
  }

  /** Rejoins with the pending assignment: kafkajs drops fetched batches and starts from committed offsets. */
  rejoin(): number[] {
    const partitions = this.pendingAssignment ?? [...this.assigned];
    this.commit();
    this.pendingAssignment = null;
    this.generation = this.group.generation;
    this.assigned = new Set(partitions);
    this.positions.clear();
    for (const [p, batch] of this.batches) if (batch.state === "fetched") this.batches.delete(p);
    return partitions;
  }

  /** Auto-commit: the resolved offsets become the group's hints (refused from an old generation). */
  commit(): void {
    if (this.generation !== this.group.generation) return;
    for (const p of this.assigned) {
      const position = this.positions.get(p);
      if (position !== undefined) this.group.committed.set(p, position);
    }
  }

  /**
   * One fetch of one partition, or null when there is nothing to fetch for it now. A member goes on
   * fetching its old assignment after a rebalance began, until a heartbeat tells it (`unaware`).
   */
  fetch(partition: number, log: SimLog, countMax: number, unaware = false): FetchedBatch | null {
    if (!this.alive || !this.assigned.has(partition)) return null;
    if (this.pendingAssignment !== null && !unaware) return null;
    if (this.paused.has(partition) || this.batches.has(partition)) return null;
    const seek = this.seeks.get(partition);
    this.seeks.delete(partition);
    if (seek !== undefined) this.positions.set(partition, seek);
    const { lowOffset, highOffset } = log.current.partitions[partition]!;
    let position = this.positions.get(partition) ?? this.group.committed.get(partition) ?? lowOffset;
    if (position < lowOffset || position > highOffset) {
      position = lowOffset; // "Offset out of range, resetting to default offset"
      this.group.counts.resets++;
    }
    this.positions.set(partition, position);
    const records = log.current.recordsFrom(partition, position, countMax);
    if (records.length === 0) return null;
    const batch: FetchedBatch = {
      partition,
      records,
      fetchedOffset: position,
      topicId: log.current.topicId,
      state: "fetched",
    };
    this.batches.set(partition, batch);
    return batch;
  }

  /** The eachBatch payload of a fetched batch, its callbacks bound to this consumer's state. */
  payloadOf(batch: FetchedBatch): ScriptedPayload {
    const p = batch.partition;
    return {
      batch: batchOf(this.topic, p, batch.records),
      resolveOffset: (offset) => {
        if (this.alive && this.assigned.has(p)) this.positions.set(p, BigInt(offset) + 1n);
      },
      heartbeat: async () => {
        if (!this.alive || this.pendingAssignment !== null)
          throw new Error("The group is rebalancing, so a rejoin is needed");
      },
      isRunning: () => this.alive,
      isStale: () => this.seeks.has(p),
    };
  }

  /** For a failure report: where the consumer stands. */
  describe(): string {
    const positions = [...this.positions].map(([p, o]) => `${p}@${o}`).join(",");
    const seeks = [...this.seeks].map(([p, o]) => `${p}->${o}`).join(",");
    return `${this.name} assigned [${[...this.assigned]}] pending ${JSON.stringify(this.pendingAssignment)} positions {${positions}} seeks {${seeks}} paused [${[...this.paused]}] batches [${[...this.batches.values()].map((b) => `${b.partition}@${b.records[0]?.offset}:${b.state}`)}]`;
  }
}
