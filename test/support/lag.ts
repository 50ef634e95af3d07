// Consumer lag sampled from outside while faults happen: the topic's high watermarks against the
// offsets stored in each shard (what the applier committed with its rows). A shard or a broker that
// is away does not stop the sampling: a shard's last known offsets stand in (they cannot move
// while it is down), a sample without high watermarks is skipped. Also the fault report.
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import type { Admin } from "kafkajs";
import pg from "pg";
import { assert } from "../../services/common/assert.ts";
import { sleep } from "../../services/common/retry.ts";
import { shardOf } from "../../services/common/shards.ts";
import { quietKafka } from "./cluster.ts";
import { repoRoot, type TestStack } from "./stack.ts";
import { within } from "./wait.ts";

export type LagSample = {
  /** when the sample's reads began */
  startedMs: number;
  atMs: number;
  lagRecords: number;
  nextOffsets: Map<number, bigint>;
  highOffsets: Map<number, bigint>;
};

const sampleIntervalMs = 200;
// A sample's reads are bounded so that a dead broker or server cannot hold the sampler up.
const readMsMax = 1_500;
const samplesMax = 100_000;

export class LagSampler {
  readonly samples: LagSample[] = [];
  private readonly stack: TestStack;
  private readonly admin: Admin;
  private readonly pools: pg.Pool[];
  private readonly stored = new Map<number, bigint>();
  private running: Promise<void> | null = null;
  private stopping = false;

  constructor(stack: TestStack) {
    this.stack = stack;
    this.admin = quietKafka(stack.config, "lag").admin();
    this.pools = stack.config.TALLY_PG_SHARDS.map((url) => {
      const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 1_000 });
      pool.on("error", () => {}); // a crashed server: the next sample's query fails, and is skipped
      return pool;
    });
  }

  async start(): Promise<void> {
    await this.admin.connect();
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    await this.admin.disconnect();
    await Promise.all(this.pools.map((p) => p.end()));
  }

  /** Lag now, as the last sample saw it. */
  get lastLagRecords(): number {
    return this.samples.at(-1)?.lagRecords ?? Number.NaN;
  }

  peakBetween(fromMs: number, toMs: number): number {
    let peak = 0;
    for (const s of this.samples) if (s.atMs >= fromMs && s.atMs <= toMs) peak = Math.max(peak, s.lagRecords);
    return peak;
  }

  /**
   * Of the records produced to these partitions between two moments (high watermarks), the share
   * applied in the same time (stored offsets): 1 keeps up, 0 stalled.
   */
  appliedShareBetween(fromMs: number, toMs: number, partitions: readonly number[]): number {
    const at = (ms: number) => {
      const sample = this.samples.findLast((s) => s.atMs <= ms);
      assert(sample !== undefined, "a sample before the moment asked for");
      return sample;
    };
    const sum = (offsets: Map<number, bigint>) => partitions.reduce((n, p) => n + (offsets.get(p) ?? 0n), 0n);
    const [from, to] = [at(fromMs), at(toMs)];
    const produced = sum(to.highOffsets) - sum(from.highOffsets);
    const applied = sum(to.nextOffsets) - sum(from.nextOffsets);
    return produced > 0n ? Number(applied) / Number(produced) : 1;
  }

  /**
   * From fromMs, when the lag was last above the threshold before toMs, and back at or below it:
   * the moment the applier caught up for good (fromMs itself if it never fell behind).
   */
  caughtUpBetween(thresholdRecords: number, fromMs: number, toMs: number): number {
    const window = this.samples.filter((s) => s.atMs >= fromMs && s.atMs <= toMs);
    const lastAbove = window.findLastIndex((s) => s.lagRecords > thresholdRecords);
    if (lastAbove < 0) return fromMs;
    return window[lastAbove + 1]?.atMs ?? toMs;
  }

  /** Waits until `count` samples were taken after fromMs (a window measured in samples, not a sleep); the last one's time. */
  async waitForSamples(count: number, fromMs: number, timeoutMs: number): Promise<number> {
    const deadlineMs = performance.now() + timeoutMs;
    for (;;) {
      const taken = this.samples.filter((s) => s.atMs >= fromMs);
      if (taken.length >= count) return taken[count - 1]!.atMs;
      if (performance.now() > deadlineMs)
        throw new Error(`${taken.length} of ${count} lag samples within ${timeoutMs} ms`);
      await sleep(sampleIntervalMs);
    }
  }

  /** The first sample whose reads all began at or after fromMs (waits for one). */
  async sampleAfter(fromMs: number, timeoutMs: number): Promise<LagSample> {
    const deadlineMs = performance.now() + timeoutMs;
    for (;;) {
      const found = this.samples.find((s) => s.startedMs >= fromMs);
      if (found) return found;
      if (performance.now() > deadlineMs) throw new Error(`no lag sample began within ${timeoutMs} ms`);
      await sleep(sampleIntervalMs);
    }
  }

  /** Waits for a sample after fromMs with lag at or below the threshold; its time. */
  async waitForLagAtMost(thresholdRecords: number, fromMs: number, timeoutMs: number): Promise<number> {
    const deadlineMs = performance.now() + timeoutMs;
    for (;;) {
      const found = this.samples.find((s) => s.atMs >= fromMs && s.lagRecords <= thresholdRecords);
      if (found) return found.atMs;
      if (performance.now() > deadlineMs)
        throw new Error(
          `lag did not come down to ${thresholdRecords} within ${timeoutMs} ms (last ${this.lastLagRecords})`,
        );
      await sleep(sampleIntervalMs);
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopping && this.samples.length < samplesMax) {
      const startedMs = performance.now();
      await this.sample().catch(() => {}); // a broker away: no sample this time
      await sleep(Math.max(0, sampleIntervalMs - (performance.now() - startedMs)));
    }
  }

  private async sample(): Promise<void> {
    const startedMs = performance.now();
    const { TALLY_TOPIC: topic, TALLY_GROUP: group } = this.stack.config;
    const reads = this.pools.map((pool) =>
      within(
        pool.query<{ partition: number; next_offset: string }>(
          `SELECT "partition", next_offset FROM applier_offsets WHERE "group" = $1 AND topic = $2`,
          [group, topic],
        ),
        readMsMax,
        "shard offsets",
      ),
    );
    // Settled at once: a shard that is down rejects while the high watermarks are read.
    const settled = Promise.allSettled(reads);
    const offsets = await within(this.admin.fetchTopicOffsets(topic), readMsMax, "high watermarks");
    const atMs = performance.now();
    for (const read of await settled)
      if (read.status === "fulfilled")
        for (const row of read.value.rows) this.stored.set(row.partition, BigInt(row.next_offset));
    let lag = 0n;
    for (const o of offsets) {
      const next = this.stored.get(o.partition) ?? BigInt(o.low);
      if (BigInt(o.high) > next) lag += BigInt(o.high) - next;
    }
    const highOffsets = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
    this.samples.push({
      startedMs,
      atMs,
      lagRecords: Number(lag),
      nextOffsets: new Map(this.stored),
      highOffsets,
    });
  }
}

/** The partitions of the topic that live on one shard (shard = partition mod shard count). */
export function partitionsOfShard(stack: TestStack, shard: number): number[] {
  const { TALLY_PARTITIONS: partitions, TALLY_PG_SHARDS: shards } = stack.config;
  return Array.from({ length: partitions }, (_, p) => p).filter((p) => shardOf(p, shards.length) === shard);
}

export type FaultFigures = {
  fault: string;
  /** from the fault's start to its end (the part back, the members back to one) */
  faultMs: number;
  /** from the fault's end until the lag is at most recoveredLagRecords (0: it already was) */
  recoveryMs: number;
  /** from the fault's start to the same moment */
  recoveredAfterStartMs: number;
  /** from the fault's start until the lag was back under the threshold for good: time behind */
  caughtUpAfterStartMs: number;
  lagPeakRecords: number;
  baselineLagPeakRecords: number;
  recoveredLagRecords: number;
  eventsPerSecond: number;
  events: number;
  resentEvents: number;
  extraRecords: number;
  /** the broker fault: from the kill until another node leads the partition */
  leaderMovedAfterMs?: number;
  /** the shard server fault: per shard left running, the share of its load applied meanwhile */
  appliedShareByShard?: Record<string, number>;
  /** why the producer's sends failed before each resend */
  sendFailures: string[];
};

export const faultsReportFile = `${repoRoot}.local/faults-report.json`;

/** The figures as a table for the test output, and as JSON in .local/faults-report.json. */
export function writeFaultsReport(rows: readonly FaultFigures[]): string {
  const seconds = (ms: number) => (ms / 1000).toFixed(1);
  const lines = [
    "| fault | fault lasted s | recovered after its end s | caught up after its start s | lag peak | lag peak before | events/s | events | resent | extra |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.fault} | ${seconds(r.faultMs)} | ${seconds(r.recoveryMs)} | ${seconds(r.caughtUpAfterStartMs)} | ${r.lagPeakRecords} | ` +
        `${r.baselineLagPeakRecords} | ${r.eventsPerSecond} | ${r.events} | ${r.resentEvents} | ${r.extraRecords} |`,
    ),
  ];
  const report = { measuredAt: new Date().toISOString(), cpus: cpus().length, rows };
  writeFileSync(faultsReportFile, `${JSON.stringify(report, null, 2)}\n`);
  return lines.join("\n");
}
