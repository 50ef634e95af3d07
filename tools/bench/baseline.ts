// The two yardsticks, each in a database of its own with Tally's shard tables (day-partitioned
// `transfers`): the ceiling, a raw COPY of the load's ledger rows in one durable transaction, and
// the naive path, one transaction per event (lock the token row, insert, update, commit).
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import { copyField, copyLine } from "../../services/applier/copy.ts";
import { assert } from "../../services/common/assert.ts";
import { type Config, databaseNameOf } from "../../services/common/config.ts";
import { kindOf, type TransferEvent } from "../../services/common/event.ts";
import { type Client, createPool, ensureDatabase, type Pool } from "../../services/common/pg.ts";
import { shardDdl } from "../../services/storage/ddl.ts";
import { dayOf, ensureDayPartitions } from "../../services/storage/partitions.ts";
import { createLoad, type LoadOptions } from "../load/load.ts";
import { dropDatabase, scratchDatabaseUrl } from "./stack.ts";
import { eventsPerSecondOf } from "./stats.ts";

export type CeilingResult = {
  rows: number;
  /** encodeMs + copyMs: the ceiling */
  elapsedMs: number;
  /** the rows as COPY text, in this process */
  encodeMs: number;
  /** BEGIN, COPY, COMMIT */
  copyMs: number;
  eventsPerSecond: number;
  copyOnlyEventsPerSecond: number;
};
export type NaiveResult = {
  events: number;
  applied: number;
  expectedApplied: number;
  elapsedMs: number;
  eventsPerSecond: number;
};

const copyChunkRows = 5_000;
const ledgerColumns =
  "transfer_id, batch_id, token_id, asset, amount, from_wallet, to_wallet, prev_state, next_state, " +
  "occurred_at, kafka_partition, kafka_offset, schema_id";

/** Hands over the removal of what a case made; the run does it at the end (or keeps it). */
export type Cleanup = (what: string, remove: () => Promise<unknown>) => void;

async function withScratchDatabase<T>(
  base: Config,
  label: string,
  cleanup: Cleanup,
  work: (pool: Pool) => Promise<T>,
): Promise<T> {
  const url = scratchDatabaseUrl(base, label);
  await ensureDatabase(base, url);
  cleanup(`database ${databaseNameOf(url)}`, () => dropDatabase(url));
  const pool = createPool(base, url, "tally-bench", 1);
  try {
    for (const statement of shardDdl) await pool.query(statement);
    await checkpoint(pool);
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/** Dirty pages of earlier cases written out now, not during the next measurement. */
export async function checkpoint(pool: Pool): Promise<void> {
  await pool.query("CHECKPOINT");
}

function ledgerLine(event: TransferEvent, offset: number): string {
  return copyLine([
    event.transfer_id,
    copyField(event.batch_id),
    copyField(event.token_id),
    event.asset,
    event.amount.toString(),
    copyField(event.from_wallet),
    copyField(event.to_wallet),
    copyField(event.prev_state),
    copyField(event.next_state),
    new Date(event.occurred_at).toISOString(),
    "0",
    String(offset),
    "1",
  ]);
}

/** The load's applied events (what lands in the ledger), in chunks, with their offsets in the load. */
export function ledgerEventsOf(load: LoadOptions): {
  chunks: [TransferEvent, number][][];
  rows: number;
  days: Set<number>;
} {
  const run = createLoad(load);
  const chunks: [TransferEvent, number][][] = [];
  const days = new Set<number>();
  let chunk: [TransferEvent, number][] = [];
  let rows = 0;
  let offset = 0;
  for (const event of run.events()) {
    offset += 1;
    if (run.outcome.applied === rows) continue; // a duplicate or a double spend: no ledger row
    rows += 1;
    days.add(dayOf(event.occurred_at));
    chunk.push([event, offset - 1]);
    if (chunk.length === copyChunkRows) {
      chunks.push(chunk);
      chunk = [];
    }
  }
  if (chunk.length > 0) chunks.push(chunk);
  return { chunks, rows, days };
}

/**
 * Raw COPY of the same ledger rows, one transaction, fsync on. The rows start as events in memory,
 * as in Tally: encoding them as COPY text (timed apart) and then BEGIN, COPY, COMMIT (timed).
 * The ceiling counts both; the COPY alone is reported beside it as what the server takes.
 */
export async function runCeiling(base: Config, load: LoadOptions, cleanup: Cleanup): Promise<CeilingResult> {
  const { chunks, rows, days } = ledgerEventsOf(load);
  const encodeStartedMs = performance.now();
  const texts = chunks.map((chunk) => chunk.map(([event, offset]) => ledgerLine(event, offset)).join(""));
  const encodeMs = performance.now() - encodeStartedMs;
  return withScratchDatabase(base, "ceiling", cleanup, async (pool) => {
    await ensureDayPartitions(pool, days);
    const client = await pool.connect();
    try {
      const startedMs = performance.now();
      await client.query("BEGIN");
      const copy = client.query(copyFrom(`COPY transfers (${ledgerColumns}) FROM STDIN`));
      await pipeline(Readable.from(texts), copy);
      await client.query("COMMIT");
      const copyMs = performance.now() - startedMs;
      const { rows: counted } = await client.query<{ n: string }>("SELECT count(*)::text n FROM transfers");
      assert(Number(counted[0]!.n) === rows, "every ledger row was copied");
      return {
        rows,
        elapsedMs: Math.round(encodeMs + copyMs),
        encodeMs: Math.round(encodeMs),
        copyMs: Math.round(copyMs),
        eventsPerSecond: eventsPerSecondOf(rows, encodeMs + copyMs),
        copyOnlyEventsPerSecond: eventsPerSecondOf(rows, copyMs),
      };
    } finally {
      client.release();
    }
  });
}

/** One event in its own transaction, the way the systems Tally replaces apply it. */
async function applyNaively(client: Client, event: TransferEvent, offset: number): Promise<boolean> {
  await client.query("BEGIN");
  const { rows } = await client.query<{ owner: string | null; state: string; retired: boolean }>(
    "SELECT owner, state, retired FROM token_state WHERE token_id = $1 FOR UPDATE",
    [event.token_id],
  );
  const token = rows[0];
  const kind = kindOf(event);
  const fits =
    kind === "mint"
      ? token === undefined
      : token !== undefined &&
        !token.retired &&
        token.state === event.prev_state &&
        token.owner === event.from_wallet;
  if (!fits) {
    await client.query("ROLLBACK");
    return false;
  }
  await client.query(
    `INSERT INTO transfers (${ledgerColumns}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,0,$11,1)`,
    [
      event.transfer_id,
      event.batch_id,
      event.token_id,
      event.asset,
      event.amount.toString(),
      event.from_wallet,
      event.to_wallet,
      event.prev_state,
      event.next_state,
      new Date(event.occurred_at).toISOString(),
      offset,
    ],
  );
  if (kind === "mint") {
    await client.query(
      `INSERT INTO token_state (token_id, asset, amount, owner, state, retired, kafka_partition, last_offset)
       VALUES ($1, $2, $3, $4, $5, false, 0, $6)`,
      [event.token_id, event.asset, event.amount.toString(), event.to_wallet, event.next_state, offset],
    );
  } else {
    await client.query(
      "UPDATE token_state SET owner = $2, state = $3, retired = $4, last_offset = $5 WHERE token_id = $1",
      [event.token_id, event.to_wallet, event.next_state, kind === "burn", offset],
    );
  }
  await client.query("COMMIT");
  return true;
}

/** The first `sampleEvents` events of the same load, one transaction each. */
export async function runNaive(
  base: Config,
  load: LoadOptions,
  sampleEvents: number,
  cleanup: Cleanup,
): Promise<NaiveResult> {
  const run = createLoad(load);
  const events: TransferEvent[] = [];
  for (const event of run.events()) {
    events.push(event);
    if (events.length === sampleEvents) break;
  }
  const expectedApplied = run.outcome.applied;
  return withScratchDatabase(base, "naive", cleanup, async (pool) => {
    await ensureDayPartitions(pool, new Set(events.map((e) => dayOf(e.occurred_at))));
    const client = await pool.connect();
    try {
      let applied = 0;
      const startedMs = performance.now();
      for (const [offset, event] of events.entries())
        if (await applyNaively(client, event, offset)) applied++;
      const elapsedMs = performance.now() - startedMs;
      return {
        events: events.length,
        applied,
        expectedApplied,
        elapsedMs: Math.round(elapsedMs),
        eventsPerSecond: eventsPerSecondOf(events.length, elapsedMs),
      };
    } finally {
      client.release();
    }
  });
}
