// The consumer-group member: kafkajs eachBatch feeding applyChunk, partition by partition.
// Kafka's committed offsets are only a hint: the truth is applier_offsets, checked inside every
// write, so correctness does not depend on when a seek after a rebalance lands.
import type { Consumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import type { Logger } from "../common/log.ts";
import {
  assignedPartitions,
  batchEvents,
  phaseSeconds,
  recordsTotal,
  retriesTotal,
  retryCauseOf,
} from "../common/metrics.ts";
import { RetriesExhaustedError, type RetryPolicy, withRetry } from "../common/retry.ts";
import { shardOf } from "../common/shards.ts";
import { applyChunk, type ChunkResult, type RawRecord, type ShardContext } from "./apply-chunk.ts";
import type { EventWindow } from "./decide.ts";
import type { EventDecoder } from "./decode.ts";
import { loadPartition, PartitionState } from "./partition-state.ts";
import { OffsetFenceError } from "./write.ts";

/**
 * Transient failures inside eachBatch are retried in place only briefly: kafkajs fetches per
 * broker and waits for every batch of a fetch before the next one, so a batch waiting out a shard
 * outage would stall every partition that shares its leader broker, other shards' included. Past
 * these attempts the partition is paused and resumed after a backoff instead, while the others go
 * on; the attempts of all pauses together stay within the retry policy's attemptsMax.
 */
const inlineAttemptsMax = 3;
const inlineBackoffMsMax = 500;
const resumeBackoffMsMin = 200;

class PartitionDeferred extends Error {
  override name = "PartitionDeferred";
}

export type MemberSettings = {
  group: string;
  topic: string;
  batchEventsMax: number;
  tokensPerPartitionMax: number;
  window: EventWindow;
  retry: RetryPolicy;
};

export type MemberTotals = {
  applied: number;
  duplicates: number;
  rejected: number;
  batches: number;
  phaseMs: Record<string, number>;
};

export class ApplierMember {
  readonly totals: MemberTotals = {
    applied: 0,
    duplicates: 0,
    rejected: 0,
    batches: 0,
    phaseMs: { decode: 0, validate: 0, write: 0, commit: 0 },
  };
  private readonly states = new Map<number, PartitionState>();
  /** Partitions sought back to fill a gap, and where to: a second gap at the same place is real. */
  private readonly gapSeeks = new Map<number, bigint>();
  /** Set by stop() or a fatal error: no new chunk starts; the one in flight commits or rolls back. */
  stopping = false;
  fatal: Error | null = null;
  /** Joined the group and loaded the stored offsets of the latest assignment: ready to apply. */
  assignmentLoaded = false;
  /** Aborts a retry's backoff on stop: a batch waiting for a database is abandoned whole. */
  private readonly stopController = new AbortController();
  /** Partitions paused after a transient failure: the pauses so far, and the timer resuming them. */
  private readonly deferred = new Map<number, { pauses: number; timer: NodeJS.Timeout | null }>();
  private readonly settings: MemberSettings;
  private readonly shards: ShardContext[];
  private readonly decoder: EventDecoder;
  private readonly consumer: Consumer;
  private readonly lowWatermarkOf: (partition: number) => Promise<bigint>;
  private readonly log: Logger;

  constructor(deps: {
    settings: MemberSettings;
    shards: ShardContext[];
    decoder: EventDecoder;
    consumer: Consumer;
    lowWatermarkOf: (partition: number) => Promise<bigint>;
    log: Logger;
  }) {
    this.settings = deps.settings;
    this.shards = deps.shards;
    this.decoder = deps.decoder;
    this.consumer = deps.consumer;
    this.lowWatermarkOf = deps.lowWatermarkOf;
    this.log = deps.log;
  }

  /** Drain: the chunk in flight commits (or is abandoned whole); none starts after it. */
  stop(): void {
    this.stopping = true;
    this.stopController.abort();
    for (const d of this.deferred.values()) if (d.timer) clearTimeout(d.timer);
  }

  /** An error nothing here can retry: stop without moving past the record; the supervisor restarts. */
  fail(error: Error): void {
    this.fatal ??= error;
    this.stop();
  }

  /** On a new assignment: forget partitions lost, seek the others to their stored offsets. */
  async onAssigned(partitions: readonly number[]): Promise<void> {
    this.assignmentLoaded = false;
    assignedPartitions.set(partitions.length);
    const assigned = new Set(partitions);
    for (const p of this.states.keys()) if (!assigned.has(p)) this.states.delete(p);
    for (const p of partitions) {
      // A partition kept across the rebalance keeps its view: had another member advanced it
      // meanwhile, the next write's compare-and-set fails and the view is reloaded then.
      const state = await this.stateOf(p);
      this.consumer.seek({ topic: this.settings.topic, partition: p, offset: state.nextOffset!.toString() });
    }
    this.assignmentLoaded = true;
    this.log.info({ partitions }, "partitions assigned; sought to stored offsets");
  }

  /** With the batch's heartbeat (inside eachBatch), a shard outage pauses the partition instead. */
  private async stateOf(partition: number, heartbeat?: () => Promise<void>): Promise<PartitionState> {
    let state = this.states.get(partition);
    if (state === undefined) {
      state = new PartitionState(this.settings.tokensPerPartitionMax);
      this.states.set(partition, state);
    }
    if (state.nextOffset === null) {
      const ref = this.refOf(partition);
      const shard = this.shardOf(partition);
      const low = await this.lowWatermarkOf(partition);
      const loading = state;
      const load = () => loadPartition(shard.pool, ref, low, loading, this.settings.tokensPerPartitionMax);
      if (heartbeat) await this.retryOrDefer(partition, "load the partition", load, heartbeat);
      else await this.retry("load the partition", load);
    }
    return state;
  }

  private refOf(partition: number) {
    return { group: this.settings.group, topic: this.settings.topic, partition };
  }

  private shardOf(partition: number): ShardContext {
    return this.shards[shardOf(partition, this.shards.length)]!;
  }

  /**
   * In eachBatch: a few attempts in place, then the partition is paused and resumed later
   * (PartitionDeferred ends the batch, its records come again); RetriesExhaustedError once the
   * pauses have used up the policy's attempts.
   */
  private async retryOrDefer<T>(
    partition: number,
    what: string,
    attempt: () => Promise<T>,
    heartbeat: () => Promise<void>,
  ): Promise<T> {
    const inline = {
      attemptsMax: inlineAttemptsMax,
      backoffMsMax: Math.min(inlineBackoffMsMax, this.settings.retry.backoffMsMax),
    };
    try {
      const result = await this.retry(what, attempt, heartbeat, inline);
      this.deferred.delete(partition);
      return result;
    } catch (error) {
      if (!(error instanceof RetriesExhaustedError) || this.stopController.signal.aborted) throw error;
      const pauses = (this.deferred.get(partition)?.pauses ?? 0) + 1;
      if (pauses * inlineAttemptsMax >= this.settings.retry.attemptsMax) throw error;
      const ceilingMs = Math.min(this.settings.retry.backoffMsMax, resumeBackoffMsMin * 2 ** (pauses - 1));
      const delayMs = Math.round(ceilingMs / 2 + (Math.random() * ceilingMs) / 2);
      const topicPartitions = [{ topic: this.settings.topic, partitions: [partition] }];
      this.consumer.pause(topicPartitions);
      const timer = setTimeout(() => {
        const d = this.deferred.get(partition);
        if (d) d.timer = null;
        if (!this.stopping) this.consumer.resume(topicPartitions);
      }, delayMs);
      this.deferred.set(partition, { pauses, timer });
      this.log.warn(
        { partition, pauses, resume_in_ms: delayMs, err: String((error.cause as Error)?.message) },
        "transient failure persists; partition paused, the others go on",
      );
      throw new PartitionDeferred(`partition ${partition} paused for ${delayMs} ms`);
    }
  }

  private retry<T>(
    what: string,
    attempt: () => Promise<T>,
    heartbeat?: () => Promise<void>,
    policy: RetryPolicy = this.settings.retry,
  ): Promise<T> {
    const onRetry = (error: unknown, attemptIndex: number, delayMs: number) => {
      const cause = retryCauseOf(error);
      retriesTotal.inc({ cause });
      this.log.warn(
        { what, cause, attempt: attemptIndex + 1, delay_ms: delayMs, err: String((error as Error).message) },
        "transient failure; retrying",
      );
      heartbeat?.().catch(() => {});
    };
    return withRetry(what, policy, attempt, onRetry, this.stopController.signal);
  }

  async eachBatch(payload: EachBatchPayload): Promise<void> {
    if (this.stopping) return;
    try {
      await this.applyBatch(payload);
    } catch (error) {
      if (error instanceof PartitionDeferred) return; // paused; its records come again on resume
      if (error instanceof RetriesExhaustedError && this.stopController.signal.aborted && !this.fatal) {
        // Stopped while waiting out a transient failure: nothing of this chunk committed.
        this.log.info(
          { partition: payload.batch.partition },
          "stopped while retrying; chunk abandoned whole",
        );
        return;
      }
      // Exhausted retries or a bug: stop without moving past the record; the supervisor restarts.
      this.fail(error as Error);
      this.log.error({ err: error }, "applier stopping on an error it cannot retry");
    }
  }

  private async applyBatch({
    batch,
    resolveOffset,
    heartbeat,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    const partition = batch.partition;
    let state = await this.stateOf(partition, heartbeat);
    const pending = batch.messages.filter((m) => BigInt(m.offset) >= state.nextOffset!);
    if (pending.length === 0) {
      resolveOffset(batch.lastOffset()); // all below the stored offset: applied before
      return;
    }
    const firstOffset = BigInt(pending[0]!.offset);
    if (firstOffset > state.nextOffset! && this.gapSeeks.get(partition) !== state.nextOffset) {
      this.log.warn(
        { partition, first_offset: String(firstOffset), stored: String(state.nextOffset) },
        "batch starts above the stored offset; seeking back",
      );
      this.gapSeeks.set(partition, state.nextOffset!);
      this.consumer.seek({ topic: this.settings.topic, partition, offset: state.nextOffset!.toString() });
      return;
    }
    this.gapSeeks.delete(partition);
    for (let start = 0; start < pending.length; start += this.settings.batchEventsMax) {
      if (this.stopping || !isRunning() || isStale()) return;
      const chunk = pending.slice(start, start + this.settings.batchEventsMax).map(toRawRecord);
      const result = await this.applyOne(partition, state, chunk, heartbeat);
      if (result === null) return;
      resolveOffset(chunk[chunk.length - 1]!.offset.toString());
      if (!(await this.heartbeatOrYield(heartbeat, partition))) return;
      state = await this.stateOf(partition, heartbeat);
    }
  }

  /**
   * false when the group is rebalancing: this batch ends here. What committed stays committed; the
   * rest comes again to whichever member gets the partition, and the stored offset skips the done part.
   */
  private async heartbeatOrYield(heartbeat: () => Promise<void>, partition: number): Promise<boolean> {
    try {
      await heartbeat();
      return true;
    } catch (error) {
      this.log.info(
        { partition, err: String((error as Error).message) },
        "rebalance under way; ending this batch",
      );
      return false;
    }
  }

  /** null when fenced: another member wrote this partition, so this one drops its view of it. */
  private async applyOne(
    partition: number,
    state: PartitionState,
    chunk: RawRecord[],
    heartbeat: () => Promise<void>,
  ): Promise<ChunkResult | null> {
    const shard = this.shardOf(partition);
    const ref = this.refOf(partition);
    try {
      const result = await this.retryOrDefer(
        partition,
        `apply partition ${partition}`,
        () => applyChunk(shard, this.decoder, ref, state, chunk, this.settings.window),
        heartbeat,
      );
      this.count(partition, chunk, result);
      return result;
    } catch (error) {
      if (!(error instanceof OffsetFenceError)) throw error;
      this.log.warn(
        { partition },
        "fenced: the stored offset moved; dropping this member's view of the partition",
      );
      this.states.delete(partition);
      return null;
    }
  }

  private count(partition: number, chunk: RawRecord[], { plan, phaseMs }: ChunkResult): void {
    const t = this.totals;
    t.applied += plan.ledger.length;
    t.duplicates += plan.duplicates;
    t.rejected += plan.rejections.length;
    t.batches++;
    for (const [phase, ms] of Object.entries(phaseMs)) {
      t.phaseMs[phase] = (t.phaseMs[phase] ?? 0) + ms;
      phaseSeconds.observe({ phase }, ms / 1000);
    }
    batchEvents.observe(chunk.length);
    recordsTotal.inc({ outcome: "applied", reason: "" }, plan.ledger.length);
    recordsTotal.inc({ outcome: "duplicate", reason: "" }, plan.duplicates);
    for (const r of plan.rejections) recordsTotal.inc({ outcome: "rejected", reason: r.reason });
    const rounded = Object.fromEntries(
      Object.entries(phaseMs).map(([k, v]) => [`${k}_ms`, Math.round(v * 10) / 10]),
    );
    this.log.info(
      {
        partition,
        events: chunk.length,
        applied: plan.ledger.length,
        duplicates: plan.duplicates,
        rejected: plan.rejections.length,
        next_offset: String(plan.nextOffset),
        ...rounded,
      },
      "batch committed",
    );
  }
}

function toRawRecord(message: KafkaMessage): RawRecord {
  return {
    offset: BigInt(message.offset),
    key: message.key,
    value: message.value,
    timestampMs: Number(message.timestamp),
  };
}
