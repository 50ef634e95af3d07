// Retry-or-pause for one member. Transient failures inside eachBatch are retried in place only
// briefly: kafkajs fetches per broker and waits for every batch of a fetch before the next one, so a
// batch waiting out a shard outage would stall every partition that shares its leader broker, other
// shards' included. Past a few attempts the partition is paused and resumed after a backoff, while
// the others go on. Every attempt, in place or after a pause, counts against ONE bound: attemptsMax.
//
// Retries are reported here too: each one counted (tally_retries_total, by cause) and logged.
import type { Logger } from "../common/log.ts";
import { retriesTotal, retryCauseOf } from "../common/metrics.ts";
import { RetriesExhaustedError, type RetryPolicy, withRetry } from "../common/retry.ts";
import { partitionPausesTotal, pausedPartitions } from "./metrics.ts";

export const inlineAttemptsMax = 3;
const inlineBackoffMsMax = 500;
const resumeBackoffMsMin = 200;

/** Ends the batch: the partition is paused, its records come again on resume. */
export class PartitionDeferred extends Error {
  override name = "PartitionDeferred";
}

export type PauseControl = {
  pause(partition: number): void;
  resume(partition: number): void;
};

export type OnRetry = (error: unknown, attemptIndex: number, delayMs: number) => void;

/** What a retry of `what` reports: counted by cause, logged, and a heartbeat sent when in a batch. */
export type RetryReporter = (what: string, heartbeat?: () => Promise<void>) => OnRetry;

export function retryReporter(logger: Logger): RetryReporter {
  return (what, heartbeat) => {
    return (error, attemptIndex, delayMs) => {
      const cause = retryCauseOf(error);
      retriesTotal.inc({ cause });
      logger.warn(
        { what, cause, attempt: attemptIndex + 1, delay_ms: delayMs, err: String((error as Error).message) },
        "transient failure; retrying",
      );
      heartbeat?.().catch(() => {});
    };
  };
}

/**
 * The attempt, unless the member stopped during the backoff before it: a retry's sleep ends early on
 * a stop, and the next attempt (a write, or a connect that waits out its timeout) must not start then.
 */
export function unlessStopped<T>(
  what: string,
  signal: AbortSignal,
  attempt: () => Promise<T>,
): () => Promise<T> {
  return () => {
    if (signal.aborted)
      return Promise.reject(new RetriesExhaustedError(`${what}: stopped before the next attempt`));
    return attempt();
  };
}

export class Deferrals {
  /** Per partition: attempts used since its last success, and the timer that resumes it. */
  private readonly byPartition = new Map<number, { attemptsUsed: number; timer: NodeJS.Timeout | null }>();
  private readonly policy: RetryPolicy;
  private readonly control: PauseControl;
  private readonly signal: AbortSignal;

  constructor(policy: RetryPolicy, control: PauseControl, signal: AbortSignal) {
    this.policy = policy;
    this.control = control;
    this.signal = signal;
  }

  attemptsUsed(partition: number): number {
    return this.byPartition.get(partition)?.attemptsUsed ?? 0;
  }

  isPaused(partition: number): boolean {
    return this.byPartition.get(partition)?.timer != null;
  }

  /**
   * A few attempts in place, then the partition is paused (PartitionDeferred); RetriesExhaustedError
   * once attemptsMax attempts have failed in all. Only a `progress` step's success (a chunk written)
   * starts the count again: a read that succeeds between two failed writes (the view, the log's
   * offsets) says nothing of the next write, and resetting on it would let writes fail forever.
   */
  async run<T>(
    partition: number,
    what: string,
    attempt: () => Promise<T>,
    onRetry: OnRetry,
    step: "progress" | "read" = "progress",
  ): Promise<T> {
    const used = this.attemptsUsed(partition);
    const inline: RetryPolicy = {
      attemptsMax: Math.max(1, Math.min(inlineAttemptsMax, this.policy.attemptsMax - used)),
      backoffMsMax: Math.min(inlineBackoffMsMax, this.policy.backoffMsMax),
    };
    let tried = 0;
    const counted = unlessStopped(what, this.signal, () => {
      tried++;
      return attempt();
    });
    try {
      const result = await withRetry(what, inline, counted, onRetry, this.signal);
      if (step === "progress") this.forget(partition);
      else if (tried > 1) this.count(partition, used + tried - 1);
      return result;
    } catch (error) {
      if (!(error instanceof RetriesExhaustedError) || this.signal.aborted) throw error;
      const attemptsUsed = used + tried;
      if (attemptsUsed >= this.policy.attemptsMax) {
        this.forget(partition);
        throw new RetriesExhaustedError(`${what}: gave up after ${attemptsUsed} attempts`, {
          cause: error.cause,
        });
      }
      const delayMs = this.pause(partition, attemptsUsed);
      throw new PartitionDeferred(`partition ${partition} paused for ${delayMs} ms`, { cause: error.cause });
    }
  }

  /** Retried in place within the whole bound, never paused: for the assignment's loads, outside any batch. */
  inPlace<T>(what: string, attempt: () => Promise<T>, onRetry: OnRetry): Promise<T> {
    return withRetry(what, this.policy, unlessStopped(what, this.signal, attempt), onRetry, this.signal);
  }

  /** The failed attempts of a read that then succeeded still count; the partition is not paused. */
  private count(partition: number, attemptsUsed: number): void {
    const entry = this.byPartition.get(partition);
    if (entry !== undefined) entry.attemptsUsed = attemptsUsed;
    else this.byPartition.set(partition, { attemptsUsed, timer: null });
  }

  private pause(partition: number, attemptsUsed: number): number {
    const pauses = Math.ceil(attemptsUsed / inlineAttemptsMax);
    const ceilingMs = Math.min(this.policy.backoffMsMax, resumeBackoffMsMin * 2 ** (pauses - 1));
    const delayMs = Math.round(ceilingMs / 2 + (Math.random() * ceilingMs) / 2);
    this.control.pause(partition);
    partitionPausesTotal.inc();
    const entry = { attemptsUsed, timer: null as NodeJS.Timeout | null };
    entry.timer = setTimeout(() => {
      entry.timer = null;
      this.reportPaused();
      if (!this.signal.aborted) this.control.resume(partition);
    }, delayMs);
    this.byPartition.set(partition, entry);
    this.reportPaused();
    return delayMs;
  }

  private reportPaused(): void {
    pausedPartitions.set([...this.byPartition.values()].filter((e) => e.timer !== null).length);
  }

  /**
   * A partition lost or reassigned starts its count again. A paused one is resumed now: kafkajs keeps
   * a partition paused across a rebalance, and no timer would be left to resume it.
   */
  forget(partition: number): void {
    const entry = this.byPartition.get(partition);
    this.byPartition.delete(partition);
    if (entry?.timer) {
      clearTimeout(entry.timer);
      this.reportPaused();
      if (!this.signal.aborted) this.control.resume(partition);
    }
  }

  clear(): void {
    for (const partition of [...this.byPartition.keys()]) this.forget(partition);
  }
}
