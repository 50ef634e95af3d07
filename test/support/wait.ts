// Waiting on a signal (a log line, a row, a metric) instead of a sleep. The timeout only keeps a
// test that cannot succeed from hanging: it is generous and never a claim about speed.
import { sleep } from "../../services/common/retry.ts";

export const waitTimeoutMsDefault = 100_000;

/** Polls `check` until it returns true (or a value other than false/undefined); its last error is in the failure. */
export async function waitUntil<T>(
  what: string,
  check: () => T | false | undefined | Promise<T | false | undefined>,
  { timeoutMs = waitTimeoutMsDefault, intervalMs = 100 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== false && value !== undefined) return value;
    if (Date.now() > deadlineMs) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * `promise`, or a failure naming `what` once `ms` passed: for a single answer that may never come
 * (a dead broker, a server holding a lock, a process that does not exit).
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  promise.catch(() => {}); // a late failure after the race is of no interest
  const cancel = new AbortController();
  const timeout = sleep(ms, cancel.signal).then(() => {
    if (!cancel.signal.aborted) throw new Error(`${what}: no answer within ${ms} ms`);
    return undefined as never;
  });
  return Promise.race([promise, timeout]).finally(() => cancel.abort());
}
