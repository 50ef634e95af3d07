// Which balance-delta formats the projectors of a shard read. An applier writes a chunk's deltas
// as one balance_delta_chunks row only once that format is declared here; until then it writes
// balance_deltas rows, which projectors of every release read. A projector from before
// balance_delta_chunks reads only those: beside an applier writing chunk rows it would move its
// checkpoints past them, and the views would miss them (docs/operations.md, upgrading). The
// format is declared by `tally migrate` on a shard no applier ever wrote to (no older projector
// can have read it), and by every projector that reads chunk rows, when it starts.
import type { Client, Pool } from "../common/pg.ts";

export const chunkDeltaFormat = "balance_delta_chunks";

/** Declares that the projectors of this shard read chunk rows; idempotent. */
export async function declareChunkReader(db: Pool | Client): Promise<void> {
  await db.query("INSERT INTO delta_readers (format) VALUES ($1) ON CONFLICT (format) DO NOTHING", [
    chunkDeltaFormat,
  ]);
}

/** Whether chunk rows may be written to this shard: a projector reading them is declared. */
export async function chunkReaderDeclared(db: Pool | Client): Promise<boolean> {
  const result = await db.query("SELECT 1 FROM delta_readers WHERE format = $1", [chunkDeltaFormat]);
  return result.rowCount === 1;
}
