// The balance deltas of one test batch (test/support/projector-fixture.ts), written as the
// applier writes them: one balance_delta_chunks row (today), or legacy balance_deltas rows (an
// applier before issue #13, whose rows an upgraded projector must still read).
import type { Client } from "../../services/common/pg.ts";
import { encodeDeltaChunk } from "../../services/storage/delta-chunks.ts";

/** What a ledger row says about balances. */
export type Move = { asset: string; amount: bigint; from: string | null; to: string | null };

/** How a batch's balance deltas are written: one chunk row, or legacy rows. */
export type DeltaForm = "chunks" | "legacy";

type DeltaPlace = { topic: string; partition: number; endOffset: bigint };

/** As the applier: the batch's net per (wallet, asset) and minted/burned per asset, as rows; the entry count. */
export async function insertDeltas(
  client: Client,
  at: DeltaPlace,
  ledger: Move[],
  form: DeltaForm,
): Promise<number> {
  const balances = new Map<string, Map<string, bigint>>();
  const supply = new Map<string, { minted: bigint; burned: bigint }>();
  const credit = (wallet: string, asset: string, amount: bigint) => {
    const perWallet = balances.get(asset) ?? new Map<string, bigint>();
    perWallet.set(wallet, (perWallet.get(wallet) ?? 0n) + amount);
    balances.set(asset, perWallet);
  };
  for (const r of ledger) {
    if (r.to !== null) credit(r.to, r.asset, r.amount);
    if (r.from !== null) credit(r.from, r.asset, -r.amount);
    if (r.from === null || r.to === null) {
      const s = supply.get(r.asset) ?? { minted: 0n, burned: 0n };
      if (r.from === null) s.minted += r.amount;
      else s.burned += r.amount;
      supply.set(r.asset, s);
    }
  }
  return form === "chunks"
    ? insertChunk(client, at, balances, supply)
    : insertLegacyRows(client, at, balances, supply);
}

async function insertChunk(
  client: Client,
  at: DeltaPlace,
  balances: Map<string, Map<string, bigint>>,
  supply: Map<string, { minted: bigint; burned: bigint }>,
): Promise<number> {
  const chunk = encodeDeltaChunk(balances, supply);
  if (chunk.entryCount === 0) return 0;
  await client.query(
    `INSERT INTO balance_delta_chunks (topic, kafka_partition, end_offset, entry_count, entries)
     VALUES ($1, $2, $3, $4, $5)`,
    [at.topic, at.partition, at.endOffset, chunk.entryCount, chunk.entries],
  );
  return chunk.entryCount;
}

/** The applier before balance_delta_chunks: one row per (wallet, asset) with a non-zero net, one per asset. */
async function insertLegacyRows(
  client: Client,
  at: DeltaPlace,
  balances: Map<string, Map<string, bigint>>,
  supply: Map<string, { minted: bigint; burned: bigint }>,
): Promise<number> {
  let rows = 0;
  const insert = `INSERT INTO balance_deltas (topic, kafka_partition, end_offset, wallet, asset, delta, minted, burned)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`;
  const place = [at.topic, at.partition, at.endOffset];
  for (const [asset, perWallet] of balances) {
    for (const [wallet, delta] of perWallet) {
      if (delta === 0n) continue;
      await client.query(insert, [...place, wallet, asset, delta.toString(), "0", "0"]);
      rows++;
    }
  }
  for (const [asset, s] of supply) {
    await client.query(insert, [...place, null, asset, "0", s.minted.toString(), s.burned.toString()]);
    rows++;
  }
  return rows;
}
