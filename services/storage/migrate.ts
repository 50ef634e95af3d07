// `tally migrate`: creates the missing databases, tables and day partitions. Idempotent.
import type { Config } from "../common/config.ts";
import { createPool, ensureDatabase, inTransaction, type Pool } from "../common/pg.ts";
import { migrateLockKey, shardDdl, viewsDdl } from "./ddl.ts";
import { declareChunkReader } from "./delta-readers.ts";
import { dayOf, ensureDayPartitions } from "./partitions.ts";

export type MigrateReport = { databasesCreated: string[]; partitionsCreated: number };

function applyDdl(pool: Pool, statements: string[]): Promise<void> {
  return inTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [migrateLockKey]);
    for (const statement of statements) await client.query(statement);
  });
}

/**
 * The shard's tables; on a shard no applier ever wrote to, also the declaration that its
 * projectors read chunk rows (storage/delta-readers.ts): no projector of an older release can
 * have read it. An upgraded shard waits for its first new projector to declare it.
 */
function migrateShard(pool: Pool): Promise<void> {
  return inTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [migrateLockKey]);
    const before = await client.query<{ fresh: boolean }>(
      "SELECT to_regclass('applier_offsets') IS NULL AS fresh",
    );
    for (const statement of shardDdl) await client.query(statement);
    if (before.rows[0]!.fresh) await declareChunkReader(client);
  });
}

/** The days migrate makes ahead: yesterday (late events) to `TALLY_DAYS_AHEAD` days from today. */
export function daysToPrepare(config: Config, nowMs: number = Date.now()): number[] {
  const today = dayOf(nowMs);
  const days: number[] = [];
  for (let day = today - 1; day <= today + config.TALLY_DAYS_AHEAD; day++) days.push(day);
  return days;
}

export async function migrate(config: Config): Promise<MigrateReport> {
  const report: MigrateReport = { databasesCreated: [], partitionsCreated: 0 };
  for (const url of [...config.TALLY_PG_SHARDS, config.TALLY_PG_VIEWS]) {
    if (await ensureDatabase(config, url)) report.databasesCreated.push(new URL(url).pathname.slice(1));
  }
  for (const url of config.TALLY_PG_SHARDS) {
    const pool = createPool(config, url, "tally-migrate", 1);
    try {
      await migrateShard(pool);
      report.partitionsCreated += (await ensureDayPartitions(pool, daysToPrepare(config))).length;
    } finally {
      await pool.end();
    }
  }
  const views = createPool(config, config.TALLY_PG_VIEWS, "tally-migrate", 1);
  try {
    await applyDdl(views, viewsDdl);
  } finally {
    await views.end();
  }
  return report;
}
