// `tally bench`: every case in one run, on the same generated events, each on its own topic and
// databases, durability on; then docs/bench/latest.{json,md,svg}. Progress lines go to stderr.
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { Config } from "../../services/common/config.ts";
import { createPool } from "../../services/common/pg.ts";
import { createLoad, type LoadOptions } from "../load/load.ts";
import { type Cleanup, checkpoint, runCeiling, runNaive } from "./baseline.ts";
import { bundleLauncher } from "./bundle.ts";
import { renderChartSvg } from "./chart.ts";
import { type LimitResult, runLimit } from "./limit.ts";
import { runLatency, runUserTransfers } from "./live.ts";
import { benchLoad, benchRates, type Expected } from "./loads.ts";
import { peerMarkdown, withPeerFile } from "./peer-results.ts";
import { measureStartup, runUntilCaughtUp } from "./pipeline.ts";
import { useLauncher } from "./processes.ts";
import { produceChunks } from "./produce.ts";
import {
  type BenchResults,
  type Durability,
  formatMarkdown,
  memoryFlatOf,
  ratiosOf,
  type TallyCase,
} from "./report.ts";
import { type BenchStack, benchStack, dropStack, setUpStack } from "./stack.ts";
import { medianOf, repeated, type Step, stepper } from "./steps.ts";

export type BenchOptions = {
  events: number;
  naiveEvents: number;
  scaling: number[];
  latencySeconds: number;
  /** the steady rate of the latency case; half of Tally's measured end-to-end rate when absent */
  rateEventsPerSecond?: number;
  userTransferMoves: number[];
  hotWalletShare: number;
  appliers: number;
  /** runs of the ceiling, limit, naive, Tally, replay and hot wallet cases; the median run is reported */
  repeat: number;
  seed: number;
  keep: boolean;
  outDir: string;
  command: string;
  log: (line: string) => void;
};

export const defaultBenchOptions = {
  events: 200_000,
  naiveEvents: 5_000,
  scaling: [10_000, 100_000, 1_000_000],
  latencySeconds: 20,
  userTransferMoves: [1_000, 5_000],
  hotWalletShare: 0.8,
  appliers: 2,
  repeat: 3,
  seed: 20_250_601,
} as const;
export const hugeScalingEvents = 10_000_000;
/** --quick: tiny sizes, for the integration test and a smoke run. */
export const quickBenchOptions = {
  events: 3_000,
  naiveEvents: 300,
  scaling: [1_000, 4_000],
  latencySeconds: 3,
  userTransferMoves: [100, 500],
  repeat: 1,
} as const;

const produceChunkEvents = 5_000;

/** SHOW of the settings that make a commit durable, on every server the stack uses. */
export async function readDurability(config: Config): Promise<Durability[]> {
  const servers = new Map<string, string>();
  for (const url of [...config.TALLY_PG_SHARDS, config.TALLY_PG_VIEWS]) {
    const u = new URL(url);
    u.pathname = "/postgres";
    servers.set(`${u.hostname}:${u.port || "5432"}`, u.toString());
  }
  const found: Durability[] = [];
  for (const [server, url] of servers) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const show = async (name: string) => (await client.query(`SHOW ${name}`)).rows[0]![name] as string;
      found.push({
        server,
        version: `PostgreSQL ${await show("server_version")}`,
        fsync: await show("fsync"),
        synchronousCommit: await show("synchronous_commit"),
        fullPageWrites: await show("full_page_writes"),
        walSyncMethod: await show("wal_sync_method"),
      });
    } finally {
      await client.end();
    }
  }
  return found;
}

/** A case on a stack of its own; the stack is removed at the end of the run, not between cases. */
async function onStack<T>(run: Run, label: string, work: (s: BenchStack) => Promise<T>) {
  const stack = benchStack(run.base, label);
  run.cleanup(`topic and databases ${stack.name}`, async () => {
    for (const problem of await dropStack(stack)) run.options.log(`bench: cleanup: ${problem}`);
  });
  await setUpStack(stack);
  await checkpointAll(stack);
  return await work(stack);
}

/**
 * Removal deferred to the end of the run: DROP DATABASE forces a checkpoint, whose writes would
 * land in the next case's measurement. With --keep, only the names are printed.
 */
function cleanupList(options: BenchOptions) {
  const pending: { what: string; remove: () => Promise<unknown> }[] = [];
  return {
    add: (what: string, remove: () => Promise<unknown>) => {
      pending.push({ what, remove });
    },
    async run(): Promise<void> {
      for (const { what, remove } of pending) {
        if (options.keep) options.log(`bench: kept ${what}`);
        else await remove().catch((error) => options.log(`bench: cleanup of ${what}: ${error}`));
      }
    },
  };
}

/** Pre-fills the topic with the load (not timed), then appliers + projector until caught up. */
async function prefilledRun(
  stack: BenchStack,
  load: LoadOptions,
  options: BenchOptions,
  expectedOf: (fresh: Expected) => Expected = (fresh) => fresh,
): Promise<TallyCase> {
  const run = createLoad(load);
  const produced = await produceChunks(stack.config, run.chunks(produceChunkEvents));
  const o = run.outcome;
  const expected = expectedOf({
    applied: o.applied,
    duplicates: o.duplicates,
    rejected: o.rejected.state_conflict,
  });
  options.log(
    `bench:   produced ${produced.sent} events in ${(produced.elapsedMs / 1000).toFixed(1)} s; applying`,
  );
  await checkpointAll(stack);
  const result = await runUntilCaughtUp(stack, options.appliers);
  const c = result.counted;
  const countsMatch =
    c.applied === expected.applied &&
    c.duplicates === expected.duplicates &&
    c.rejected === expected.rejected;
  if (!countsMatch)
    options.log(`bench:   WARNING counted ${JSON.stringify(c)} but expected ${JSON.stringify(expected)}`);
  options.log(
    `bench:   ${result.events} events in ${(result.endToEndMs / 1000).toFixed(2)} s: ${result.eventsPerSecond} events/s ` +
      `end to end, ${result.applyEventsPerSecond}/s apply-only; batch p99 ${result.batchLatencyMs.p99} ms`,
  );
  return { ...result, expected, countsMatch, produceMs: Math.round(produced.elapsedMs) };
}

/** CHECKPOINT on every server of the stack before a timed run: earlier cases' writes land now. */
async function checkpointAll(stack: BenchStack): Promise<void> {
  for (const url of [...stack.config.TALLY_PG_SHARDS, stack.config.TALLY_PG_VIEWS]) {
    const pool = createPool(stack.config, url, "tally-bench", 1);
    try {
      await checkpoint(pool);
    } finally {
      await pool.end();
    }
  }
}

type Run = { base: Config; options: BenchOptions; step: Step; nowMs: number; cleanup: Cleanup };

async function runBaselines({ base, options, step, cleanup }: Run, load: LoadOptions) {
  const ceiling = await repeated(options.repeat, async (label) => {
    const c = await step(`ceiling: COPY of ${options.events} events' ledger rows${label}`, () =>
      runCeiling(base, load, cleanup),
    );
    options.log(
      `bench:   ${c.rows} rows: encoding ${c.encodeMs} ms + COPY ${c.copyMs} ms: ` +
        `${c.eventsPerSecond} rows/s (COPY alone ${c.copyOnlyEventsPerSecond})`,
    );
    return c;
  });
  const naive = await repeated(options.repeat, async (label) => {
    const n = await step(`naive: one transaction per event, ${options.naiveEvents} events${label}`, () =>
      runNaive(base, load, options.naiveEvents, cleanup),
    );
    options.log(`bench:   ${n.events} events in ${n.elapsedMs} ms: ${n.eventsPerSecond} events/s`);
    return n;
  });
  return { ceiling, naive };
}

/**
 * Fresh, replay (same stack), hot wallet (its own) and the limit, `repeat` times interleaved, so
 * that Tally and the limit it is divided by see the same spread of noise; medians of each.
 */
async function runPipelines(run: Run, load: LoadOptions) {
  const { options, step, nowMs } = run;
  const hotLoad = benchLoad(options.events, options.seed, nowMs, options.hotWalletShare);
  const fresh: TallyCase[] = [];
  const replays: TallyCase[] = [];
  const hot: TallyCase[] = [];
  const limits: LimitResult[] = [];
  for (let k = 1; k <= options.repeat; k++) {
    const label = options.repeat > 1 ? ` (run ${k} of ${options.repeat})` : "";
    await onStack(run, "tally", async (stack) => {
      const once = await step(`Tally end to end, ${options.events} events${label}`, () =>
        prefilledRun(stack, load, options),
      );
      once.startupCpuSeconds = await step(`the same processes on the caught-up topic${label}`, () =>
        measureStartup(stack, options.appliers),
      );
      fresh.push(once);
      replays.push(
        await step(`replay: the same events again${label}`, () =>
          prefilledRun(stack, load, options, (e) => ({
            applied: 0,
            duplicates: e.applied + e.duplicates,
            rejected: e.rejected,
          })),
        ),
      );
    });
    hot.push(
      await step(`hot wallet: ${options.hotWalletShare} of the moves on one wallet${label}`, () =>
        onStack(run, "hot", (stack) => prefilledRun(stack, hotLoad, options)),
      ),
    );
    limits.push(
      await step(`limit: Tally's writes alone, ${options.events} events${label}`, () =>
        runLimit(run.base, load, run.cleanup, options.log),
      ),
    );
  }
  return {
    tally: medianOf(fresh),
    replay: medianOf(replays),
    hotWallet: medianOf(hot),
    limit: medianOf(limits),
  };
}

async function runLive(run: Run, tallyEventsPerSecond: number) {
  const { options, step, nowMs } = run;
  const rate = options.rateEventsPerSecond ?? Math.max(100, Math.round(tallyEventsPerSecond / 2));
  const durationMs = options.latencySeconds * 1000;
  const latency = await step(`latency: ${rate} events/s for ${options.latencySeconds} s`, () =>
    onStack(run, "latency", (stack) =>
      runLatency(stack, { rateEventsPerSecond: rate, durationMs, seed: options.seed, nowMs }),
    ),
  );
  options.log(
    `bench:   p50 ${latency.latencyMsP50} ms, p99 ${latency.latencyMsP99} ms (${latency.latencyMs.count} samples)`,
  );
  const sizes = options.userTransferMoves;
  const userTransfers = await step(`user-level transfers of ${sizes.join(", ")} moves`, () =>
    onStack(run, "user", (stack) => runUserTransfers(stack, { sizes, seed: options.seed, nowMs })),
  );
  for (const u of userTransfers)
    options.log(`bench:   ${u.moves} moves visible ${u.visibleMs} ms after the first produce`);
  return { latency, userTransfers };
}

async function runScaling(run: Run): Promise<TallyCase[]> {
  const { options, step, nowMs } = run;
  const scaling: TallyCase[] = [];
  for (const events of options.scaling) {
    const load = benchLoad(events, options.seed, nowMs);
    scaling.push(
      await step(`scaling: ${events} events`, () =>
        onStack(run, `s${events}`, (stack) => prefilledRun(stack, load, options)),
      ),
    );
  }
  return scaling;
}

async function checkDurability(base: Config, options: BenchOptions): Promise<Durability[]> {
  const durability = await readDurability(base);
  for (const d of durability)
    options.log(
      `bench: ${d.server} ${d.version}: fsync ${d.fsync}, synchronous_commit ${d.synchronousCommit}`,
    );
  if (durability.some((d) => d.fsync !== "on" || d.synchronousCommit !== "on"))
    options.log("bench: WARNING durability is not fully on: the figures are not comparable");
  return durability;
}

function settingsOf(base: Config, options: BenchOptions): BenchResults["settings"] {
  return {
    seed: options.seed,
    events: options.events,
    naiveEvents: options.naiveEvents,
    ...benchRates,
    hotWalletShare: options.hotWalletShare,
    appliers: options.appliers,
    partitions: base.TALLY_PARTITIONS,
    shards: base.TALLY_PG_SHARDS.length,
    batchEventsMax: base.TALLY_BATCH_EVENTS_MAX,
    latencySeconds: options.latencySeconds,
    repeat: options.repeat,
  };
}

export async function runBench(base: Config, options: BenchOptions): Promise<BenchResults> {
  const startedAt = new Date();
  const startedMs = performance.now();
  const cleanups = cleanupList(options);
  const run: Run = {
    base,
    options,
    // Per repeat: ceiling, naive, end to end, its start-up, replay, hot wallet, limit; then
    // latency and user transfers once, and the scaling series.
    step: stepper(options.log, 7 * options.repeat + 2 + options.scaling.length),
    nowMs: startedAt.getTime(),
    cleanup: cleanups.add,
  };
  const load = benchLoad(options.events, options.seed, run.nowMs);
  const durability = await checkDurability(base, options);
  // Every case runs the artifact the image runs (bundle.ts says why), built before anything is timed.
  useLauncher(bundleLauncher());
  options.log("bench: Tally's processes run the bundle of infra/images/bundle.mjs (.local/bench-bundle)");
  let cases: BenchResults["cases"];
  try {
    const baselines = await runBaselines(run, load);
    const pipelines = await runPipelines(run, load);
    const live = await runLive(run, pipelines.tally.eventsPerSecond);
    cases = { ...baselines, ...pipelines, ...live, scaling: await runScaling(run) };
  } finally {
    options.log("bench: removing the topics and databases of the run");
    await cleanups.run();
  }
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? "?", memoryBytes: totalmem() };
  return {
    startedAt: startedAt.toISOString(),
    totalMs: Math.round(performance.now() - startedMs),
    command: options.command,
    machine: { ...machine, node: process.version },
    benchPeakRssBytes: process.resourceUsage().maxRSS * 1024,
    durability,
    settings: settingsOf(base, options),
    cases,
    ratios: ratiosOf(cases),
    memoryFlat: memoryFlatOf(cases.scaling),
  };
}

/**
 * latest.json, latest.md and latest.svg in the output folder; the paths written. The peer's
 * results (peer.json, from `tally bench-peer`) are merged in when they are of the same events.
 */
export async function writeResults(given: BenchResults, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const results = await withPeerFile(given, outDir);
  const files = {
    "latest.json": `${JSON.stringify(results, null, 2)}\n`,
    "latest.md": formatMarkdown(results) + peerMarkdown(results),
    "latest.svg": await renderChartSvg(results),
  };
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    const path = join(outDir, name);
    await writeFile(path, text);
    written.push(path);
  }
  return written;
}
