// The limit of Tally's own design: the rows Tally writes for the load (ledger and transfer ids by
// binary COPY, token states, rejections, balance deltas, the offsets compare-and-set), in chunks of
// the applier's size, one transaction each, through the applier's own writeChunk, with no Kafka, no
// Avro and no rules. What is left between Tally and this figure is everything but the writes.
import { writeChunk } from "../../services/applier/write.ts";
import type { Config } from "../../services/common/config.ts";
import { createPool, type Pool } from "../../services/common/pg.ts";
import { shardOf } from "../../services/common/shards.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { ensureDayPartitions } from "../../services/storage/partitions.ts";
import type { LoadOptions } from "../load/load.ts";
import { type Cleanup, checkpoint } from "./baseline.ts";
import { postgresCpuSeconds } from "./cpu.ts";
import { expectedRowsOf, type LimitChunk, limitChunksOf, loadRecords, writerQueues } from "./limit-plan.ts";
import { sameServer } from "./pipeline.ts";
import { benchStack, dropDatabase } from "./stack.ts";
import { eventsPerSecondOf, hundredths } from "./stats.ts";

export type LimitResult = {
  /** records of the load the chunks cover (applied, duplicates, double spends): Tally's basis */
  events: number;
  chunks: number;
  chunkEventsMax: number;
  /** concurrent writers, one per shard, each with one connection */
  writers: number;
  /** rows per table the chunks should write, and what the databases hold afterwards */
  expectedRows: Record<string, number>;
  rows: Record<string, number>;
  rowsMatch: boolean;
  /** the plans, in memory, before the clock starts (not timed) */
  planMs: number;
  /** first BEGIN to last COMMIT, ledger encoding included */
  elapsedMs: number;
  eventsPerSecond: number;
  /** user + system CPU seconds of the timed part: "limit" (this process) and "postgres" (the server) */
  cpuSeconds: Record<string, number>;
};

const countedTables = ["transfers", "transfer_ids", "token_state", "rejected_transfers"];

/** Each shard's partitions start at offset 0, the row the offsets compare-and-set then advances. */
async function seedOffsets(pool: Pool, group: string, topic: string, partitions: number[]): Promise<void> {
  await pool.query(
    `INSERT INTO applier_offsets ("group", topic, "partition", next_offset, first_offset)
     SELECT $1, $2, p, 0, 0 FROM unnest($3::int[]) AS p`,
    [group, topic, partitions],
  );
}

const countOf = async (pool: Pool, sql: string) => (await pool.query<{ n: number }>(sql)).rows[0]!.n;

/**
 * Balance delta entries (a wallet's net change in an asset, or an asset's supply change, per
 * chunk): a row each in balance_deltas, or entries of the chunk's one row in balance_delta_chunks.
 * Both are counted, so the check holds whichever the applier writes (services/applier/delta-rows.ts).
 */
async function deltaEntriesOf(pool: Pool): Promise<number> {
  const rows = await countOf(pool, "SELECT count(*)::int n FROM balance_deltas");
  const entries = await countOf(
    pool,
    "SELECT coalesce(sum(entry_count), 0)::int n FROM balance_delta_chunks",
  );
  return rows + entries;
}

async function countRows(pools: Pool[]): Promise<Record<string, number>> {
  const rows: Record<string, number> = {};
  for (const table of countedTables) rows[table] = 0;
  rows.balance_delta_entries = 0;
  for (const pool of pools) {
    for (const table of countedTables)
      rows[table]! += await countOf(pool, `SELECT count(*)::int n FROM ${table}`);
    rows.balance_delta_entries! += await deltaEntriesOf(pool);
  }
  return rows;
}

/** Each shard's queue by its own connection, all shards at once; the elapsed wall time. */
async function writeAll(
  pools: Pool[],
  queues: LimitChunk[][],
  ref: { group: string; topic: string },
): Promise<number> {
  const startedMs = performance.now();
  await Promise.all(
    queues.map(async (queue, shard) => {
      for (const { partition, expectedOffset, plan } of queue)
        await writeChunk(pools[shard]!, { ...ref, partition }, expectedOffset, plan);
    }),
  );
  return performance.now() - startedMs;
}

export async function runLimit(
  base: Config,
  load: LoadOptions,
  cleanup: Cleanup,
  log: (line: string) => void,
): Promise<LimitResult> {
  const planStartedMs = performance.now();
  const perPartition = limitChunksOf(loadRecords(load), base.TALLY_PARTITIONS, base.TALLY_BATCH_EVENTS_MAX);
  const chunks = perPartition.flat();
  const queues = writerQueues(perPartition, base.TALLY_PG_SHARDS.length);
  const planMs = performance.now() - planStartedMs;
  const stack = benchStack(base, "limit");
  const { config } = stack;
  for (const url of [...config.TALLY_PG_SHARDS, config.TALLY_PG_VIEWS])
    cleanup(`database ${new URL(url).pathname.slice(1)}`, () => dropDatabase(url));
  await migrate(config); // Tally's own DDL, as `make demo` creates it
  const pools = config.TALLY_PG_SHARDS.map((url) => createPool(config, url, "tally-bench-limit", 1));
  try {
    const days = new Set(chunks.flatMap((c) => [...c.plan.days]));
    for (const [shard, pool] of pools.entries()) {
      await ensureDayPartitions(pool, days);
      const owned = perPartition.map((_, p) => p).filter((p) => shardOf(p, pools.length) === shard);
      await seedOffsets(pool, config.TALLY_GROUP, config.TALLY_TOPIC, owned);
      await checkpoint(pool);
    }
    const cpuBefore = { limit: process.cpuUsage(), postgres: await postgresCpuSeconds(pools[0]!) };
    const elapsedMs = await writeAll(pools, queues, { group: config.TALLY_GROUP, topic: config.TALLY_TOPIC });
    const own = process.cpuUsage(cpuBefore.limit);
    const cpuSeconds: Record<string, number> = { limit: hundredths((own.user + own.system) / 1e6) };
    const postgresAfter = await postgresCpuSeconds(pools[0]!);
    // One server for every shard (the bench stack's case): its CPU is theirs together.
    if (cpuBefore.postgres !== null && postgresAfter !== null && sameServer(config))
      cpuSeconds.postgres = hundredths(postgresAfter - cpuBefore.postgres);
    const expectedRows = expectedRowsOf(chunks);
    const rows = await countRows(pools);
    const rowsMatch = Object.keys(expectedRows).every((t) => rows[t] === expectedRows[t]);
    if (!rowsMatch)
      log(`bench:   WARNING rows ${JSON.stringify(rows)}, expected ${JSON.stringify(expectedRows)}`);
    const events = chunks.reduce((sum, c) => sum + Number(c.plan.nextOffset - c.expectedOffset), 0);
    log(
      `bench:   ${events} events in ${chunks.length} chunks by ${pools.length} writers: ${Math.round(elapsedMs)} ms, ` +
        `${eventsPerSecondOf(events, elapsedMs)} events/s; rows ${rowsMatch ? "as planned" : "NOT as planned"}`,
    );
    return {
      events,
      chunks: chunks.length,
      chunkEventsMax: base.TALLY_BATCH_EVENTS_MAX,
      writers: pools.length,
      expectedRows,
      rows,
      rowsMatch,
      planMs: Math.round(planMs),
      elapsedMs: Math.round(elapsedMs),
      eventsPerSecond: eventsPerSecondOf(events, elapsedMs),
      cpuSeconds,
    };
  } finally {
    await Promise.all(pools.map((pool) => pool.end()));
  }
}
