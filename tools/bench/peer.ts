// `tally bench-peer`: the peer a user would otherwise wire up (Kafka Connect with Debezium's JDBC
// sink) on the same generated events as `tally bench`, each tuning tried on a fresh worker,
// connector and table; durability on. Progress lines go to stderr.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { assert } from "../../services/common/assert.ts";
import { type Config, ConfigError, databaseNameOf } from "../../services/common/config.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { createPool, ensureDatabase, type Pool } from "../../services/common/pg.ts";
import { freePort } from "../../services/common/ports.ts";
import { sleep } from "../../services/common/retry.ts";
import { dayOf, ensureDayPartitions } from "../../services/storage/partitions.ts";
import { topics } from "../../services/topics/topics.ts";
import { createLoad } from "../load/load.ts";
import { checkpoint } from "./baseline.ts";
import { readDurability } from "./bench.ts";
import { postgresCpuSeconds } from "./cpu.ts";
import { benchLoad } from "./loads.ts";
import {
  connectorConfig,
  converterRegistryUrl,
  expectedOf,
  jdbcOf,
  type PeerSetting,
  type PeerShape,
  type Produced,
  peerDdlOf,
  peerHeapOptionsDefault,
  peerTable,
  peerVersions,
  workerProperties,
} from "./peer-config.ts";
import { bestOf, type PeerCase, type PeerRun } from "./peer-results.ts";
import { checkConnector, createConnector, startWorker, waitForRest } from "./peer-worker.ts";
import { produceChunks } from "./produce.ts";
import { benchStack, dropDatabase, dropStack, scratchDatabaseUrl } from "./stack.ts";
import { eventsPerSecondOf, hundredths } from "./stats.ts";

export type PeerOptions = {
  events: number;
  seed: number;
  settings: PeerSetting[];
  /** runs of each setting; the median run of each is compared */
  repeat: number;
  keep: boolean;
  command: string;
  log: (line: string) => void;
};

/** Where each run's worker properties, offsets file and log go (kept when a run fails). */
const runsDir = new URL("../../.local/peer/run/", import.meta.url).pathname;
const workerStartTimeoutMs = 180_000;
const rowsPollMs = 250;
const statusEveryPolls = 8;
const produceChunkEvents = 5_000;
/** The slowest the sink may insert before the run is declared stuck (events per second). */
const rowsRateMin = 500;
const rowsTimeoutBaseMs = 120_000;

type Context = {
  base: Config;
  options: PeerOptions;
  topic: string;
  produced: Produced;
  cleanups: { what: string; remove: () => Promise<unknown> }[];
};

/** Produces the load to the topic (not timed), summing amounts and collecting days as it goes. */
async function prefill(config: Config, options: PeerOptions): Promise<Produced> {
  const run = createLoad(benchLoad(options.events, options.seed, Date.now()));
  const produced: Produced = {
    events: 0,
    amountTotal: 0n,
    distinctIds: 0,
    distinctAmountTotal: 0n,
    days: new Set(),
  };
  const ids = new Set<string>();
  function* tallied(): Generator<TransferEvent[]> {
    for (const chunk of run.chunks(produceChunkEvents)) {
      for (const event of chunk) {
        produced.amountTotal += event.amount;
        produced.days.add(dayOf(event.occurred_at));
        if (ids.has(event.transfer_id)) continue;
        ids.add(event.transfer_id);
        produced.distinctAmountTotal += event.amount;
      }
      produced.events += chunk.length;
      yield chunk;
    }
  }
  const result = await produceChunks(config, tallied());
  produced.distinctIds = ids.size;
  assert(result.sent === options.events, `every event was produced (${result.sent} of ${options.events})`);
  options.log(
    `bench-peer: produced ${result.sent} events in ${(result.elapsedMs / 1000).toFixed(1)} s (not timed)`,
  );
  return produced;
}

/** A fresh database with the shape's table (and the load's day partitions for the ledger's). */
async function prepareTable(ctx: Context, shape: PeerShape): Promise<{ url: string; pool: Pool }> {
  const url = scratchDatabaseUrl(ctx.base, "peer");
  await ensureDatabase(ctx.base, url);
  ctx.cleanups.push({ what: `database ${databaseNameOf(url)}`, remove: () => dropDatabase(url) });
  const pool = createPool(ctx.base, url, "tally-bench-peer", 1);
  await pool.query(peerDdlOf(shape));
  if (shape === "ledger") await ensureDayPartitions(pool, ctx.produced.days);
  await checkpoint(pool);
  return { url, pool };
}

type Landed = {
  rows: number;
  distinctPositions: number;
  amountTotal: bigint;
  firstMs: number;
  lastMs: number;
};

async function landed(pool: Pool): Promise<Landed> {
  const { rows } = await pool.query<{ n: number; p: number; t: string; f: number; l: number }>(
    `SELECT count(*)::int n, count(DISTINCT (kafka_partition, kafka_offset))::int p,
            coalesce(sum(amount), 0)::text t,
            (extract(epoch FROM min(inserted_at)) * 1000)::float8 f,
            (extract(epoch FROM max(inserted_at)) * 1000)::float8 l
       FROM ${peerTable}`,
  );
  const r = rows[0]!;
  return { rows: r.n, distinctPositions: r.p, amountTotal: BigInt(r.t), firstMs: r.f, lastMs: r.l };
}

/** Polls the row count until every event landed; checks the connector's status every few polls. */
async function waitForRows(pool: Pool, expected: number, check: () => Promise<void>): Promise<void> {
  const timeoutMs = rowsTimeoutBaseMs + (expected / rowsRateMin) * 1000;
  const deadlineMs = Date.now() + timeoutMs;
  for (let poll = 1; Date.now() < deadlineMs; poll++) {
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int n FROM ${peerTable}`);
    if (rows[0]!.n >= expected) return;
    if (poll % statusEveryPolls === 0) await check();
    await sleep(rowsPollMs);
  }
  await check();
  throw new Error(`peer: fewer than ${expected} rows in ${peerTable} after ${timeoutMs} ms`);
}

/** One run: fresh table, worker and connector; timed from the JVM's spawn to the last row. */
async function runOnce(ctx: Context, setting: PeerSetting, label: string): Promise<PeerRun> {
  const { base, options, topic } = ctx;
  const name = `${topic}-${setting.name}-${label}`;
  const dir = `${runsDir}${name}/`;
  mkdirSync(dir, { recursive: true });
  const { url, pool } = await prepareTable(ctx, setting.shape);
  const expected = expectedOf(ctx.produced, setting.shape);
  ctx.cleanups.push({
    what: `consumer group connect-${name}`,
    remove: () => deleteGroup(base, `connect-${name}`),
  });
  const restPort = await freePort();
  writeFileSync(`${dir}worker.properties`, workerPropertiesFor(base, setting, restPort, `${dir}offsets`));
  const worker = startWorker(`${dir}worker.properties`, restPort, `${dir}connect.log`);
  try {
    const restAtMs = await waitForRest(worker, workerStartTimeoutMs);
    const config = connectorConfig(setting, topic, jdbcOf(url, setting.writer));
    const cpuBefore = { connect: worker.cpuSeconds(), postgres: await postgresCpuSeconds(pool) };
    const createdAtMs = await createConnector(worker, name, config);
    await waitForRows(pool, expected.rows, () => checkConnector(worker, name));
    const cpuSeconds = cpuSince(cpuBefore, worker.cpuSeconds(), await postgresCpuSeconds(pool));
    const peakRssBytes = worker.peakRssBytes();
    await worker.stop();
    const loadAverage1m = Math.round(loadavg()[0]! * 10) / 10;
    const l = await landed(pool);
    const run: PeerRun = {
      events: ctx.produced.events,
      rows: l.rows,
      expectedRows: expected.rows,
      distinctPositions: l.distinctPositions,
      amountsMatch: l.amountTotal === expected.amountTotal,
      workerStartMs: restAtMs - worker.spawnedAtMs,
      firstRowMs: Math.round(l.firstMs - createdAtMs),
      connectorMs: Math.round(l.lastMs - createdAtMs),
      steadyMs: Math.round(l.lastMs - l.firstMs),
      wholeMs: Math.round(l.lastMs - worker.spawnedAtMs),
      eventsPerSecond: eventsPerSecondOf(ctx.produced.events, l.lastMs - createdAtMs),
      steadyEventsPerSecond: eventsPerSecondOf(ctx.produced.events, l.lastMs - l.firstMs),
      wholeEventsPerSecond: eventsPerSecondOf(ctx.produced.events, l.lastMs - worker.spawnedAtMs),
      peakRssBytes,
      cpuSeconds,
      loadAverage1m,
    };
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
    return run;
  } finally {
    await worker.stop();
    await pool.end();
  }
}

type CpuSeconds = { connect: number; postgres: number | null };

function cpuSince(before: CpuSeconds, connect: number, postgres: number | null): CpuSeconds {
  return {
    connect: hundredths(connect - before.connect),
    postgres: postgres === null || before.postgres === null ? null : hundredths(postgres - before.postgres),
  };
}

function workerPropertiesFor(base: Config, setting: PeerSetting, restPort: number, offsetsFile: string) {
  return workerProperties(setting, {
    brokers: base.TALLY_KAFKA_BROKERS.join(","),
    restPort,
    registryUrl: converterRegistryUrl(base.TALLY_SCHEMA_REGISTRY_URL),
    offsetsFile,
  });
}

async function deleteGroup(base: Config, group: string): Promise<void> {
  const admin = createKafka(base, "bench-peer-admin").admin();
  await admin.connect();
  try {
    // absent when the connector never consumed: nothing to remove then
    await admin.deleteGroups([group]).catch(() => {});
  } finally {
    await admin.disconnect();
  }
}

function describeRun(run: PeerRun): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  return (
    `${run.eventsPerSecond} events/s from connector (${s(run.connectorMs)} s; first row after ${s(run.firstRowMs)} s), ` +
    `${run.steadyEventsPerSecond}/s steady, ${run.wholeEventsPerSecond}/s whole (worker start ${s(run.workerStartMs)} s); ` +
    `rows ${run.rows} of ${run.expectedRows}, distinct positions ${run.distinctPositions}, amounts ${run.amountsMatch ? "match" : "DO NOT match"}; ` +
    `JVM peak RSS ${Math.round(run.peakRssBytes / 2 ** 20)} MiB; CPU s from connector: JVM ${run.cpuSeconds?.connect}, ` +
    `PostgreSQL ${run.cpuSeconds?.postgres ?? "n/a"}; load average ${run.loadAverage1m}`
  );
}

/** Every setting `repeat` times (interleaved, so that noise spreads over all), then the best one. */
export async function runPeerBench(base: Config, options: PeerOptions): Promise<PeerCase> {
  if (base.TALLY_KAFKA_SASL_MECHANISM !== "" || base.TALLY_SCHEMA_REGISTRY_USERNAME !== "")
    throw new ConfigError("bench-peer runs on the plain local stack: no Kafka SASL, no registry credentials");
  const startedAt = new Date();
  const durability = await readDurability(base);
  if (durability.some((d) => d.fsync !== "on" || d.synchronousCommit !== "on"))
    options.log("bench-peer: WARNING durability is not fully on: the figures are not comparable");
  const stack = benchStack(base, "peer");
  const ctx: Context = { base, options, topic: stack.name, produced: null!, cleanups: [] };
  ctx.cleanups.push({ what: `topic ${stack.name}`, remove: () => dropStack(stack) });
  try {
    await topics(stack.config);
    ctx.produced = await prefill(stack.config, options);
    const runs = new Map(options.settings.map((s) => [s.name, [] as PeerRun[]]));
    const total = options.repeat * options.settings.length;
    let index = 0;
    for (let k = 1; k <= options.repeat; k++)
      for (const setting of options.settings) {
        index += 1;
        options.log(`bench-peer: [${index}/${total}] ${setting.name} (run ${k} of ${options.repeat})`);
        const run = await runOnce(ctx, setting, String(k));
        options.log(`bench-peer:   ${describeRun(run)}`);
        runs.get(setting.name)!.push(run);
      }
    const { settings, best } = bestOf(options.settings.map((s) => ({ ...s, runs: runs.get(s.name)! })));
    const { name, shape, tasksMax, batchSize, maxPollRecords, writer, medianRun } = best;
    return {
      ...medianRun,
      startedAt: startedAt.toISOString(),
      command: options.command,
      seed: options.seed,
      setting: { name, shape, tasksMax, batchSize, maxPollRecords, writer },
      runsEventsPerSecond: best.runs.map((r) => r.eventsPerSecond),
      tried: settings,
      versions: { ...peerVersions },
      heapOptions: process.env.PEER_HEAP_OPTS ?? peerHeapOptionsDefault,
      durability,
    };
  } finally {
    for (const { what, remove } of ctx.cleanups.reverse()) {
      if (options.keep) options.log(`bench-peer: kept ${what}`);
      else await remove().catch((error) => options.log(`bench-peer: cleanup of ${what}: ${error}`));
    }
  }
}
