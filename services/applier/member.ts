// The consumer-group member: kafkajs eachBatch feeding one chunk at a time to the store, partition by
// partition. Kafka's committed offsets are only a hint: the truth is applier_offsets, checked inside
// every write, so correctness does not depend on when a seek after a rebalance lands. A partition's
// view (stored offset + token states) is loaded once, by whoever asks first, and published whole.
import type { Consumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import type { Logger } from "../common/log.ts";
import { assignedPartitions, retriesTotal, retryCauseOf } from "../common/metrics.ts";
import { RetriesExhaustedError, type RetryPolicy, withRetry } from "../common/retry.ts";
import type { ChunkResult, RawRecord } from "./apply-chunk.ts";
import { Deferrals, PartitionDeferred, unlessStopped } from "./deferrals.ts";
import { IncarnationError, incarnationProblem, type LogWindow } from "./incarnation.ts";
import { countChunk, emptyTotals, type MemberTotals } from "./member-totals.ts";
import type { PartitionState } from "./partition-state.ts";
import type { LogInspector, PartitionStore } from "./store.ts";
import { OffsetFenceError } from "./write.ts";

export type { MemberTotals } from "./member-totals.ts";

export type MemberSettings = {
  group: string;
  topic: string;
  batchEventsMax: number;
  retry: RetryPolicy;
};

/** What the member asks of the consumer: the scripted consumer of the tests implements the same. */
export type ConsumerControl = Pick<Consumer, "seek" | "pause" | "resume">;

type Payload = Pick<EachBatchPayload, "batch" | "resolveOffset" | "heartbeat" | "isRunning" | "isStale">;

export class ApplierMember {
  readonly totals: MemberTotals = emptyTotals();
  /** Views loaded whole; a view is never here half-made. */
  private readonly states = new Map<number, PartitionState>();
  /** Loads under way: every caller for the partition awaits the same one (single flight). */
  private readonly loading = new Map<number, Promise<PartitionState>>();
  /** Partitions sought back to fill a gap, and where to: a second gap at the same place is checked. */
  private readonly gapSeeks = new Map<number, bigint>();
  /** Set by stop() or a fatal error: no new chunk starts; the one in flight commits or rolls back. */
  stopping = false;
  fatal: Error | null = null;
  /** Joined the group and loaded the views of the latest assignment: ready to apply. */
  assignmentLoaded = false;
  /** Aborts a retry's backoff on stop: a batch waiting for a database is abandoned whole. */
  private readonly stopController = new AbortController();
  private readonly deferrals: Deferrals;
  private readonly settings: MemberSettings;
  private readonly store: PartitionStore;
  private readonly log: LogInspector;
  private readonly consumer: ConsumerControl;
  private readonly logger: Logger;
  private assignment = 0;
  private inFlight = 0;

  constructor(deps: {
    settings: MemberSettings;
    store: PartitionStore;
    log: LogInspector;
    consumer: ConsumerControl;
    logger: Logger;
  }) {
    this.settings = deps.settings;
    this.store = deps.store;
    this.log = deps.log;
    this.consumer = deps.consumer;
    this.logger = deps.logger;
    const topic = this.settings.topic;
    this.deferrals = new Deferrals(
      this.settings.retry,
      {
        pause: (partition) => this.consumer.pause([{ topic, partitions: [partition] }]),
        resume: (partition) => this.consumer.resume([{ topic, partitions: [partition] }]),
      },
      this.stopController.signal,
    );
  }

  /** Drain: the chunk in flight commits (or is abandoned whole); none starts after it. */
  stop(): void {
    this.stopping = true;
    this.stopController.abort();
    this.deferrals.clear();
  }

  /** An error nothing here can retry: stop without moving past the record; the supervisor restarts. */
  fail(error: Error): void {
    this.fatal ??= error;
    this.stop();
  }

  /** Aborted once the member stops, for whatever reason. */
  get stopped(): AbortSignal {
    return this.stopController.signal;
  }

  /** Chunks between their first statement and their commit or rollback. */
  chunksInFlight(): number {
    return this.inFlight;
  }

  /** The partitions whose view is loaded (for tests and the periodic incarnation check). */
  loadedPartitions(): number[] {
    return [...this.states.keys()];
  }

  /** On a new assignment: forget partitions lost, load the others and seek them to their stored offsets. */
  async onAssigned(partitions: readonly number[]): Promise<void> {
    const assignment = ++this.assignment;
    this.assignmentLoaded = false;
    assignedPartitions.set(partitions.length);
    const assigned = new Set(partitions);
    for (const p of [...this.states.keys(), ...this.loading.keys()]) {
      if (!assigned.has(p)) this.drop(p);
    }
    this.gapSeeks.clear(); // seeks before this assignment say nothing about the offsets to come
    for (const p of partitions) this.deferrals.forget(p);
    try {
      await Promise.all(
        partitions.map(async (p) => {
          // A partition kept across the rebalance keeps its view: had another member advanced it
          // meanwhile, the next write's compare-and-set fails and the view is reloaded then.
          const state = await this.retry("load the partition", () => this.viewOf(p));
          if (assignment === this.assignment && !this.stopping) this.seek(p, state.nextOffset!);
        }),
      );
    } catch (error) {
      this.onFailure(error as Error, "loading the assigned partitions");
      return;
    }
    if (assignment !== this.assignment) return; // a newer assignment took over
    this.assignmentLoaded = true;
    this.logger.info({ partitions }, "partitions assigned; sought to stored offsets");
  }

  /** The partition's view: loaded already, being loaded (await that load), or loaded now. */
  private viewOf(partition: number): Promise<PartitionState> {
    const loaded = this.states.get(partition);
    if (loaded !== undefined) return Promise.resolve(loaded);
    const pending = this.loading.get(partition);
    if (pending !== undefined) return pending;
    const load = (async () => {
      try {
        return await this.store.load(partition, await this.log.window(partition));
      } catch (error) {
        // The log's end was read before the stored offset: records written and applied by another
        // member in between put the stored offset "above the end". A window read after it decides.
        if (!(error instanceof IncarnationError) || error.problem !== "above_log_end") throw error;
        return this.store.load(partition, await this.log.window(partition));
      }
    })();
    this.loading.set(partition, load);
    const settle = () => {
      if (this.loading.get(partition) === load) this.loading.delete(partition);
    };
    load.then((state) => {
      // Published only if nothing dropped the partition while it loaded.
      if (this.loading.get(partition) === load) this.states.set(partition, state);
      settle();
    }, settle);
    return load;
  }

  /** Forgets the partition's view and any load under way: the next caller loads it afresh. */
  private drop(partition: number): void {
    this.states.delete(partition);
    this.loading.delete(partition);
    this.gapSeeks.delete(partition);
    this.deferrals.forget(partition);
  }

  private seek(partition: number, offset: bigint): void {
    this.consumer.seek({ topic: this.settings.topic, partition, offset: offset.toString() });
  }

  private onRetry = (what: string, heartbeat?: () => Promise<void>) => {
    return (error: unknown, attemptIndex: number, delayMs: number) => {
      const cause = retryCauseOf(error);
      retriesTotal.inc({ cause });
      this.logger.warn(
        { what, cause, attempt: attemptIndex + 1, delay_ms: delayMs, err: String((error as Error).message) },
        "transient failure; retrying",
      );
      heartbeat?.().catch(() => {});
    };
  };

  private retry<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    const signal = this.stopController.signal;
    return withRetry(
      what,
      this.settings.retry,
      unlessStopped(what, signal, attempt),
      this.onRetry(what),
      signal,
    );
  }

  /** Incarnation errors, exhausted retries and bugs stop the member; a stop while waiting does not. */
  private onFailure(error: Error, during: string): void {
    if (this.stopping && !this.fatal && !(error instanceof IncarnationError)) {
      this.logger.info({ during }, "stopped while waiting; nothing of it committed");
      return;
    }
    this.fail(error);
    if (error instanceof IncarnationError) this.logger.error({ problem: error.problem }, error.message);
    else this.logger.error({ err: error, during }, "applier stopping on an error it cannot retry");
  }

  async eachBatch(payload: Payload): Promise<void> {
    if (this.stopping) return;
    try {
      await this.applyBatch(payload);
    } catch (error) {
      if (error instanceof PartitionDeferred) {
        const partition = payload.batch.partition;
        this.logger.warn(
          { partition, attempts: this.deferrals.attemptsUsed(partition), err: String(error.cause) },
          "transient failure persists; partition paused, the others go on",
        );
        return;
      }
      const aborted = error instanceof RetriesExhaustedError && this.stopController.signal.aborted;
      this.onFailure(error as Error, aborted ? "retrying a chunk" : `partition ${payload.batch.partition}`);
    }
  }

  private async applyBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: Payload): Promise<void> {
    const partition = batch.partition;
    const state = await this.loadView(partition, heartbeat);
    const pending = batch.messages.filter((m) => BigInt(m.offset) >= state.nextOffset!);
    if (pending.length === 0) {
      // Fetched before the seek landed, or kafkajs reset an offset it found out of range: only the
      // log's incarnation tells which, so it is checked before anything is passed over.
      if (!(await this.logHolds(partition, state, heartbeat))) return;
      this.seek(partition, state.nextOffset!);
      return;
    }
    const firstOffset = BigInt(pending[0]!.offset);
    if (firstOffset > state.nextOffset!) {
      if (this.gapSeeks.get(partition) !== state.nextOffset) {
        this.logger.warn(
          { partition, first_offset: String(firstOffset), stored: String(state.nextOffset) },
          "batch starts above the stored offset; seeking back",
        );
        this.gapSeeks.set(partition, state.nextOffset!);
        this.seek(partition, state.nextOffset!);
        return;
      }
      // The same gap again after seeking back: offsets with no record (transaction markers,
      // compaction) are fine; records deleted before they were applied are not.
      if (!(await this.logHolds(partition, state, heartbeat))) return;
    } else {
      // kafkajs fetches by the topic's name: after a delete and re-create, records of the new topic
      // come at the old positions. The topic's id, read after this batch was fetched, tells.
      const window = await this.readWindow(partition, heartbeat);
      const problem = this.topicIdProblem(partition, state, window.topicId);
      if (problem !== null) throw problem;
    }
    this.gapSeeks.delete(partition);
    for (let start = 0; start < pending.length; start += this.settings.batchEventsMax) {
      if (this.stopping || !isRunning() || isStale()) return;
      const chunk = pending.slice(start, start + this.settings.batchEventsMax).map(toRawRecord);
      const result = await this.applyChunk(partition, state, chunk, heartbeat);
      if (result === null) return;
      resolveOffset(chunk[chunk.length - 1]!.offset.toString());
      if (!(await this.heartbeatOrYield(heartbeat, partition))) return;
      // The view this batch was checked against, or the batch ends: dropped (revoked, fenced) or
      // replaced, the rest of the batch would be written on a view it was never compared with,
      // perhaps one another member moved past it (and the stored offset would go back).
      if (this.states.get(partition) !== state) return;
    }
  }

  /** The partition's view in eachBatch: a load's failures go through retry-or-pause. */
  private loadView(partition: number, heartbeat: () => Promise<void>): Promise<PartitionState> {
    // A view already loaded is no attempt: it neither counts nor starts the count again.
    const loaded = this.states.get(partition);
    if (loaded !== undefined) return Promise.resolve(loaded);
    const onRetry = this.onRetry("load the partition", heartbeat);
    return this.deferrals.run(partition, "load the partition", () => this.viewOf(partition), onRetry, "read");
  }

  /** The partition's log now. Kafka away for a moment is transient: retried, then the partition paused. */
  private readWindow(partition: number, heartbeat: () => Promise<void>): Promise<LogWindow> {
    const read = () => this.log.window(partition);
    const onRetry = this.onRetry("read the log's offsets", heartbeat);
    return this.deferrals.run(partition, "read the log's offsets", read, onRetry, "read");
  }

  /**
   * Whether the view's offset lies within the partition's log now. When it does not, only the stored
   * offsets may decide: the view may be stale (kept across a rebalance while another member moved
   * the partition on, and retention then deleted what that member applied). The view is reloaded:
   * the load throws IncarnationError if the problem is real; else false, and the batch ends (its
   * records come again and meet the fresh view).
   */
  private async logHolds(partition: number, state: PartitionState, heartbeat: () => Promise<void>) {
    const window = await this.readWindow(partition, heartbeat);
    const stored = { nextOffset: state.nextOffset!, topicId: state.topicId };
    const problem = incarnationProblem({ topic: this.settings.topic, partition }, stored, window);
    if (problem === null) return true;
    if (problem.problem === "topic_id_changed") throw problem;
    this.logger.warn(
      { partition, problem: problem.problem, view_offset: String(state.nextOffset) },
      "the view's offset is outside the log; reloading it from the stored offsets before deciding",
    );
    if (this.states.get(partition) === state) this.drop(partition);
    await this.loadView(partition, heartbeat);
    return false;
  }

  /** Only the topic's id: offsets from an answer that may predate the view's last commit say nothing. */
  private topicIdProblem(partition: number, state: PartitionState, topicId: string | null) {
    if (topicId === null || state.topicId === null || state.topicId === topicId) return null;
    const stored = { nextOffset: state.nextOffset!, topicId: state.topicId };
    const window = { topicId, lowOffset: 0n, highOffset: state.nextOffset! };
    return incarnationProblem({ topic: this.settings.topic, partition }, stored, window);
  }

  /** The periodic check: a topic re-created under the member stops it before long. */
  checkTopicId(topicId: string | null): void {
    for (const [partition, state] of this.states) {
      const problem = this.topicIdProblem(partition, state, topicId);
      if (problem === null) continue;
      this.onFailure(problem, "the periodic topic id check");
      return;
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

  /** null when fenced: another member wrote this partition, so this one drops its view of it. */
  private async applyChunk(
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
      const result = await this.deferrals.run(
        partition,
        `apply partition ${partition}`,
        apply,
        this.onRetry(`apply partition ${partition}`, heartbeat),
      );
      countChunk(this.totals, this.logger, partition, chunk.length, result);
      return result;
    } catch (error) {
      if (!(error instanceof OffsetFenceError)) throw error;
      this.logger.warn(
        { partition },
        "fenced: the stored offset moved; dropping this member's view of the partition",
      );
      if (this.states.get(partition) === state) this.drop(partition);
      return null;
    }
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
