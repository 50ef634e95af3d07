// Day partitions of `transfers`: one per UTC day, made ahead by migrate and on demand by the applier
// before a batch writes into a day that has none (a row without a partition would fail the whole COPY).
import { type Client, inTransaction, type Pool } from "../common/pg.ts";
import { migrateLockKey } from "./ddl.ts";

export const dayMs = 86_400_000;
/** Day partitions are named transfers_YYYYMMDD: days from 1970-01-01 to 9999-12-31 only. */
export const dayMin = 0;
export const dayMax = Math.floor(Date.UTC(9999, 11, 31) / dayMs);
/**
 * Day partitions one transaction creates at most. Each CREATE holds locks until the commit, so a
 * backfill over thousands of days would exhaust the lock table (max_locks_per_transaction) in one go.
 */
export const dayPartitionsPerTransactionMax = 32;

/** The UTC day of a timestamp, as a Unix day number. */
export const dayOf = (epochMs: number) => Math.floor(epochMs / dayMs);

export const isNamedDay = (day: number) => Number.isInteger(day) && day >= dayMin && day <= dayMax;

export function partitionNameOf(day: number): string {
  if (!isNamedDay(day)) throw new RangeError(`day ${day} is outside 1970-01-01..9999-12-31`);
  return `transfers_${new Date(day * dayMs).toISOString().slice(0, 10).replaceAll("-", "")}`;
}

function boundOf(day: number): string {
  // An explicit +00: a bound without a zone would be read in the session's time zone. The upper
  // bound of 9999-12-31 is 10000-01-01, which toISOString writes with a sign: spell it out.
  if (day === dayMax + 1) return "10000-01-01 00:00:00+00";
  return `${new Date(day * dayMs).toISOString().slice(0, 10)} 00:00:00+00`;
}

export function createPartitionSql(day: number): string {
  // Names and bounds are computed from an integer day, never taken from input.
  return `CREATE TABLE IF NOT EXISTS ${partitionNameOf(day)} PARTITION OF transfers
          FOR VALUES FROM ('${boundOf(day)}') TO ('${boundOf(day + 1)}')`;
}

const dayNamePattern = /^transfers_(\d{4})(\d{2})(\d{2})$/;

function dayOfName(name: string): number | null {
  const m = dayNamePattern.exec(name);
  return m ? dayOf(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : null;
}

/** attached: days `transfers` routes rows to; detached: a day's table exists but is not attached (archived). */
export type DayCatalogue = { attached: Set<number>; detached: Set<number> };

export async function dayCatalogue(client: Client | Pool): Promise<DayCatalogue> {
  const result = await client.query<{ name: string; attached: boolean }>(
    `SELECT c.relname AS name,
            EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                     WHERE i.inhrelid = c.oid AND p.relname = 'transfers') AS attached
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname ~ '^transfers_[0-9]{8}$'`,
  );
  const catalogue: DayCatalogue = { attached: new Set(), detached: new Set() };
  for (const { name, attached } of result.rows) {
    const day = dayOfName(name);
    if (day !== null) (attached ? catalogue.attached : catalogue.detached).add(day);
  }
  return catalogue;
}

export async function existingDays(client: Client | Pool): Promise<Set<number>> {
  return (await dayCatalogue(client)).attached;
}

/**
 * Creates the missing day partitions among `days`, at most dayPartitionsPerTransactionMax per
 * transaction (`afterStep` runs between transactions), each under an advisory lock so that several appliers and migrate can race without
 * "already exists" errors. A day whose table exists detached (archived) is left alone: CREATE ... IF
 * NOT EXISTS would do nothing and every row of that day would fail, so it is reported instead.
 */
export async function prepareDays(
  pool: Pool,
  days: Iterable<number>,
  afterStep?: () => Promise<void>,
): Promise<{ created: number[]; detached: number[] }> {
  const wanted = [...new Set(days)].sort((a, b) => a - b);
  for (const day of wanted) if (!isNamedDay(day)) throw new RangeError(`day ${day} has no partition name`);
  const created: number[] = [];
  const detached: number[] = [];
  for (let start = 0; start < wanted.length; start += dayPartitionsPerTransactionMax) {
    const step = wanted.slice(start, start + dayPartitionsPerTransactionMax);
    await inTransaction(pool, async (client) => {
      await client.query("SELECT pg_advisory_xact_lock($1)", [migrateLockKey]);
      const catalogue = await dayCatalogue(client);
      for (const day of step) {
        if (catalogue.attached.has(day)) continue;
        if (catalogue.detached.has(day)) {
          detached.push(day);
          continue;
        }
        await client.query(createPartitionSql(day));
        created.push(day);
      }
    });
    // A long backfill takes minutes of steps: the caller heartbeats here, or its group drops it.
    if (start + dayPartitionsPerTransactionMax < wanted.length) await afterStep?.();
  }
  return { created, detached };
}

/** The days created (see prepareDays; detached days are neither created nor reported here). */
export async function ensureDayPartitions(pool: Pool, days: Iterable<number>): Promise<number[]> {
  return (await prepareDays(pool, days)).created;
}
