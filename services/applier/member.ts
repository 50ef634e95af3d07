// The consumer-group member: kafkajs eachBatch feeding one chunk at a time to the store, partition by
// partition. Kafka's committed offsets are only a hint: the truth is applier_offsets, checked inside
// every write, so correctness does not depend on when a seek after a rebalance lands.
//
// This class composes the parts, one job each, and runs eachBatch: a fetched batch is checked against
// the partition's view, cut into chunks of at most chunkEventsMax records, and each chunk applied in
// one transaction. The parts: assignment.ts (membership, stop), partition-views.ts (each partition's
// view, loaded single-flight and published whole), batch-checks.ts (a batch against the view and the
// log), deferrals.ts (retry-or-pause) and member-totals.ts (a committed chunk counted).
import type { Consumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import type { Logger } from "../common/log.ts";
import { RetriesExhaustedError, type RetryPolicy } from "../common/retry.ts";
import type { ChunkResult, RawRecord } from "./apply-chunk.ts";
import { Membership } from "./assignment.ts";
import { BatchChecks, topicIdProblem } from "./batch-checks.ts";
import {
  Deferrals,
  PartitionDeferred,
  type PauseControl,
  type RetryReporter,
  retryReporter,
} from "./deferrals.ts";
import { countChunk, emptyTotals, type MemberTotals } from "./member-totals.ts";
import type { PartitionState } from "./partition-state.ts";
import { PartitionViews } from "./partition-views.ts";
import type { LogInspector, PartitionStore } from "./store.ts";
import { tokenCacheTokens } from "./token-budget.ts";
import { OffsetFenceError } from "./write.ts";

export type { MemberTotals } from "./member-totals.ts";

export type MemberSettings = {
  group: string;
  topic: string;
  /** Records per chunk at most (TALLY_BATCH_EVENTS_MAX): one chunk is one transaction. */
  chunkEventsMax: number;
  retry: RetryPolicy;
};

/** What the member asks of the consumer: the scripted consumer of the tests implements the same. */
export type ConsumerControl = Pick<Consumer, "seek" | "pause" | "resume">;

type Payload = Pick<EachBatchPayload, "batch" | "resolveOffset" | "heartbeat" | "isRunning" | "isStale">;

export class ApplierMember {
  readonly totals: MemberTotals = emptyTotals();
  private readonly membership: Membership;
  private readonly views: PartitionViews;
  private readonly checks: BatchChecks;
  private readonly deferrals: Deferrals;
  private readonly reportRetry: RetryReporter;
  private readonly settings: MemberSettings;
  private readonly store: PartitionStore;
  private readonly logger: Logger;
  private inFlight = 0;

  constructor(deps: {
    settings: MemberSettings;
    store: PartitionStore;
    log: LogInspector;
    consumer: ConsumerControl;
    logger: Logger;
  }) {
    const { settings, store, log, consumer, logger } = deps;
    this.settings = settings;
    this.store = store;
    this.logger = logger;
    const topic = settings.topic;
    const stopController = new AbortController();
    this.deferrals = new Deferrals(settings.retry, pauseControlOf(consumer, topic), stopController.signal);
    const seek = (partition: number, offset: bigint) =>
      consumer.seek({ topic, partition, offset: offset.toString() });
    const deferrals = this.deferrals;
    const reportRetry = retryReporter(logger);
    this.reportRetry = reportRetry;
    this.views = new PartitionViews({ store, log, deferrals });
    const views = this.views;
    this.membership = new Membership({ stopController, views, deferrals, seek, reportRetry, logger });
    this.checks = new BatchChecks({ topic, log, views, deferrals, seek, reportRetry, logger });
  }

  /** Set by stop() or a fatal error: no new chunk starts; the one in flight commits or rolls back. */
  get stopping(): boolean {
    return this.membership.stopping;
  }

  get fatal(): Error | null {
    return this.membership.fatal;
  }

  /** Joined the group and loaded the views of the latest assignment: ready to apply. */
  get assignmentLoaded(): boolean {
    return this.membership.assignmentLoaded;
  }

  /** Aborted once the member stops, for whatever reason. */
  get stopped(): AbortSignal {
    return this.membership.stopped;
  }

  stop(): void {
    this.membership.stop();
  }

  fail(error: Error): void {
    this.membership.fail(error);
  }

  onAssigned(partitions: readonly number[]): Promise<void> {
    return this.membership.onAssigned(partitions);
  }

  /** Chunks between their first statement and their commit or rollback. */
  chunksInFlight(): number {
    return this.inFlight;
  }

  /** The partitions whose view is loaded (for tests and the periodic incarnation check). */
  loadedPartitions(): number[] {
    return [...this.views.entries()].map(([partition]) => partition);
  }

  /** The periodic check: a topic re-created under the member stops it before long. */
  checkTopicId(topicId: string | null): void {
    for (const [partition, state] of this.views.entries()) {
      const problem = topicIdProblem(this.settings.topic, partition, state, topicId);
      if (problem === null) continue;
      this.membership.onFailure(problem, "the periodic topic id check");
      return;
    }
  }

  async eachBatch(payload: Payload): Promise<void> {
    if (this.stopping) return;
    try {
      await this.consumeBatch(payload);
    } catch (error) {
      if (error instanceof PartitionDeferred) {
        const partition = payload.batch.partition;
        this.logger.warn(
          { partition, attempts: this.deferrals.attemptsUsed(partition), err: String(error.cause) },
          "transient failure persists; partition paused, the others go on",
        );
        return;
      }
      const aborted = error instanceof RetriesExhaustedError && this.stopped.aborted;
      this.membership.onFailure(
        error as Error,
        aborted ? "retrying a chunk" : `partition ${payload.batch.partition}`,
      );
    }
  }

  /** One fetched batch: checked against the partition's view, then applied chunk by chunk. */
  private async consumeBatch({
    batch,
    resolveOffset,
    heartbeat,
    isRunning,
    isStale,
  }: Payload): Promise<void> {
    const partition = batch.partition;
    const state = await this.views.viewInBatch(partition, this.reportRetry("load the partition", heartbeat));
    const pending = await this.checks.pendingOf(partition, state, batch.messages, heartbeat);
    const chunkEventsMax = this.settings.chunkEventsMax;
    for (let start = 0; start < pending.length; start += chunkEventsMax) {
      if (this.stopping || !isRunning() || isStale()) return;
      const chunk = pending.slice(start, start + chunkEventsMax).map(toRawRecord);
      const result = await this.runChunk(partition, state, chunk, heartbeat);
      if (result === null) return;
      resolveOffset(chunk[chunk.length - 1]!.offset.toString());
      if (!(await this.heartbeatOrYield(heartbeat, partition))) return;
      // The view this batch was checked against, or the batch ends: dropped (revoked, fenced) or
      // replaced, the rest of the batch would be written on a view it was never compared with,
      // perhaps one another member moved past it (and the stored offset would go back).
      if (!this.views.isCurrent(partition, state)) return;
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
      this.logger.info(
        { partition, err: String((error as Error).message) },
        "rebalance under way; ending this batch",
      );
      return false;
    }
  }

  /** One chunk through retry-or-pause; null when fenced: another member wrote this partition, so this one drops its view of it. */
  private async runChunk(
    partition: number,
    state: PartitionState,
    chunk: RawRecord[],
    heartbeat: () => Promise<void>,
  ): Promise<ChunkResult | null> {
    try {
      const apply = async () => {
        this.inFlight++;
        try {
          // Heartbeats during a long chunk keep the member in its group; a rebalance it reports is
          // seen after the commit (heartbeatOrYield), so its failure here changes nothing.
          const keepAlive = () => heartbeat().catch(() => {});
          return await this.store.apply(partition, state, chunk, keepAlive);
        } finally {
          this.inFlight--;
        }
      };
      const what = `apply partition ${partition}`;
      const result = await this.deferrals.run(partition, what, apply, this.reportRetry(what, heartbeat));
      countChunk(this.totals, this.logger, partition, chunk.length, result);
      tokenCacheTokens.set(this.views.tokensHeld());
      return result;
    } catch (error) {
      if (!(error instanceof OffsetFenceError)) throw error;
      this.logger.warn(
        { partition },
        "fenced: the stored offset moved; dropping this member's view of the partition",
      );
      this.views.dropIfCurrent(partition, state);
      return null;
    }
  }
}

/** kafkajs' message (offset and timestamp as decimal strings) as the applier's record. */
export function toRawRecord(
  message: Pick<KafkaMessage, "offset" | "timestamp" | "key" | "value">,
): RawRecord {
  return {
    offset: BigInt(message.offset),
    key: message.key,
    value: message.value,
    timestampMs: Number(message.timestamp),
  };
}

/**
 * Pause and resume of one partition, from the deferrals' timers and handlers. While kafkajs
 * restarts a crashed consumer (a broker gone for longer than its retries: it disconnects, then
 * starts again after a delay) the consumer has no group, and pause and resume throw "Consumer group
 * was not initialized". Nothing is left to pause or resume then: the restarted consumer's new
 * group starts with every partition unpaused, and its assignment starts the member's views and
 * counts again. Thrown from a resume timer, that error ended the process (found by the cluster's
 * leader-broker fault test).
 */
export function pauseControlOf(consumer: Pick<Consumer, "pause" | "resume">, topic: string): PauseControl {
  const unlessRestarting = (act: () => void) => {
    try {
      act();
    } catch (error) {
      if (!/^Consumer group was not initialized/.test((error as Error).message ?? "")) throw error;
    }
  };
  return {
    pause: (partition) => unlessRestarting(() => consumer.pause([{ topic, partitions: [partition] }])),
    resume: (partition) => unlessRestarting(() => consumer.resume([{ topic, partitions: [partition] }])),
  };
}
