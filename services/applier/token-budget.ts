// The bound on the token states one applier process keeps in memory: one number per process
// (TALLY_TOKEN_CACHE_MAX), shared out evenly among the partitions the process owns at the time. A
// partition whose tokens fit its share is loaded whole (no query per chunk for tokens it knows);
// above it, tokens unused for a generation are dropped (token-cache.ts) and loaded again when they
// next appear. Without a process bound, memory grew with the number of tokens ever seen: tokens are
// a twentieth of the events in a typical load, so an applier's heap followed the input size.
import client from "prom-client";
import { assert } from "../common/assert.ts";
import { metricsRegistry } from "../common/metrics.ts";

export class TokenBudget {
  readonly tokensMax: number;
  private partitionsOwned = 0;

  constructor(tokensMax: number) {
    assert(Number.isSafeInteger(tokensMax) && tokensMax >= 1, "the token cache bound is a positive integer");
    this.tokensMax = tokensMax;
    tokenCacheMax.set(tokensMax);
  }

  /** Called on every assignment: the shares follow the number of partitions owned. */
  setPartitionsOwned(count: number): void {
    assert(Number.isSafeInteger(count) && count >= 0, "a partition count");
    this.partitionsOwned = count;
  }

  /** Tokens one owned partition may keep: the bound divided among the partitions owned (at least 1). */
  perPartition(): number {
    return Math.max(1, Math.floor(this.tokensMax / Math.max(1, this.partitionsOwned)));
  }
}

export const tokenCacheMax = new client.Gauge({
  name: "tally_applier_token_cache_max",
  help: "The bound on token states an applier keeps in memory (TALLY_TOKEN_CACHE_MAX)",
  registers: [metricsRegistry],
});

export const tokenCacheTokens = new client.Gauge({
  name: "tally_applier_token_cache_tokens",
  help: "Token states the applier keeps in memory, over every partition it owns",
  registers: [metricsRegistry],
});
