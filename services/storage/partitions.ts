// Day partitions of `transfers`: one per UTC day, made ahead by migrate and on demand by the applier
// before a batch writes into a day that has none (a row without a partition would fail the whole COPY).
import { type Client, inTransaction, type Pool } from "../common/pg.ts";
import { migrateLockKey } from "./ddl.ts";

export const dayMs = 86_400_000;

/** The UTC day of a timestamp, as a Unix day number. */
export const dayOf = (epochMs: number) => Math.floor(epochMs / dayMs);

export function partitionNameOf(day: number): string {
  return `transfers_${new Date(day * dayMs).toISOString().slice(0, 10).replaceAll("-", "")}`;
}

function boundOf(day: number): string {
  // An explicit +00: a bound without a zone would be read in the session's time zone.
  return `${new Date(day * dayMs).toISOString().slice(0, 10)} 00:00:00+00`;
}

export function createPartitionSql(day: number): string {
  // Names and bounds are computed from an integer day, never taken from input.
  return `CREATE TABLE IF NOT EXISTS ${partitionNameOf(day)} PARTITION OF transfers
          FOR VALUES FROM ('${boundOf(day)}') TO ('${boundOf(day + 1)}')`;
}

export async function existingDays(client: Client | Pool): Promise<Set<number>> {
  const result = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i
       JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      WHERE p.relname = 'transfers'`,
  );
  const days = new Set<number>();
  for (const { name } of result.rows) {
    const m = /^transfers_(\d{4})(\d{2})(\d{2})$/.exec(name);
    if (m) days.add(dayOf(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))));
  }
  return days;
}

/**
 * Creates the missing day partitions among `days`, in a transaction of its own under an advisory
 * lock so that several appliers and migrate can race without "already exists" errors.
 */
export function ensureDayPartitions(pool: Pool, days: Iterable<number>): Promise<number[]> {
  return inTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [migrateLockKey]);
    const existing = await existingDays(client);
    const created: number[] = [];
    for (const day of new Set(days)) {
      if (existing.has(day)) continue;
      await client.query(createPartitionSql(day));
      created.push(day);
    }
    return created;
  });
}
