// The projector: rounds of "read pending deltas per shard, add them up, write the views and the
// checkpoints in one transaction", woken by the applier's NOTIFY or by a poll. A round is never
// cut short: a stop request (abort signal) is honoured between rounds.
import type { Config } from "../common/config.ts";
import { createLogger, type Logger } from "../common/log.ts";
import { metricsHostOf, retriesTotal, retryCauseOf, serveMetrics } from "../common/metrics.ts";
import { createPool, type Pool } from "../common/pg.ts";
import { RetriesExhaustedError, sleep, withRetry } from "../common/retry.ts";
import { declareChunkReader } from "../storage/delta-readers.ts";
import { loadCheckpoints } from "../storage/projector-checkpoints.ts";
import { initProjectorMetrics, observeRound, refreshVerifyMetrics } from "./metrics.ts";
import {
  partitionsByShard,
  projectShardOnce,
  type RoundProgress,
  retryPolicyOf,
  type ShardContext,
  type ShardRound,
} from "./round.ts";
import { pruneShard } from "./shard-read.ts";
import { ensureCheckpoints } from "./views-write.ts";
import { listenAll, Waker } from "./wake.ts";

/** How often deltas already in the views are deleted from the shards. */
const pruneIntervalMs = 10_000;
/** Consecutive level rounds that make "caught up": level now, and still level one poll later. */
const levelRoundsForCaughtUp = 2;
/** The longest rest after a round: a round is bounded (TALLY_PROJECT_DELTAS_MAX), so is its rest. */
const restMsMax = 5_000;

/**
 * How long the projector rests after a round: `restPercent` of the round's own duration when it
 * moved rows and took everything pending (level), else nothing. Under load a round upserts every
 * wallet the chunks since the last one touched, so back-to-back rounds upsert the same wallets
 * again and again while the appliers wait on the same cores; resting as long as the round took
 * lets each round sum more chunks (10^6 events, 10,000 wallets: 81-100 rounds -> 36-40, PostgreSQL
 * 14.6 -> 11.8 CPU s, medians; docs/benchmarks.md). A bounded round (a backlog) goes on at once, and a quiet
 * system's rounds take milliseconds, so catching up and prompt balances cost nothing.
 */
export function restMsAfter(
  round: Pick<RoundProgress, "projectMs" | "rows" | "level">,
  restPercent: number,
): number {
  if (round.rows === 0 || !round.level || restPercent === 0) return 0;
  return Math.min(restMsMax, (round.projectMs * restPercent) / 100);
}

export type { RoundProgress } from "./round.ts";

export type ProjectorOptions = {
  /** exit once every checkpoint equals the applier's offset, twice in a row */
  untilCaughtUp?: boolean;
  /** with untilCaughtUp: also wait until this says the applier itself is done */
  applierCaughtUp?: () => boolean | Promise<boolean>;
  /** abort = stop after the current round */
  signal?: AbortSignal;
  onProgress?: (progress: RoundProgress) => void;
  logger?: Logger;
};

export type ProjectorSummary = {
  rounds: number;
  rowsProjected: number;
  conflicts: number;
  caughtUp: boolean;
  /** projector lag at the last round, in records */
  lagRecords: bigint;
  /** "stopped": by the signal; "caught-up": by --until-caught-up */
  reason: "stopped" | "caught-up";
};

type Resources = { contexts: ShardContext[]; shardPools: Pool[]; listenPools: Pool[]; viewsPool: Pool };

function open(config: Config): Resources {
  const viewsPool = createPool(config, config.TALLY_PG_VIEWS, "tally-projector");
  const shardPools = config.TALLY_PG_SHARDS.map((url) => createPool(config, url, "tally-projector"));
  // One connection per shard that only listens: a LISTEN session never returns to a working pool.
  const listenPools = config.TALLY_PG_SHARDS.map((url) =>
    createPool(config, url, "tally-projector-listen", 1),
  );
  const contexts = partitionsByShard(config)
    .map((partitions, shard) => ({ config, shard, partitions, shardPool: shardPools[shard]!, viewsPool }))
    .filter((context) => context.partitions.length > 0);
  return { contexts, shardPools, listenPools, viewsPool };
}

async function close(resources: Resources): Promise<void> {
  await Promise.all(
    [...resources.shardPools, ...resources.listenPools, resources.viewsPool].map((p) => p.end()),
  );
}

async function projectRound(resources: Resources, log: Logger, signal?: AbortSignal): Promise<ShardRound[]> {
  const results: ShardRound[] = [];
  for (const context of resources.contexts) {
    const onRetry = (error: unknown, attempt: number, delayMs: number) => {
      const cause = retryCauseOf(error);
      retriesTotal.inc({ cause });
      log.warn(
        { shard: context.shard, cause, attempt, delayMs, err: String(error) },
        "projector: retrying shard",
      );
    };
    const policy = retryPolicyOf(context.config);
    results.push(
      await withRetry(
        `project shard ${context.shard}`,
        policy,
        () => projectShardOnce(context),
        onRetry,
        signal,
      ),
    );
  }
  return results;
}

async function prune(resources: Resources, log: Logger): Promise<void> {
  const config = resources.contexts[0]?.config;
  if (!config) return;
  for (const context of resources.contexts) {
    try {
      // Committed checkpoints only: what they cover is in the views for good.
      const checkpoints = await loadCheckpoints(resources.viewsPool, config.TALLY_TOPIC, context.partitions);
      const deleted = await pruneShard(
        context.shardPool,
        config.TALLY_TOPIC,
        checkpoints,
        config.TALLY_PROJECT_DELTAS_MAX,
      );
      if (deleted > 0) log.debug({ shard: context.shard, deleted }, "projector: pruned deltas");
    } catch (error) {
      // Pruning is housekeeping and idempotent: a failure waits for the next interval.
      log.warn({ shard: context.shard, err: String(error) }, "projector: prune failed, will try again");
    }
  }
}

/** Runs the projector until the signal aborts, or (untilCaughtUp) until it is level with the applier. */
export async function runProjector(
  config: Config,
  options: ProjectorOptions = {},
): Promise<ProjectorSummary> {
  const log = options.logger ?? createLogger(config.TALLY_LOG_LEVEL, "tally-projector");
  const signal = options.signal ?? new AbortController().signal;
  const summary: ProjectorSummary = {
    rounds: 0,
    rowsProjected: 0,
    conflicts: 0,
    caughtUp: false,
    lagRecords: 0n,
    reason: "stopped",
  };
  let fatal: unknown = null;
  initProjectorMetrics();
  // Ready after the first round: the views' checkpoints exist and both databases answered.
  const server = await serveMetrics(
    config.TALLY_METRICS_PORT,
    { live: () => fatal === null, ready: () => summary.rounds > 0 && !signal.aborted && fatal === null },
    metricsHostOf(config),
  );
  const resources = open(config);
  const waker = new Waker();
  const stopListening = listenAll(resources.listenPools, waker, log, signal);
  try {
    const allPartitions = resources.contexts.flatMap((c) => c.partitions);
    await withRetry("projector start", retryPolicyOf(config), async () => {
      await ensureCheckpoints(resources.viewsPool, config.TALLY_TOPIC, allPartitions);
      // From here on the appliers may write chunk rows to these shards: this projector reads them.
      for (const context of resources.contexts) await declareChunkReader(context.shardPool);
    });
    await loop(config, resources, waker, log, signal, options, summary);
  } catch (error) {
    // Retries cut short by a stop request leave nothing half-written: a clean stop.
    if (!(error instanceof RetriesExhaustedError && signal.aborted)) {
      fatal = error;
      throw error;
    }
    log.warn({ err: String(error) }, "projector: stopped while retrying");
  } finally {
    await stopListening();
    await close(resources);
    await server?.close();
  }
  log.info({ ...summary, lagRecords: summary.lagRecords.toString() }, "projector: done");
  return summary;
}

async function loop(
  config: Config,
  resources: Resources,
  waker: Waker,
  log: Logger,
  signal: AbortSignal,
  options: ProjectorOptions,
  summary: ProjectorSummary,
): Promise<void> {
  let levelRounds = 0;
  let lastPruneMs = Number.NEGATIVE_INFINITY; // the first prune right after the first round
  while (!signal.aborted) {
    // Asked before the round that may end the run, never after it: that round then holds all the
    // applier had committed when it said it was done. Asked after, a chunk committed between the
    // round's read and the answer was left unprojected (the run ended "caught up" but behind).
    const applierDone =
      options.untilCaughtUp && levelRounds + 1 >= levelRoundsForCaughtUp
        ? !options.applierCaughtUp || (await options.applierCaughtUp())
        : false;
    const startMs = performance.now();
    const shards = await projectRound(resources, log, signal);
    const progress: RoundProgress = {
      round: ++summary.rounds,
      rows: shards.reduce((sum, s) => sum + s.rows, 0),
      projectMs: performance.now() - startMs,
      lagRecords: shards.reduce((sum, s) => sum + s.lagRecords, 0n),
      conflicts: shards.filter((s) => s.conflict).length,
      level: shards.every((s) => s.level),
    };
    summary.rowsProjected += progress.rows;
    summary.conflicts += progress.conflicts;
    summary.lagRecords = progress.lagRecords;
    const restMs = restMsAfter(progress, config.TALLY_PROJECT_REST_PERCENT);
    logRound(log, progress, shards, restMs);
    observeRound(progress, shards);
    options.onProgress?.(progress);

    if (performance.now() - lastPruneMs >= pruneIntervalMs) {
      await prune(resources, log);
      await refreshVerifyMetrics(resources.viewsPool, config.TALLY_TOPIC).catch((error: unknown) =>
        log.warn({ err: String(error) }, "projector: reading verify_runs failed, will try again"),
      );
      lastPruneMs = performance.now();
    }
    levelRounds = progress.level ? levelRounds + 1 : 0;
    if (applierDone && levelRounds >= levelRoundsForCaughtUp) {
      summary.caughtUp = true;
      summary.reason = "caught-up";
      return;
    }
    // A notification during the rest is kept by the waker: the wait below then returns at once.
    if (restMs > 0) await sleep(restMs, signal);
    // More is pending (a bounded round, or a lost race): go on at once; else sleep until woken.
    if (progress.level) await waker.wait(config.TALLY_PROJECT_POLL_MS, signal);
  }
}

function logRound(log: Logger, progress: RoundProgress, shards: ShardRound[], restMs: number): void {
  const fields = {
    round: progress.round,
    rows: progress.rows,
    project_ms: roundTenth(progress.projectMs),
    read_ms: roundTenth(shards.reduce((sum, s) => sum + s.readMs, 0)),
    write_ms: roundTenth(shards.reduce((sum, s) => sum + s.writeMs, 0)),
    lag_records: progress.lagRecords.toString(),
    conflicts: progress.conflicts,
    level: progress.level,
    rest_ms: roundTenth(restMs),
  };
  if (progress.rows > 0 || progress.conflicts > 0) log.info(fields, "projector: round");
  else log.debug(fields, "projector: round");
}

const roundTenth = (ms: number) => Math.round(ms * 10) / 10;
