// What the applier stored (applier_offsets and the ledger, per partition) and what the topic holds
// (high watermarks): the states a fault test reads to show where a fault landed and what it left.
import { expect } from "vitest";
import { createKafka } from "../../services/common/kafka.ts";
import { type Client, createPool } from "../../services/common/pg.ts";
import type { TestStack } from "./stack.ts";

export type StoredPartition = {
  next: bigint;
  first: bigint;
  applied: bigint;
  duplicates: bigint;
  rejected: bigint;
  ledgerRows: bigint;
  rejectedRows: bigint;
};

const readLockWaitMs = 30_000;
const lockNotAvailable = "55P03";

/** The sessions that hold a lock another one waits for, as application, state and statement. */
async function lockHolders(client: Client): Promise<string> {
  const { rows } = await client.query<{ holder: string }>(
    `SELECT DISTINCT format('%s (%s: %s)', h.application_name, h.state, left(h.query, 200)) holder
       FROM pg_stat_activity w CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) b(pid)
       JOIN pg_stat_activity h ON h.pid = b.pid`,
  );
  return rows.map((r) => r.holder).join("; ") || "no session any more";
}

/** applier_offsets with the ledger's and rejected_transfers' row counts, per partition, across the shards. */
export async function storedPartitions(s: TestStack): Promise<Map<number, StoredPartition>> {
  const partitions = new Map<number, StoredPartition>();
  for (const url of s.config.TALLY_PG_SHARDS) {
    const pool = createPool(s.config, url, "test", 1);
    const client = await pool.connect();
    try {
      // One snapshot for the three reads: appliers may be committing meanwhile. Reads wait only for
      // a lock a writer holds to the end of its DDL (a day partition being made); a paused process
      // holding one would make them wait forever, so they give up and name it instead.
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      await client.query(`SET LOCAL lock_timeout = '${readLockWaitMs}ms'`);
      const offsets = await client.query(
        `SELECT "partition", next_offset::text n, first_offset::text f, applied_count::text a,
                duplicate_count::text d, rejected_count::text r FROM applier_offsets
          WHERE "group" = $1 AND topic = $2`,
        [s.config.TALLY_GROUP, s.config.TALLY_TOPIC],
      );
      const ledger = await client.query(
        "SELECT kafka_partition p, count(*)::text c FROM transfers GROUP BY kafka_partition",
      );
      const rejected = await client.query(
        "SELECT kafka_partition p, count(*)::text c FROM rejected_transfers GROUP BY kafka_partition",
      );
      const rows = new Map<number, bigint>(ledger.rows.map((r) => [r.p, BigInt(r.c)]));
      const rejectedRows = new Map<number, bigint>(rejected.rows.map((r) => [r.p, BigInt(r.c)]));
      for (const r of offsets.rows) {
        partitions.set(r.partition, {
          next: BigInt(r.n),
          first: BigInt(r.f),
          applied: BigInt(r.a),
          duplicates: BigInt(r.d),
          rejected: BigInt(r.r),
          ledgerRows: rows.get(r.partition) ?? 0n,
          rejectedRows: rejectedRows.get(r.partition) ?? 0n,
        });
      }
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      if ((error as { code?: string }).code !== lockNotAvailable) throw error;
      throw new Error(`storedPartitions: ${(error as Error).message}; held by ${await lockHolders(client)}`);
    } finally {
      client.release();
      await pool.end();
    }
  }
  return partitions;
}

/** The topic's high watermark per partition. */
export async function highWatermarks(s: TestStack): Promise<Map<number, bigint>> {
  const admin = createKafka(s.config, "test-admin").admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(s.config.TALLY_TOPIC);
    return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  } finally {
    await admin.disconnect();
  }
}

/** Σ stored next offsets (partitions without a row count as 0: a topic here starts at offset 0). */
export const storedTotal = (stored: Map<number, StoredPartition>): bigint =>
  [...stored.values()].reduce((sum, p) => sum + p.next, 0n);

/**
 * Every stored partition counted exactly (applied + duplicates + rejected = consumed, one ledger
 * row per applied record, one rejection row per rejected one); and the stream stopped short of the
 * topic's end: the partitions still pending, by name. Returns them.
 */
export async function expectExactAndPending(s: TestStack): Promise<{ pending: number[]; applied: bigint }> {
  const [stored, highs] = [await storedPartitions(s), await highWatermarks(s)];
  expectExactCounts(stored);
  const pending = [...highs].filter(([p, high]) => (stored.get(p)?.next ?? 0n) < high).map(([p]) => p);
  expect(pending.length, "partitions still to apply when the fault landed").toBeGreaterThan(0);
  return { pending, applied: storedTotal(stored) };
}

/** applied + duplicates + rejected = consumed, and the rows behind each count, partition by partition. */
export function expectExactCounts(stored: Map<number, StoredPartition>): void {
  for (const [partition, p] of stored) {
    expect({
      partition,
      counted: p.applied + p.duplicates + p.rejected,
      ledgerRows: p.ledgerRows,
      rejectedRows: p.rejectedRows,
    }).toEqual({ partition, counted: p.next - p.first, ledgerRows: p.applied, rejectedRows: p.rejected });
  }
}
