// `tally migrate`: creates the missing databases, tables and day partitions. Idempotent.
import type { Config } from "../common/config.ts";
import { createPool, ensureDatabase, inTransaction, type Pool } from "../common/pg.ts";
import { migrateLockKey, shardDdl, viewsDdl } from "./ddl.ts";
import { dayOf, ensureDayPartitions } from "./partitions.ts";

export type MigrateReport = { databasesCreated: string[]; partitionsCreated: number };

function applyDdl(pool: Pool, statements: string[]): Promise<void> {
  return inTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [migrateLockKey]);
    for (const statement of statements) await client.query(statement);
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
      await applyDdl(pool, shardDdl);
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
