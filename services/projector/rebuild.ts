// `tally project --rebuild`: the views recomputed from the ledger. Each shard is read in one
// REPEATABLE READ snapshot, whose applier offsets say exactly which records its sums cover; those
// offsets become the checkpoints, so the incremental projector carries on from there.
import { assert } from "../common/assert.ts";
import type { Config } from "../common/config.ts";
import { createLogger, type Logger } from "../common/log.ts";
import { type Client, createPool, type Pool } from "../common/pg.ts";
import { withRetry } from "../common/retry.ts";
import { nextOffsets } from "../storage/applier-offsets.ts";
import { aggregateDeltas, type DeltaRow, type Projection } from "./aggregate.ts";
import { retryPolicyOf } from "./round.ts";
import { inSnapshot } from "./shard-read.ts";
import { addBalances, addSupply } from "./views-write.ts";

export type RebuildSummary = {
  balances: number;
  assets: number;
  /** checkpoint per partition after the rebuild (-1: nothing applied yet) */
  checkpoints: Map<number, bigint>;
  rebuildMs: number;
};

const zero = { partition: 0, endOffset: 0n, wallet: null, delta: 0n, minted: 0n, burned: 0n };

type LedgerSnapshot = { rows: DeltaRow[]; offsets: Map<number, bigint> };

/** Σ credits − Σ debits per (wallet, asset), minted and burned per asset, and the offsets covered. */
async function readLedger(pool: Pool, config: Config): Promise<LedgerSnapshot> {
  return inSnapshot(pool, async (client) => {
    const wallets = await client.query<{ wallet: string; asset: string; balance: string }>(
      `SELECT wallet, asset, sum(amount)::text AS balance FROM (
         SELECT to_wallet AS wallet, asset, amount FROM transfers WHERE to_wallet IS NOT NULL
         UNION ALL
         SELECT from_wallet, asset, -amount FROM transfers WHERE from_wallet IS NOT NULL) AS moves
        GROUP BY wallet, asset`,
    );
    const assets = await client.query<{ asset: string; minted: string; burned: string }>(
      `SELECT asset,
              coalesce(sum(amount) FILTER (WHERE from_wallet IS NULL), 0)::text AS minted,
              coalesce(sum(amount) FILTER (WHERE to_wallet IS NULL), 0)::text AS burned
         FROM transfers GROUP BY asset`,
    );
    const offsets = await nextOffsets(client, config.TALLY_GROUP, config.TALLY_TOPIC);
    // Shaped as delta rows, the ledger's sums go through the same aggregation as the increments.
    const rows: DeltaRow[] = [
      ...wallets.rows.map((r) => ({ ...zero, wallet: r.wallet, asset: r.asset, delta: BigInt(r.balance) })),
      ...assets.rows.map((r) => ({
        ...zero,
        asset: r.asset,
        minted: BigInt(r.minted),
        burned: BigInt(r.burned),
      })),
    ];
    return { rows, offsets };
  });
}

/** Locks every checkpoint row of the topic: a running projector waits until the rebuild commits. */
async function lockCheckpoints(client: Client, topic: string, partitionCount: number): Promise<void> {
  await client.query(
    `INSERT INTO projector_checkpoints (topic, kafka_partition, end_offset)
     SELECT $1, p, -1 FROM generate_series(0, $2 - 1) AS p
     ON CONFLICT (topic, kafka_partition) DO NOTHING`,
    [topic, partitionCount],
  );
  await client.query(
    `SELECT kafka_partition FROM projector_checkpoints WHERE topic = $1 ORDER BY kafka_partition FOR UPDATE`,
    [topic],
  );
}

async function replaceViews(
  client: Client,
  projection: Projection,
  config: Config,
  offsets: Map<number, bigint>,
) {
  await client.query("DELETE FROM wallet_balances");
  await client.query("DELETE FROM asset_supply");
  // Into empty tables, "add" is "set": the same statements as the incremental path.
  await addBalances(client, projection.balances);
  await addSupply(client, projection.supply);
  const partitions = Array.from({ length: config.TALLY_PARTITIONS }, (_, p) => p);
  await client.query(
    `UPDATE projector_checkpoints c SET end_offset = u.next, updated_at = now()
       FROM unnest($2::int[], $3::bigint[]) AS u(p, next)
      WHERE c.topic = $1 AND c.kafka_partition = u.p`,
    [config.TALLY_TOPIC, partitions, partitions.map((p) => (offsets.get(p) ?? -1n).toString())],
  );
}

async function rebuildOnce(config: Config, viewsPool: Pool, shardPools: Pool[]): Promise<RebuildSummary> {
  const startMs = performance.now();
  const client = await viewsPool.connect();
  try {
    await client.query("BEGIN");
    // Locked before the shards are read: each snapshot is then at least as new as any checkpoint,
    // and no projector commits (or prunes past) what the rebuild is about to write.
    await lockCheckpoints(client, config.TALLY_TOPIC, config.TALLY_PARTITIONS);
    const rows: DeltaRow[] = [];
    const offsets = new Map<number, bigint>();
    for (const pool of shardPools) {
      const snapshot = await readLedger(pool, config);
      for (const row of snapshot.rows) rows.push(row);
      for (const [partition, next] of snapshot.offsets) {
        assert(!offsets.has(partition), `partition ${partition} has applier offsets on two shards`);
        offsets.set(partition, next);
      }
    }
    const projection = aggregateDeltas(rows);
    await replaceViews(client, projection, config, offsets);
    await client.query("COMMIT");
    return {
      balances: projection.balances.length,
      assets: projection.supply.length,
      checkpoints: offsets,
      rebuildMs: Math.round(performance.now() - startMs),
    };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

export async function rebuildViews(
  config: Config,
  options: { logger?: Logger } = {},
): Promise<RebuildSummary> {
  const log = options.logger ?? createLogger(config.TALLY_LOG_LEVEL, "tally-projector");
  const viewsPool = createPool(config, config.TALLY_PG_VIEWS, "tally-rebuild", 1);
  const shardPools = config.TALLY_PG_SHARDS.map((url) => createPool(config, url, "tally-rebuild", 1));
  try {
    const onRetry = (error: unknown, attempt: number, delayMs: number) =>
      log.warn({ attempt, delayMs, err: String(error) }, "rebuild: retrying");
    const summary = await withRetry(
      "rebuild views",
      retryPolicyOf(config),
      () => rebuildOnce(config, viewsPool, shardPools),
      onRetry,
    );
    log.info(
      { balances: summary.balances, assets: summary.assets, rebuild_ms: summary.rebuildMs },
      "rebuild: views replaced from the ledger",
    );
    return summary;
  } finally {
    await Promise.all([viewsPool, ...shardPools].map((p) => p.end()));
  }
}
