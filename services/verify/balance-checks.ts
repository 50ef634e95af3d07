// Balances and supply: the ledger's sums per (wallet, asset) are computed on each shard, streamed
// into a temporary table of the views database, and compared there in SQL, so neither side is
// ever held in memory whole. The views are compared with the part of the ledger their
// checkpoints cover (offsets below the checkpoint), which makes the check exact even while the
// projector lags; the lag itself is the projector check.

import { assert } from "../common/assert.ts";
import type { Client } from "../common/pg.ts";
import { examplesMax, type Findings } from "./report.ts";

export type AssetTotals = { minted: bigint; burned: bigint; coveredMinted: bigint; coveredBurned: bigint };

const pageRowsMax = 10_000;

/** The shard's transfers joined to the views' checkpoints: `covered` = already in the views. */
const coveredRows = `
  SELECT t.*, (t.kafka_offset < c.checkpoint) IS TRUE AS covered
    FROM transfers t LEFT JOIN unnest($1::int[], $2::bigint[]) AS c(p, checkpoint) ON c.p = t.kafka_partition`;

function checkpointParams(checkpoints: Map<number, bigint>): [number[], string[]] {
  const entries = [...checkpoints];
  return [entries.map(([p]) => p), entries.map(([, c]) => c.toString())];
}

export async function createLedgerTable(views: Client): Promise<void> {
  await views.query(
    `CREATE TEMP TABLE verify_ledger (wallet text NOT NULL, asset text NOT NULL,
       balance numeric NOT NULL, covered numeric NOT NULL) ON COMMIT DROP`,
  );
}

/** Σ credits − Σ debits per (wallet, asset) of one shard, into the views' temporary table. */
export async function copyShardSums(
  shard: Client,
  views: Client,
  checkpoints: Map<number, bigint>,
): Promise<number> {
  await shard.query(
    `DECLARE verify_sums NO SCROLL CURSOR FOR
     SELECT m.wallet, t.asset, sum(m.amount)::text AS balance,
            coalesce(sum(m.amount) FILTER (WHERE t.covered), 0)::text AS covered
       FROM (${coveredRows}) AS t
       -- one scan: each row credits its to_wallet and debits its from_wallet
       CROSS JOIN LATERAL (VALUES (t.to_wallet, t.amount), (t.from_wallet, -t.amount)) AS m(wallet, amount)
      WHERE m.wallet IS NOT NULL
      GROUP BY m.wallet, t.asset`,
    checkpointParams(checkpoints),
  );
  let rows = 0;
  for (;;) {
    const page = await shard.query<{ wallet: string; asset: string; balance: string; covered: string }>(
      `FETCH ${pageRowsMax} FROM verify_sums`,
    );
    if (page.rows.length === 0) break;
    rows += page.rows.length;
    await views.query(
      `INSERT INTO verify_ledger (wallet, asset, balance, covered)
       SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::numeric[])`,
      [
        page.rows.map((r) => r.wallet),
        page.rows.map((r) => r.asset),
        page.rows.map((r) => r.balance),
        page.rows.map((r) => r.covered),
      ],
    );
  }
  await shard.query("CLOSE verify_sums");
  return rows;
}

/** Minted and burned per asset on one shard, in all and as far as the checkpoints cover. */
export async function readAssetTotals(
  shard: Client,
  checkpoints: Map<number, bigint>,
  into: Map<string, AssetTotals>,
): Promise<void> {
  const result = await shard.query<Record<"asset" | "minted" | "burned" | "cminted" | "cburned", string>>(
    `SELECT asset,
            coalesce(sum(amount) FILTER (WHERE from_wallet IS NULL), 0)::text AS minted,
            coalesce(sum(amount) FILTER (WHERE to_wallet IS NULL), 0)::text AS burned,
            coalesce(sum(amount) FILTER (WHERE from_wallet IS NULL AND covered), 0)::text AS cminted,
            coalesce(sum(amount) FILTER (WHERE to_wallet IS NULL AND covered), 0)::text AS cburned
       FROM (${coveredRows}) AS t GROUP BY asset`,
    checkpointParams(checkpoints),
  );
  for (const r of result.rows) {
    const t = into.get(r.asset) ?? { minted: 0n, burned: 0n, coveredMinted: 0n, coveredBurned: 0n };
    t.minted += BigInt(r.minted);
    t.burned += BigInt(r.burned);
    t.coveredMinted += BigInt(r.cminted);
    t.coveredBurned += BigInt(r.cburned);
    into.set(r.asset, t);
  }
}

type Example = { line: string; total: string };

async function countAndExamples(views: Client, sql: string): Promise<{ total: number; examples: string[] }> {
  const result = await views.query<Example>(
    `SELECT line, count(*) OVER () AS total FROM (${sql}) AS found ORDER BY line LIMIT ${examplesMax}`,
  );
  return { total: Number(result.rows[0]?.total ?? 0), examples: result.rows.map((r) => r.line) };
}

/** Per (wallet, asset) over all shards; then the views against it. A zero balance may be absent. */
export async function checkBalances(views: Client, findings: Findings): Promise<void> {
  await views.query(
    `CREATE TEMP TABLE verify_ledger_sums ON COMMIT DROP AS
     SELECT wallet, asset, sum(balance) AS balance, sum(covered) AS covered FROM verify_ledger GROUP BY wallet, asset`,
  );
  const mismatched = await countAndExamples(
    views,
    `SELECT format('wallet %s %s: view %s, ledger %s', coalesce(l.wallet, v.wallet), coalesce(l.asset, v.asset),
                   coalesce(v.balance, 0), coalesce(l.covered, 0)) AS line
       FROM verify_ledger_sums l FULL JOIN wallet_balances v ON v.wallet = l.wallet AND v.asset = l.asset
      WHERE coalesce(l.covered, 0) <> coalesce(v.balance, 0)`,
  );
  findings.add("balances", mismatched.total, mismatched.examples);
  const negative = await countAndExamples(
    views,
    `SELECT format('wallet %s %s: %s in the ledger', wallet, asset, balance) AS line
       FROM verify_ledger_sums WHERE balance < 0
     UNION ALL
     SELECT format('wallet %s %s: %s in the view', wallet, asset, balance) FROM wallet_balances WHERE balance < 0`,
  );
  findings.add("negative", negative.total, negative.examples);
}

/** Σ balances per asset against minted − burned, in the ledger and in the views; and asset_supply. */
export async function checkSupply(
  views: Client,
  ledger: Map<string, AssetTotals>,
  findings: Findings,
): Promise<void> {
  const result = await views.query<Record<"asset" | "ledger_sum" | "view_sum", string> & SupplyRow>(
    `WITH l AS (SELECT asset, sum(balance) AS s FROM verify_ledger_sums GROUP BY asset),
          v AS (SELECT asset, sum(balance) AS s FROM wallet_balances GROUP BY asset),
          assets AS (SELECT asset FROM l UNION SELECT asset FROM v UNION SELECT asset FROM asset_supply)
     SELECT a.asset, coalesce(l.s, 0)::text AS ledger_sum, coalesce(v.s, 0)::text AS view_sum,
            s.minted::text AS minted, s.burned::text AS burned, s.supply::text AS supply
       FROM assets a LEFT JOIN l USING (asset) LEFT JOIN v USING (asset) LEFT JOIN asset_supply s USING (asset)
      ORDER BY a.asset`,
  );
  const seen = new Set<string>();
  for (const row of result.rows) {
    seen.add(row.asset);
    const totals = ledger.get(row.asset) ?? { minted: 0n, burned: 0n, coveredMinted: 0n, coveredBurned: 0n };
    judgeAsset(row, BigInt(row.ledger_sum), BigInt(row.view_sum), totals, findings);
  }
  for (const asset of ledger.keys()) assert(seen.has(asset), `asset ${asset} of the ledger was compared`);
}

type SupplyRow = { asset: string; minted: string | null; burned: string | null; supply: string | null };

/** One asset's supply invariants. Pure. */
export function judgeAsset(
  row: SupplyRow,
  ledgerSum: bigint,
  viewSum: bigint,
  totals: AssetTotals,
  findings: Findings,
): void {
  const a = row.asset;
  if (ledgerSum !== totals.minted - totals.burned) {
    findings.breach(
      "supplySum",
      `${a}: ledger Σ balances ${ledgerSum}, minted − burned ${totals.minted - totals.burned}`,
    );
  }
  const minted = BigInt(row.minted ?? "0");
  const burned = BigInt(row.burned ?? "0");
  const supply = BigInt(row.supply ?? "0");
  if (viewSum !== supply || supply !== minted - burned) {
    findings.breach(
      "supplySum",
      `${a}: view Σ balances ${viewSum}, asset_supply ${supply} = ${minted} − ${burned}?`,
    );
  }
  if (minted !== totals.coveredMinted || burned !== totals.coveredBurned) {
    findings.breach(
      "supplyView",
      `${a}: asset_supply minted ${minted} burned ${burned}, ledger ${totals.coveredMinted} and ${totals.coveredBurned}`,
    );
  }
}
