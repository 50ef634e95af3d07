// The checks that one shard answers on its own, each one SQL statement that aggregates in the
// database (GROUP BY, window functions) and returns only counts and a few examples; the applier's
// counters come from storage/applier-offsets.ts, in the same snapshot.
import type { Client } from "../common/pg.ts";
import { type PartitionCounters, partitionCounters } from "../storage/applier-offsets.ts";
import { type CheckKey, examplesMax, type Findings } from "./report.ts";

export type ShardScope = {
  shard: number;
  shardCount: number;
  partitionCount: number;
  group: string;
  topic: string;
};

/** Per partition: the applier's counters and what the ledger and rejections actually hold. */
export type PartitionTally = {
  partition: number;
  offsets: PartitionCounters | null;
  ledger: { rows: bigint; distinctOffsets: bigint; low: bigint | null; high: bigint | null };
  rejections: { rows: bigint; low: bigint | null; high: bigint | null };
};

type RawTally = { partition: number } & Record<
  "ledger_low" | "ledger_high" | "rejection_low" | "rejection_high",
  string | null
> &
  Record<"ledger_rows" | "ledger_distinct" | "rejection_rows", string>;

const big = (text: string | null) => (text === null ? null : BigInt(text));

/**
 * Per partition with offsets, ledger rows or rejections: the applier's counters (read from
 * applier_offsets by storage/applier-offsets.ts) beside what the ledger and rejections hold. Both
 * reads are in the caller's snapshot (verify runs them inside REPEATABLE READ).
 */
export async function readTallies(client: Client, scope: ShardScope): Promise<PartitionTally[]> {
  const counters = await partitionCounters(client, scope.group, scope.topic);
  const result = await client.query<RawTally>(
    `WITH l AS (SELECT kafka_partition AS p, count(*) AS n, count(DISTINCT kafka_offset) AS d,
                       min(kafka_offset) AS lo, max(kafka_offset) AS hi
                  FROM transfers GROUP BY kafka_partition),
          r AS (SELECT kafka_partition AS p, count(*) AS n, min(kafka_offset) AS lo, max(kafka_offset) AS hi
                  FROM rejected_transfers WHERE topic = $1 GROUP BY kafka_partition)
     SELECT coalesce(l.p, r.p) AS partition,
            coalesce(l.n, 0)::text AS ledger_rows, coalesce(l.d, 0)::text AS ledger_distinct,
            l.lo::text AS ledger_low, l.hi::text AS ledger_high,
            coalesce(r.n, 0)::text AS rejection_rows, r.lo::text AS rejection_low, r.hi::text AS rejection_high
       FROM l FULL JOIN r ON r.p = l.p`,
    [scope.topic],
  );
  const rows = new Map(result.rows.map((r) => [r.partition, r]));
  const partitions = [...new Set([...counters.keys(), ...rows.keys()])].sort((a, b) => a - b);
  return partitions.map((partition) => {
    const r = rows.get(partition);
    return {
      partition,
      offsets: counters.get(partition) ?? null,
      ledger: {
        rows: BigInt(r?.ledger_rows ?? 0),
        distinctOffsets: BigInt(r?.ledger_distinct ?? 0),
        low: big(r?.ledger_low ?? null),
        high: big(r?.ledger_high ?? null),
      },
      rejections: {
        rows: BigInt(r?.rejection_rows ?? 0),
        low: big(r?.rejection_low ?? null),
        high: big(r?.rejection_high ?? null),
      },
    };
  });
}

/** The offset invariants of one partition, evaluated from its tally. Pure. */
export function judgeTally(tally: PartitionTally, scope: ShardScope, findings: Findings): void {
  const p = `partition ${tally.partition}`;
  if (tally.partition >= scope.partitionCount || tally.partition % scope.shardCount !== scope.shard) {
    findings.breach("placement", `${p} has rows on shard ${scope.shard}, which does not own it`);
  }
  const o = tally.offsets;
  if (o === null) {
    findings.breach(
      "counts",
      `${p}: ${tally.ledger.rows} ledger and ${tally.rejections.rows} rejection rows, no applier offsets`,
    );
    return;
  }
  const consumed = o.next - o.first;
  if (o.applied + o.duplicates + o.rejected + o.skipped !== consumed) {
    findings.breach(
      "consumed",
      `${p}: applied ${o.applied} + duplicates ${o.duplicates} + rejected ${o.rejected} + skipped by an operator ${o.skipped} ≠ ${consumed} consumed (${o.first}..${o.next})`,
    );
  }
  if (o.applied !== tally.ledger.rows)
    findings.breach("counts", `${p}: applied_count ${o.applied}, ${tally.ledger.rows} ledger rows`);
  if (o.rejected !== tally.rejections.rows) {
    findings.breach("counts", `${p}: rejected_count ${o.rejected}, ${tally.rejections.rows} rejection rows`);
  }
  if (tally.ledger.distinctOffsets !== tally.ledger.rows) {
    findings.breach(
      "placement",
      `${p}: ${tally.ledger.rows - tally.ledger.distinctOffsets} ledger rows share an offset`,
    );
  }
  for (const [what, range] of [
    ["ledger", tally.ledger],
    ["rejection", tally.rejections],
  ] as const) {
    if (range.low !== null && range.high !== null && (range.low < o.first || range.high >= o.next)) {
      findings.breach(
        "placement",
        `${p}: ${what} offsets ${range.low}..${range.high} outside consumed ${o.first}..${o.next - 1n}`,
      );
    }
  }
}

type Problem = { token_id: string; kafka_offset: string | null; problem: string; total: string };

async function collectProblems(
  client: Client,
  key: CheckKey,
  sql: string,
  findings: Findings,
  shard: number,
) {
  const result = await client.query<Problem>(
    `SELECT token_id, kafka_offset::text AS kafka_offset, problem, count(*) OVER () AS total
       FROM (${sql}) AS problems WHERE problem IS NOT NULL
      ORDER BY token_id, kafka_offset LIMIT ${examplesMax}`,
  );
  const total = Number(result.rows[0]?.total ?? 0);
  const examples = result.rows.map(
    (r) =>
      `token ${r.token_id}${r.kafka_offset === null ? "" : ` at offset ${r.kafka_offset}`} (shard ${shard}): ${r.problem}`,
  );
  findings.add(key, total, examples);
}

/** Each row against the one before it, per token in offset order (LAG): the chain's links. */
const chainSql = `
  SELECT token_id, kafka_offset, CASE
      WHEN n = 1 AND from_wallet IS NOT NULL THEN 'starts without a mint'
      WHEN n = 1 AND prev_state IS NOT NULL THEN format('mint with prev_state %L', prev_state)
      WHEN n > 1 AND kafka_partition <> prev_partition THEN 'rows on two partitions'
      WHEN n > 1 AND from_wallet IS NULL THEN 'minted again'
      WHEN n > 1 AND prev_owner IS NULL THEN 'moved after its burn'
      WHEN n > 1 AND prev_state IS DISTINCT FROM prev_next THEN format('prev_state %L, previous next_state %L', prev_state, prev_next)
      WHEN n > 1 AND from_wallet <> prev_owner THEN format('from_wallet %L, previous owner %L', from_wallet, prev_owner)
      WHEN n > 1 AND (asset <> prev_asset OR amount <> prev_amount) THEN 'asset or amount changed'
    END AS problem
  FROM (SELECT token_id, kafka_partition, kafka_offset, asset, amount, from_wallet, prev_state,
               row_number() OVER w AS n,
               lag(kafka_partition) OVER w AS prev_partition, lag(next_state) OVER w AS prev_next,
               lag(to_wallet) OVER w AS prev_owner, lag(asset) OVER w AS prev_asset, lag(amount) OVER w AS prev_amount
          FROM transfers WINDOW w AS (PARTITION BY token_id ORDER BY kafka_offset)) AS links`;

/** token_state against the last row of each chain (DISTINCT ON), both ways (FULL JOIN). */
const tokenStateSql = `
  SELECT coalesce(s.token_id, l.token_id) AS token_id, l.kafka_offset, CASE
      WHEN s.token_id IS NULL THEN 'ledger rows but no token_state'
      WHEN l.token_id IS NULL THEN 'token_state but no ledger rows'
      WHEN s.state <> l.next_state THEN format('state %L, chain ends at %L', s.state, l.next_state)
      WHEN s.owner IS DISTINCT FROM l.to_wallet THEN format('owner %L, chain ends with %L', s.owner, l.to_wallet)
      WHEN s.retired <> (l.to_wallet IS NULL) THEN format('retired %s, chain says %s', s.retired, l.to_wallet IS NULL)
      WHEN s.asset <> l.asset OR s.amount <> l.amount THEN 'asset or amount differ from the chain'
      WHEN s.kafka_partition <> l.kafka_partition OR s.last_offset <> l.kafka_offset
        THEN format('at %s:%s, chain ends at %s:%s', s.kafka_partition, s.last_offset, l.kafka_partition, l.kafka_offset)
    END AS problem
  FROM token_state s
  FULL JOIN (SELECT DISTINCT ON (token_id) token_id, asset, amount, to_wallet, next_state, kafka_partition, kafka_offset
               FROM transfers ORDER BY token_id, kafka_offset DESC) AS l ON l.token_id = s.token_id`;

export async function checkChains(client: Client, shard: number, findings: Findings): Promise<void> {
  await collectProblems(client, "chains", chainSql, findings, shard);
  await collectProblems(client, "tokenState", tokenStateSql, findings, shard);
}
