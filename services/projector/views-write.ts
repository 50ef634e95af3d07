// Writing the views: balances, supply and checkpoints move in one transaction, and the checkpoint
// update is a compare-and-set, so two projectors racing cannot count the same batch twice.
import { assert } from "../common/assert.ts";
import { beginKeyLookups, type Client, type Pool } from "../common/pg.ts";
import { arrayLiteral } from "../common/pg-arrays.ts";
import type { BalanceChange, Projection, SupplyChange } from "./aggregate.ts";

/** Rows per statement: bounds the size of one parameter array and of one statement's work. */
export const rowsPerStatementMax = 10_000;

/** Creates the missing checkpoint rows at -1, so that every later update is a compare-and-set. */
export async function ensureCheckpoints(pool: Pool, topic: string, partitions: number[]): Promise<void> {
  await pool.query(
    `INSERT INTO projector_checkpoints (topic, kafka_partition, end_offset)
     SELECT $1, p, -1 FROM unnest($2::int[]) AS u(p)
     ON CONFLICT (topic, kafka_partition) DO NOTHING`,
    [topic, partitions],
  );
}

export type CheckpointMove = { partition: number; from: bigint; to: bigint };

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += rowsPerStatementMax)
    out.push(items.slice(i, i + rowsPerStatementMax));
  return out;
}

function assertSameLengths(arrays: unknown[][]): void {
  const length = arrays[0]!.length;
  assert(
    arrays.every((a) => a.length === length),
    "every column array of an unnest has the same length",
  );
}

/**
 * balance += delta per (wallet, asset), in the given (sorted) order. A balance that reaches zero
 * is deleted: the applier writes no delta for a wallet whose moves in a batch net to zero, so a
 * zero row would exist or not depending on how records fell into batches. With no zero rows,
 * the incremental views and a rebuild from the ledger hold exactly the same rows.
 */
export async function addBalances(client: Client, changes: BalanceChange[]): Promise<void> {
  for (const chunk of chunks(changes)) {
    const columns = [
      chunk.map((c) => c.wallet),
      chunk.map((c) => c.asset),
      chunk.map((c) => c.delta.toString()),
    ];
    assertSameLengths(columns);
    const emptied = await client.query<{ wallet: string; asset: string }>(
      `WITH upserted AS (
         INSERT INTO wallet_balances (wallet, asset, balance)
         SELECT w, a, d FROM unnest($1::text[], $2::text[], $3::numeric[]) WITH ORDINALITY AS u(w, a, d, n)
          ORDER BY n
         ON CONFLICT (wallet, asset) DO UPDATE
           SET balance = wallet_balances.balance + EXCLUDED.balance, updated_at = now()
         RETURNING wallet, asset, balance)
       SELECT wallet, asset FROM upserted WHERE balance = 0`,
      columns.map(arrayLiteral),
    );
    if (emptied.rows.length === 0) continue;
    // A separate statement: within one, the DELETE would not see the rows the INSERT wrote.
    await client.query(
      `DELETE FROM wallet_balances b USING unnest($1::text[], $2::text[]) AS u(w, a)
        WHERE b.wallet = u.w AND b.asset = u.a AND b.balance = 0`,
      [arrayLiteral(emptied.rows.map((r) => r.wallet)), arrayLiteral(emptied.rows.map((r) => r.asset))],
    );
  }
}

/** minted and burned += the changes per asset; supply follows as minted − burned. */
export async function addSupply(client: Client, changes: SupplyChange[]): Promise<void> {
  for (const chunk of chunks(changes)) {
    const columns = [
      chunk.map((c) => c.asset),
      chunk.map((c) => c.minted.toString()),
      chunk.map((c) => c.burned.toString()),
    ];
    assertSameLengths(columns);
    await client.query(
      `INSERT INTO asset_supply (asset, minted, burned, supply)
       SELECT a, m, b, m - b FROM unnest($1::text[], $2::numeric[], $3::numeric[]) WITH ORDINALITY AS u(a, m, b, n)
        ORDER BY n
       ON CONFLICT (asset) DO UPDATE
         SET minted = asset_supply.minted + EXCLUDED.minted,
             burned = asset_supply.burned + EXCLUDED.burned,
             supply = (asset_supply.minted + EXCLUDED.minted) - (asset_supply.burned + EXCLUDED.burned),
             updated_at = now()`,
      columns.map(arrayLiteral),
    );
  }
}

/**
 * Moves the checkpoints if, and only if, they still hold the values the round started from. Runs
 * first in the transaction: the row locks it takes make a racing projector wait here, then see
 * the moved checkpoint and back off, before either touches a balance.
 */
export async function compareAndSetCheckpoints(
  client: Client,
  topic: string,
  moves: CheckpointMove[],
): Promise<boolean> {
  const sorted = [...moves].sort((a, b) => a.partition - b.partition);
  const columns = [
    sorted.map((m) => m.partition),
    sorted.map((m) => m.from.toString()),
    sorted.map((m) => m.to.toString()),
  ];
  assertSameLengths(columns);
  const result = await client.query(
    `UPDATE projector_checkpoints c SET end_offset = u.next, updated_at = now()
       FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS u(p, previous, next)
      WHERE c.topic = $1 AND c.kafka_partition = u.p AND c.end_offset = u.previous`,
    [topic, ...columns],
  );
  return result.rowCount === sorted.length;
}

export type CommitOutcome = "committed" | "conflict";

/** The round's one views transaction. "conflict": another projector got there first; reload. */
export async function commitProjection(
  pool: Pool,
  topic: string,
  moves: CheckpointMove[],
  projection: Projection,
): Promise<CommitOutcome> {
  assert(moves.length > 0, "a commit moves at least one checkpoint");
  const client = await pool.connect();
  try {
    // The emptied balances' DELETE joins a round's wallets to wallet_balances: by its key.
    await client.query(beginKeyLookups);
    if (!(await compareAndSetCheckpoints(client, topic, moves))) {
      await client.query("ROLLBACK");
      return "conflict";
    }
    await addBalances(client, projection.balances);
    await addSupply(client, projection.supply);
    await client.query("COMMIT");
    return "committed";
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
