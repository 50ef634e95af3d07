// The chunk's balance deltas for the projector, in the same transaction as its ledger rows: one
// balance_delta_chunks row (a line per wallet and asset) once the shard's projectors are declared
// to read it, else a balance_deltas row per wallet and asset, which projectors of every release
// read (storage/delta-readers.ts says why the format waits for that declaration).
import type { Client, Pool } from "../common/pg.ts";
import { encodeDeltaChunk } from "../storage/delta-chunks.ts";
import { chunkReaderDeclared } from "../storage/delta-readers.ts";
import type { ChunkPlan } from "./plan.ts";

/** The partition a chunk belongs to (write.ts's PartitionRef, which imports this module). */
type PartitionRef = { topic: string; partition: number };

/** Shards whose projectors read chunk rows: a declaration is never taken back, so it is asked once. */
const chunkReadersDeclared = new WeakSet<Pool>();

export async function writeBalanceDeltas(
  pool: Pool,
  client: Client,
  ref: PartitionRef,
  plan: ChunkPlan,
): Promise<void> {
  // Asked inside the chunk's transaction until it is declared: one small query per chunk, only
  // on a shard upgraded from a release before balance_delta_chunks and until its projector starts.
  if (!chunkReadersDeclared.has(pool) && (await chunkReaderDeclared(client))) chunkReadersDeclared.add(pool);
  if (chunkReadersDeclared.has(pool)) await insertDeltaChunk(client, ref, plan);
  else await insertDeltaRows(client, ref, plan);
}

async function insertDeltaChunk(client: Client, ref: PartitionRef, plan: ChunkPlan): Promise<void> {
  const chunk = encodeDeltaChunk(plan.balanceDeltas, plan.supplyDeltas);
  if (chunk.entryCount === 0) return;
  await client.query(
    `INSERT INTO balance_delta_chunks (topic, kafka_partition, end_offset, entry_count, entries)
     VALUES ($1, $2, $3, $4, $5)`,
    [ref.topic, ref.partition, plan.nextOffset.toString(), chunk.entryCount, chunk.entries],
  );
}

/** One row per (wallet, asset) and one per asset for minted and burned: the format of every release. */
async function insertDeltaRows(client: Client, ref: PartitionRef, plan: ChunkPlan): Promise<void> {
  const wallets: (string | null)[] = [];
  const assets: string[] = [];
  const deltas: string[] = [];
  const minted: string[] = [];
  const burned: string[] = [];
  for (const [asset, perWallet] of plan.balanceDeltas) {
    for (const [wallet, delta] of perWallet) {
      if (delta === 0n) continue;
      wallets.push(wallet);
      assets.push(asset);
      deltas.push(delta.toString());
      minted.push("0");
      burned.push("0");
    }
  }
  for (const [asset, supply] of plan.supplyDeltas) {
    wallets.push(null);
    assets.push(asset);
    deltas.push("0");
    minted.push(supply.minted.toString());
    burned.push(supply.burned.toString());
  }
  if (wallets.length === 0) return;
  await client.query(
    `INSERT INTO balance_deltas (topic, kafka_partition, end_offset, wallet, asset, delta, minted, burned)
     SELECT $1, $2, $3, u.wallet, u.asset, u.delta, u.minted, u.burned
       FROM unnest($4::text[], $5::text[], $6::numeric[], $7::numeric[], $8::numeric[]) AS u(wallet, asset, delta, minted, burned)`,
    [ref.topic, ref.partition, plan.nextOffset.toString(), wallets, assets, deltas, minted, burned],
  );
}
