// Transient failures (registry or database unreachable) are retried with bounded, jittered backoff.
// They never turn into rejections: the caller does not move past the record until it succeeds.
export class TransientError extends Error {
  override name = "TransientError";
  readonly source: "registry" | "database" | "kafka";
  constructor(message: string, source: TransientError["source"], options?: { cause?: unknown }) {
    super(message, options);
    this.source = source;
  }
}

const postgresTransientCodes = new Set([
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "08000",
  "08003",
  "08006",
  "08001",
  "08004", // connection exceptions
  "53300", // too_many_connections
  "40001", // serialization_failure
  "40P01", // deadlock_detected
]);
const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
]);

/** True for an error that a later attempt may not meet: lost connections, restarts, contention. */
export function isTransient(error: unknown): boolean {
  if (error instanceof TransientError) return true;
  const e = error as { code?: string; message?: string; errors?: unknown[] } | null;
  if (!e) return false;
  if (e.code && (postgresTransientCodes.has(e.code) || networkCodes.has(e.code))) return true;
  if (Array.isArray(e.errors) && e.errors.some(isTransient)) return true; // AggregateError from net
  const message = e.message ?? "";
  return /Connection terminated|connection timeout|terminating connection|Client has encountered a connection error|ECONNREFUSED|ECONNRESET|socket hang up/i.test(
    message,
  );
}

export type RetryPolicy = { attemptsMax: number; backoffMsMax: number; backoffMsMin?: number };

export class RetriesExhaustedError extends Error {
  override name = "RetriesExhaustedError";
}

/**
 * A dependency that did not answer: a TransientError, or retries that ran out on one. Not an
 * answer about the request; the caller may say "run it again" rather than judge what it asked.
 */
export function isUnreachable(error: unknown): boolean {
  const name = (error as Error | null)?.name;
  return name === "TransientError" || name === "RetriesExhaustedError";
}

/**
 * Runs `attempt` until it succeeds, retrying only transient errors, at most `attemptsMax` times.
 * Exhaustion is an error for the process (the supervisor restarts it), never a skipped record.
 */
export async function withRetry<T>(
  what: string,
  policy: RetryPolicy,
  attempt: (attemptIndex: number) => Promise<T>,
  onRetry?: (error: unknown, attemptIndex: number, delayMs: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  const backoffMsMin = policy.backoffMsMin ?? 50;
  for (let attemptIndex = 0; ; attemptIndex++) {
    try {
      return await attempt(attemptIndex);
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (attemptIndex + 1 >= policy.attemptsMax || signal?.aborted) {
        throw new RetriesExhaustedError(`${what}: gave up after ${attemptIndex + 1} attempts`, {
          cause: error,
        });
      }
      const ceilingMs = Math.min(policy.backoffMsMax, backoffMsMin * 2 ** attemptIndex);
      const delayMs = Math.round(ceilingMs / 2 + (Math.random() * ceilingMs) / 2);
      onRetry?.(error, attemptIndex, delayMs);
      await sleep(delayMs, signal);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
