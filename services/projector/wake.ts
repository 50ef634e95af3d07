// Wake-ups: the applier runs NOTIFY tally_applied in each batch's transaction, so a listening
// projector starts its next round right after the commit; a poll covers a lost connection or a
// missed notification, so waking never depends on LISTEN alone.
import type { Logger } from "../common/log.ts";
import type { Client, Pool } from "../common/pg.ts";
import { sleep } from "../common/retry.ts";

export const appliedChannel = "tally_applied";

/** Reconnect delay of a lost listener; the poll keeps the projector going meanwhile. */
const relistenDelayMsMax = 5_000;

/** A wake-up flag: `notify` ends the current `wait`, or the next one if none is waiting. */
export class Waker {
  private pending = false;
  private wake: (() => void) | null = null;

  notify(): void {
    this.pending = true;
    this.wake?.();
  }

  /** Resolves at a notification, after `timeoutMs`, or at abort, whichever comes first. */
  async wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.pending || signal?.aborted) {
      this.pending = false;
      return;
    }
    const inner = new AbortController();
    const onAbort = () => inner.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.wake = onAbort;
    try {
      await sleep(timeoutMs, inner.signal);
    } finally {
      this.wake = null;
      this.pending = false;
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

/**
 * Holds one LISTEN connection per shard until `signal` aborts; reconnects with a bounded delay.
 * Returns a function that ends the listeners.
 */
export function listenAll(
  pools: Pool[],
  waker: Waker,
  log: Logger,
  signal: AbortSignal,
): () => Promise<void> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  const loops = pools.map((pool, shard) => listenLoop(pool, shard, waker, log, stop.signal));
  return async () => {
    stop.abort();
    signal.removeEventListener("abort", onAbort);
    await Promise.all(loops);
  };
}

async function listenLoop(pool: Pool, shard: number, waker: Waker, log: Logger, stop: AbortSignal) {
  let delayMs = 100;
  while (!stop.aborted) {
    let client: Client | null = null;
    try {
      client = await pool.connect();
      const lost = new Promise<unknown>((resolve) => {
        client!.on("error", resolve);
        client!.on("end", () => resolve(new Error("connection ended")));
      });
      client.on("notification", () => waker.notify());
      await client.query(`LISTEN ${appliedChannel}`);
      delayMs = 100;
      // A round now, in case a commit happened while no one listened.
      waker.notify();
      const ended = new Promise((resolve) => stop.addEventListener("abort", resolve, { once: true }));
      const reason = await Promise.race([lost, ended]);
      if (!stop.aborted) throw reason;
      // Destroyed, never pooled again: a session that listens must not serve other queries.
      client.release(true);
      client = null;
    } catch (error) {
      log.warn({ shard, err: String(error), delayMs }, "projector: LISTEN lost, polling until it is back");
      client?.release(true);
      client = null;
      await sleep(delayMs, stop);
      delayMs = Math.min(relistenDelayMsMax, delayMs * 2);
    }
  }
}
