// Cases with the pipeline already running: produce-to-balance latency under a steady rate, and one
// large user-level transfer (N token moves under one batch_id) from first produce to the balance.
// "Visible" is read from the views: a partition's projector checkpoint past the record's offset
// (its balances are then in wallet_balances), or the receiver's balance itself.
import { createPool, type Pool } from "../../services/common/pg.ts";
import { sleep } from "../../services/common/retry.ts";
import { createLoad } from "../load/load.ts";
import { benchLoad, chunked, userTransfer } from "./loads.ts";
import { readCheckpoints, startPipeline, waitVisible } from "./pipeline.ts";
import type { ChildReport } from "./processes.ts";
import { produceChunks, type SentChunk } from "./produce.ts";
import type { BenchStack } from "./stack.ts";
import { type Distribution, distributionOf, eventsPerSecondOf } from "./stats.ts";

export type LatencyResult = {
  rateEventsPerSecond: number;
  achievedEventsPerSecond: number;
  durationMs: number;
  events: number;
  /** one sample per send and partition: its last record, from send() to checkpoint past it */
  latencyMs: Distribution;
  latencyMsP50: number;
  latencyMsP99: number;
  peakRssBytes: Record<string, number>;
};

export type UserTransferResult = { moves: number; visibleMs: number; eventsPerSecond: number };

const warmUpEvents = 2_000;
const visibleTimeoutMs = 120_000;
const pollMs = 20;
/** Sends per second when pacing: small sends, so a record waits little for its send. */
const pacedSendsPerSecond = 20;

function peaks(reports: ChildReport[]): Record<string, number> {
  return Object.fromEntries(reports.map((r) => [r.role, r.peakRssBytes]));
}

/** Starts the pipeline, warms it up (group joined, first batches done), runs `work`, stops it. */
async function withRunningPipeline<T>(
  stack: BenchStack,
  seed: number,
  nowMs: number,
  work: (views: Pool) => Promise<T>,
): Promise<{ result: T; reports: ChildReport[] }> {
  const running = startPipeline(stack);
  const views = createPool(stack.config, stack.config.TALLY_PG_VIEWS, "tally-bench", 1);
  try {
    const warm = createLoad(benchLoad(warmUpEvents, seed, nowMs));
    const produced = await produceChunks(stack.config, warm.chunks(500));
    await waitVisible(views, stack.config.TALLY_TOPIC, produced.highWatermarks, visibleTimeoutMs);
    const result = await work(views);
    return { result, reports: await running.stop() };
  } catch (error) {
    await running.stop().catch(() => {});
    throw error;
  } finally {
    await views.end();
  }
}

type Sample = { calledMs: number; partition: number; offset: bigint };

/** Polls the checkpoints and turns each pending sample into a latency once its offset is covered. */
function sampler(views: Pool, topic: string) {
  const pending: Sample[] = [];
  const latencies: number[] = [];
  let producing = true;
  const loop = (async () => {
    const deadlineAfterProduceMs = visibleTimeoutMs;
    let producedAtMs = 0;
    while (producing || pending.length > 0) {
      const checkpoints = await readCheckpoints(views, topic);
      const nowMs = performance.now();
      for (let k = pending.length - 1; k >= 0; k--) {
        const s = pending[k]!;
        if ((checkpoints.get(s.partition) ?? -1n) > s.offset) {
          latencies.push(nowMs - s.calledMs);
          pending.splice(k, 1);
        }
      }
      if (!producing && producedAtMs === 0) producedAtMs = nowMs;
      if (producedAtMs > 0 && nowMs - producedAtMs > deadlineAfterProduceMs)
        throw new Error(`${pending.length} samples not visible ${visibleTimeoutMs} ms after the last send`);
      await sleep(pollMs);
    }
  })();
  loop.catch(() => {}); // awaited in finish(); this keeps an early failure from going unhandled
  return {
    add: (chunk: SentChunk) => {
      for (const [partition, offset] of chunk.lastOffsets)
        pending.push({ calledMs: chunk.calledMs, partition, offset });
    },
    finish: async () => {
      producing = false;
      await loop;
      return latencies;
    },
  };
}

/** A steady rate for `durationMs` with appliers and projector running; p50/p99 produce → visible. */
export async function runLatency(
  stack: BenchStack,
  options: { rateEventsPerSecond: number; durationMs: number; seed: number; nowMs: number },
): Promise<LatencyResult> {
  const rate = Math.max(1, Math.round(options.rateEventsPerSecond));
  const events = Math.max(1, Math.ceil((rate * options.durationMs) / 1000));
  const { result, reports } = await withRunningPipeline(
    stack,
    options.seed + 1,
    options.nowMs,
    async (views) => {
      const load = createLoad(benchLoad(events, options.seed + 2, options.nowMs));
      const samples = sampler(views, stack.config.TALLY_TOPIC);
      const chunkEvents = Math.max(1, Math.ceil(rate / pacedSendsPerSecond));
      const produced = await produceChunks(stack.config, load.chunks(chunkEvents), {
        rateEventsPerSecond: rate,
        onSent: samples.add,
      }).catch(async (error) => {
        await samples.finish().catch(() => {});
        throw error;
      });
      return { produced, latencies: await samples.finish() };
    },
  );
  const latencyMs = distributionOf(result.latencies);
  return {
    rateEventsPerSecond: rate,
    achievedEventsPerSecond: eventsPerSecondOf(result.produced.sent, result.produced.elapsedMs),
    durationMs: Math.round(result.produced.elapsedMs),
    events: result.produced.sent,
    latencyMs,
    latencyMsP50: latencyMs.p50,
    latencyMsP99: latencyMs.p99,
    peakRssBytes: peaks(reports),
  };
}

async function balanceOf(views: Pool, wallet: string, asset: string): Promise<bigint> {
  const { rows } = await views.query<{ b: string }>(
    "SELECT balance::text b FROM wallet_balances WHERE wallet = $1 AND asset = $2",
    [wallet, asset],
  );
  return rows[0] ? BigInt(rows[0].b) : 0n;
}

/** For each size: mint that many tokens to one wallet (not timed), then move them all under one batch_id. */
export async function runUserTransfers(
  stack: BenchStack,
  options: { sizes: number[]; seed: number; nowMs: number },
): Promise<UserTransferResult[]> {
  const shapes = options.sizes.map((moves, k) =>
    userTransfer(`${k}`, moves, options.seed + 10 + k, options.nowMs),
  );
  const { result } = await withRunningPipeline(stack, options.seed + 3, options.nowMs, async (views) => {
    const minted = await produceChunks(
      stack.config,
      chunked(
        shapes.flatMap((s) => s.mints),
        5_000,
      ),
    );
    await waitVisible(views, stack.config.TALLY_TOPIC, minted.highWatermarks, visibleTimeoutMs);
    const results: UserTransferResult[] = [];
    for (const shape of shapes) {
      let firstCalledMs = Number.POSITIVE_INFINITY;
      const startedMs = performance.now();
      await produceChunks(stack.config, [shape.moves], {
        onSent: (chunk) => {
          firstCalledMs = Math.min(firstCalledMs, chunk.calledMs);
        },
      });
      while ((await balanceOf(views, shape.toWallet, shape.asset)) !== shape.totalAmount) {
        if (performance.now() - startedMs > visibleTimeoutMs)
          throw new Error(`user transfer of ${shape.moves.length} moves not visible in time`);
        await sleep(pollMs / 2);
      }
      const visibleMs = performance.now() - firstCalledMs;
      results.push({
        moves: shape.moves.length,
        visibleMs: Math.round(visibleMs),
        eventsPerSecond: eventsPerSecondOf(shape.moves.length, visibleMs),
      });
    }
    return results;
  });
  return result;
}
