// Tally end to end on a bench stack: appliers and the projector as child processes, either until
// caught up (timed) or running until stopped (the latency and user-transfer cases), plus what the
// shards and views say about the outcome.
import type { Config } from "../../services/common/config.ts";
import { createPool, type Pool } from "../../services/common/pg.ts";
import { sleep } from "../../services/common/retry.ts";
import { outcomeTotals } from "../../services/storage/applier-offsets.ts";
import { postgresCpuSeconds } from "./cpu.ts";
import type { Expected as Outcome } from "./loads.ts";
import {
  type ApplierJson,
  applierJsonOf,
  type Child,
  type ChildReport,
  finished,
  startTally,
} from "./processes.ts";
import type { BenchStack } from "./stack.ts";
import { type Distribution, distributionOf, eventsPerSecondOf, hundredths } from "./stats.ts";

export type PhaseSplitMs = {
  decode: number;
  validate: number;
  write: number;
  commit: number;
  project: number;
};

export type PipelineResult = {
  events: number;
  counted: Outcome;
  /** spawn of the processes → the projector reporting caught up (every record applied and projected) */
  endToEndMs: number;
  eventsPerSecond: number;
  /** the appliers' own elapsed (the longer one) as their --json summaries report it: start to exit */
  applyElapsedMs: number;
  /** first batch started → last batch committed, across appliers: the time spent applying */
  batchesSpanMs: number;
  /** events over batchesSpanMs: the appliers' rate without process start, group join or projection */
  applyEventsPerSecond: number;
  phaseMs: PhaseSplitMs;
  batchLatencyMs: Distribution;
  batchEvents: Distribution;
  peakRssBytes: Record<string, number>;
  /** user + system CPU seconds per process, and "postgres" for the server when it is on this machine */
  cpuSeconds: Record<string, number>;
  /** the same, for the same processes run again once the topic is caught up (measureStartup) */
  startupCpuSeconds?: Record<string, number>;
};

export const appliersDefault = 2;

/** Sums of applier_offsets over every shard: what the appliers recorded, in their transactions. */
export async function countedOutcome(config: Config): Promise<Outcome> {
  const total: Outcome = { applied: 0, duplicates: 0, rejected: 0 };
  for (const url of config.TALLY_PG_SHARDS) {
    const pool = createPool(config, url, "tally-bench", 1);
    try {
      const o = await outcomeTotals(pool, config.TALLY_GROUP, config.TALLY_TOPIC);
      total.applied += Number(o.applied);
      total.duplicates += Number(o.duplicates);
      total.rejected += Number(o.rejected);
    } finally {
      await pool.end();
    }
  }
  return total;
}

const minus = (a: Outcome, b: Outcome): Outcome => ({
  applied: a.applied - b.applied,
  duplicates: a.duplicates - b.duplicates,
  rejected: a.rejected - b.rejected,
});

function startAppliers(stack: BenchStack, count: number, untilCaughtUp: boolean): Child[] {
  const args = ["apply", "--json", ...(untilCaughtUp ? ["--until-caught-up"] : [])];
  return Array.from({ length: count }, (_, k) => startTally(`applier-${k + 1}`, args, stack.env));
}

/** Appliers and projector from a pre-filled topic until caught up, timed from their start. */
export async function runUntilCaughtUp(
  stack: BenchStack,
  appliers: number = appliersDefault,
): Promise<PipelineResult> {
  const before = await countedOutcome(stack.config);
  const postgres = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, "tally-bench", 1);
  const postgresCpuBefore = await postgresCpuSeconds(postgres);
  const startedMs = performance.now();
  const applierChildren = startAppliers(stack, appliers, true);
  const projector = startTally("projector", ["project", "--until-caught-up"], stack.env);
  const all = [...applierChildren, projector];
  let reports: ChildReport[];
  try {
    reports = await Promise.all(all.map(finished));
  } catch (error) {
    for (const child of all) child.stop();
    await Promise.allSettled(all.map((c) => c.done));
    await postgres.end();
    throw error;
  }
  const endToEndMs = (projector.firstStdoutMs ?? performance.now()) - startedMs;
  const postgresCpuAfter = await postgresCpuSeconds(postgres);
  await postgres.end();
  const counted = minus(await countedOutcome(stack.config), before);
  const result = summarize(reports, counted, endToEndMs);
  // Every shard and the views share one server in the bench stack: its CPU is theirs together.
  if (postgresCpuBefore !== null && postgresCpuAfter !== null && sameServer(stack.config))
    result.cpuSeconds.postgres = hundredths(postgresCpuAfter - postgresCpuBefore);
  return result;
}

/**
 * The CPU of the same processes started again on the same topic once it is caught up: loading the
 * program, connecting, joining the group, finding nothing to do and stopping. A deployment pays it
 * once per process start, a bench run once per case: the report shows the CPU per event with and
 * without it (what a short run costs, and what each further event costs a running deployment).
 */
export async function measureStartup(
  stack: BenchStack,
  appliers: number = appliersDefault,
): Promise<Record<string, number>> {
  const idle = await runUntilCaughtUp(stack, appliers);
  if (idle.events !== 0) throw new Error(`bench: ${idle.events} events were applied on a caught-up topic`);
  return idle.cpuSeconds;
}

export type RunningPipeline = { stop: () => Promise<ChildReport[]>; children: Child[] };

/** Appliers and projector that keep running (no --until-caught-up) until stop(). */
export function startPipeline(stack: BenchStack, appliers: number = appliersDefault): RunningPipeline {
  const children = [
    ...startAppliers(stack, appliers, false),
    startTally("projector", ["project"], stack.env),
  ];
  const early = Promise.race(children.map((c) => c.done.then((r) => r)));
  return {
    children,
    stop: async () => {
      const exitedEarly = await Promise.race([early, sleep(0).then(() => null)]);
      for (const child of children) child.stop();
      const reports = await Promise.all(children.map(finished));
      if (exitedEarly) throw new Error(`${exitedEarly.role} exited before it was stopped`);
      return reports;
    },
  };
}

/** Turns the child reports into the numbers of one pipeline run. */
export function summarize(reports: ChildReport[], counted: Outcome, endToEndMs: number): PipelineResult {
  const appliers = reports.filter((r) => r.role.startsWith("applier"));
  const jsons: ApplierJson[] = appliers.map(applierJsonOf);
  const events = counted.applied + counted.duplicates + counted.rejected;
  const applyElapsedMs = Math.max(0, ...jsons.map((j) => j.elapsedMs));
  const phase = (name: string) => Math.round(jsons.reduce((sum, j) => sum + (j.phaseMs[name] ?? 0), 0));
  const spans = appliers.flatMap((r) => (r.batchSpan ? [r.batchSpan] : []));
  const batchesSpanMs =
    spans.length === 0
      ? 0
      : Math.max(...spans.map((s) => s.lastEndMs)) - Math.min(...spans.map((s) => s.firstStartMs));
  const peakRssBytes: Record<string, number> = {};
  const cpuSeconds: Record<string, number> = {};
  for (const [k, r] of reports.entries()) {
    const reported = r.role.startsWith("applier") ? (jsons[k]?.maxRssBytes ?? 0) : 0;
    peakRssBytes[r.role] = Math.max(r.peakRssBytes, reported);
    // An applier measures its own CPU up to its exit; the poll misses the last interval.
    const reportedCpuMs = r.role.startsWith("applier") ? (jsons[k]?.cpuMs ?? 0) : 0;
    cpuSeconds[r.role] = hundredths(Math.max(r.cpuSeconds, reportedCpuMs / 1000));
  }
  return {
    events,
    counted,
    endToEndMs: Math.round(endToEndMs),
    eventsPerSecond: eventsPerSecondOf(events, endToEndMs),
    applyElapsedMs: Math.round(applyElapsedMs),
    batchesSpanMs: Math.round(batchesSpanMs),
    applyEventsPerSecond: eventsPerSecondOf(events, batchesSpanMs),
    phaseMs: {
      decode: phase("decode"),
      validate: phase("validate"),
      write: phase("write"),
      commit: phase("commit"),
      project: Math.round(reports.reduce((sum, r) => sum + r.projectMs, 0)),
    },
    batchLatencyMs: distributionOf(appliers.flatMap((r) => r.batchMs)),
    batchEvents: distributionOf(appliers.flatMap((r) => r.batchEvents)),
    peakRssBytes,
    cpuSeconds,
  };
}

/** Whether every shard and the views database are on one server: its CPU is then theirs together. */
export function sameServer(config: Config): boolean {
  const hostOf = (url: string) => new URL(url).host;
  return new Set([...config.TALLY_PG_SHARDS, config.TALLY_PG_VIEWS].map(hostOf)).size === 1;
}

/** The projector's checkpoints: per partition, the offset up to which balances are visible. */
export async function readCheckpoints(views: Pool, topic: string): Promise<Map<number, bigint>> {
  const { rows } = await views.query<{ p: number; o: string }>(
    "SELECT kafka_partition p, end_offset::text o FROM projector_checkpoints WHERE topic = $1",
    [topic],
  );
  return new Map(rows.map((r) => [r.p, BigInt(r.o)]));
}

/** Waits until every partition's checkpoint reaches the given offsets (exclusive ends). */
export async function waitVisible(
  views: Pool,
  topic: string,
  ends: Map<number, bigint>,
  timeoutMs: number,
  pollMs = 20,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const checkpoints = await readCheckpoints(views, topic);
    if ([...ends].every(([p, end]) => (checkpoints.get(p) ?? -1n) >= end)) return;
    if (performance.now() > deadline) throw new Error(`not visible within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}
