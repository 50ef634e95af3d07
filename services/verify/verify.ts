// `tally verify`: every invariant of docs/design.md over all shards and the views. The views are read
// first, in one REPEATABLE READ snapshot; each shard after, in its own: a shard's snapshot is
// then at least as new as anything the views' checkpoints cover.
import type { Config } from "../common/config.ts";
import { createLogger, type Logger } from "../common/log.ts";
import { type Client, createPool, type Pool } from "../common/pg.ts";
import { withRetry } from "../common/retry.ts";
import { partitionsOfShard } from "../common/shards.ts";
import { loadCheckpoints } from "../storage/projector-checkpoints.ts";
import {
  type AssetTotals,
  checkBalances,
  checkSupply,
  copyShardSums,
  createLedgerTable,
  readAssetTotals,
} from "./balance-checks.ts";
import { findRepeats, withSortedCursors } from "./id-merge.ts";
import { Findings, type VerifyReport } from "./report.ts";
import { checkChains, judgeTally, readTallies, type ShardScope } from "./shard-checks.ts";

type Pools = { views: Pool; shards: Pool[] };

async function inRepeatableRead<T>(client: Client, readOnly: boolean, work: () => Promise<T>): Promise<T> {
  await client.query(`BEGIN ISOLATION LEVEL REPEATABLE READ${readOnly ? " READ ONLY" : ""}`);
  try {
    const result = await work();
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

async function withClient<T>(pool: Pool, work: (client: Client) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await work(client);
  } finally {
    client.release();
  }
}

/** One shard's own checks, and its sums into the views' temporary table. */
async function checkShard(
  pool: Pool,
  scope: ShardScope,
  views: Client,
  checkpoints: Map<number, bigint>,
  findings: Findings,
  assets: Map<string, AssetTotals>,
  applied: Map<number, AppliedRange>,
): Promise<void> {
  await withClient(pool, (shard) =>
    inRepeatableRead(shard, true, async () => {
      for (const tally of await readTallies(shard, scope)) {
        judgeTally(tally, scope, findings);
        if (tally.offsets)
          applied.set(tally.partition, { first: tally.offsets.first, next: tally.offsets.next });
      }
      await checkChains(shard, scope.shard, findings);
      await readAssetTotals(shard, checkpoints, assets);
      await copyShardSums(shard, views, checkpoints);
    }),
  );
}

export type AppliedRange = { first: bigint; next: bigint };

/** The views' checkpoints against the applier's offsets: how far the projector lags. Pure. */
export function judgeProjector(
  checkpoints: Map<number, bigint>,
  applied: Map<number, AppliedRange>,
  findings: Findings,
): void {
  let behind = 0n;
  for (const [partition, checkpoint] of checkpoints) {
    const range = applied.get(partition);
    if (range === undefined) {
      if (checkpoint >= 0n)
        findings.breach("projector", `partition ${partition}: checkpoint ${checkpoint}, no applier offsets`);
      continue;
    }
    if (checkpoint > range.next) {
      findings.breach(
        "projector",
        `partition ${partition}: checkpoint ${checkpoint} is past the applier's ${range.next}`,
      );
      continue;
    }
    // Before its first round a partition's checkpoint is -1: it lags by what was consumed since first.
    let projectedUpTo = range.first;
    if (checkpoint > projectedUpTo) projectedUpTo = checkpoint;
    const lag = range.next - projectedUpTo;
    if (lag === 0n) continue;
    behind += lag;
    findings.breach(
      "projector",
      `partition ${partition}: checkpoint ${checkpoint}, applier at ${range.next}`,
    );
  }
  if (behind > 0n) findings.note("projector", `projector behind by ${behind} records`);
}

async function checkIds(pools: Pools, findings: Findings): Promise<void> {
  const transferIds = await withSortedCursors(
    pools.shards,
    "SELECT transfer_id::text AS id FROM transfers ORDER BY transfer_id",
    (sources) => findRepeats(sources),
  );
  findings.add("transferIds", transferIds.count, transferIds.examples);
  // A token lives on one partition: its token_state row on two shards is a broken chain.
  const tokens = await withSortedCursors(
    pools.shards,
    `SELECT token_id AS id FROM token_state ORDER BY token_id COLLATE "C"`,
    (sources) => findRepeats(sources, "in token_state on shards"),
  );
  findings.add(
    "chains",
    tokens.count,
    tokens.examples.map((e) => `token ${e}`),
  );
}

async function verifyOnce(config: Config, pools: Pools): Promise<VerifyReport> {
  const startMs = performance.now();
  const findings = new Findings();
  const allPartitions = Array.from({ length: config.TALLY_PARTITIONS }, (_, p) => p);
  const shardCount = config.TALLY_PG_SHARDS.length;
  await withClient(pools.views, (views) =>
    inRepeatableRead(views, false, async () => {
      const checkpoints = await loadCheckpoints(views, config.TALLY_TOPIC, allPartitions);
      await createLedgerTable(views);
      const assets = new Map<string, AssetTotals>();
      const applied = new Map<number, AppliedRange>();
      for (const [shard, pool] of pools.shards.entries()) {
        const scope = {
          shard,
          shardCount,
          partitionCount: config.TALLY_PARTITIONS,
          group: config.TALLY_GROUP,
          topic: config.TALLY_TOPIC,
        };
        const shardCheckpoints = new Map(
          partitionsOfShard(shard, shardCount, config.TALLY_PARTITIONS).map((p) => [p, checkpoints.get(p)!]),
        );
        await checkShard(pool, scope, views, shardCheckpoints, findings, assets, applied);
      }
      await checkBalances(views, findings);
      await checkSupply(views, assets, findings);
      judgeProjector(checkpoints, applied, findings);
    }),
  );
  await checkIds(pools, findings);
  return findings.report(Math.round(performance.now() - startMs));
}

/** Checks every invariant; transient database errors restart the whole (read-only) verification. */
export async function verify(config: Config, options: { logger?: Logger } = {}): Promise<VerifyReport> {
  const log = options.logger ?? createLogger(config.TALLY_LOG_LEVEL, "tally-verify");
  const pools: Pools = {
    views: createPool(config, config.TALLY_PG_VIEWS, "tally-verify", 1),
    shards: config.TALLY_PG_SHARDS.map((url) => createPool(config, url, "tally-verify", 1)),
  };
  try {
    const policy = {
      attemptsMax: config.TALLY_RETRY_ATTEMPTS_MAX,
      backoffMsMax: config.TALLY_RETRY_BACKOFF_MS_MAX,
    };
    const onRetry = (error: unknown, attempt: number, delayMs: number) =>
      log.warn({ attempt, delayMs, err: String(error) }, "verify: retrying");
    const report = await withRetry("verify", policy, () => verifyOnce(config, pools), onRetry);
    log.info(
      {
        ok: report.ok,
        verify_ms: report.verifyMs,
        breached: report.checks.filter((c) => !c.ok).map((c) => c.key),
      },
      "verify: done",
    );
    return report;
  } finally {
    await Promise.all([pools.views, ...pools.shards].map((p) => p.end()));
  }
}
