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
