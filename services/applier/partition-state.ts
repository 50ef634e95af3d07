// What a member keeps in memory about a partition it owns: the stored next offset and the states of
// the partition's tokens. Tokens never cross partitions (a record on another partition than its key's
// is rejected wrong_partition), so no other writer changes them while the member holds the partition;
// if one did, the offsets compare-and-set fails and this view is dropped.
import { beginKeyLookups, inTransaction, type Pool } from "../common/pg.ts";
import { arrayLiteral } from "../common/pg-arrays.ts";
import { type StoredPosition, storedPosition } from "../storage/applier-offsets.ts";
import type { TokenState } from "./decide.ts";
import { incarnationProblem, type LogWindow } from "./incarnation.ts";
import { TokenCache } from "./token-cache.ts";
import type { PartitionRef } from "./write.ts";

/**
 * A cached token: its state packed into one flat string (packToken), or the state itself when a
 * field holds the separator; null: known never minted. Absent from the map: not loaded yet.
 */
type CachedToken = string | TokenState | null;

// Why packed: the cache holds up to TALLY_TOKEN_CACHE_MAX tokens for hours, and V8 lets the old
// generation grow to a multiple of what stays live. As an object with its own asset, bigint, owner
// and state, a cached token cost about 294 heap bytes (map entry and key included); packed, about
// 190 (measured with 200,000 tokens of the demo's load: 56 → 36 MiB). It is unpacked once per token
// per chunk (stateOf) and packed once per changed token per chunk (remember), not per event.
const fieldSeparator = "\u0000"; // a control character: never in a valid event's text
const retiredFlag = 1;
const ownerNullFlag = 2;
const flagsBase = 48; // the flags as one character, "0".."3"

/** The state as one flat string (join builds it flat), or null when a field holds the separator. */
export function packToken(state: TokenState): string | null {
  const owner = state.owner ?? "";
  if (state.asset.includes(fieldSeparator) || owner.includes(fieldSeparator)) return null;
  if (state.state.includes(fieldSeparator)) return null;
  const flags = (state.retired ? retiredFlag : 0) | (state.owner === null ? ownerNullFlag : 0);
  const head = String.fromCharCode(flagsBase + flags) + state.asset;
  return [head, state.amount.toString(), owner, state.state].join(fieldSeparator);
}

export function unpackToken(packed: string): TokenState {
  const [head, amount, owner, state] = packed.split(fieldSeparator) as [string, string, string, string];
  const flags = head.charCodeAt(0) - flagsBase;
  return {
    asset: head.slice(1),
    amount: BigInt(amount),
    owner: flags & ownerNullFlag ? null : owner,
    state,
    retired: (flags & retiredFlag) !== 0,
  };
}

export class PartitionState {
  nextOffset: bigint | null = null;
  /** Kafka's id of the topic incarnation the stored offsets belong to (null: brokers without ids). */
  topicId: string | null = null;
  /**
   * True while the map holds every token of the partition (loaded whole, nothing evicted since):
   * then a token not in the map was never minted and needs no query.
   */
  complete = false;
  private readonly tokens = new TokenCache<CachedToken>();
  /** Tokens of this chunk whose row belongs to another partition (minted there before the check). */
  private readonly foreign = new Map<string, number>();
  /** This partition's share of the process's token bound (token-budget.ts), asked when evicting. */
  private readonly tokensMax: () => number;

  constructor(tokensMax: number | (() => number)) {
    this.tokensMax = typeof tokensMax === "number" ? () => tokensMax : tokensMax;
  }

  /** The number of tokens this partition may keep now. */
  get tokenShare(): number {
    return this.tokensMax();
  }

  get tokenCount(): number {
    return this.tokens.size;
  }

  missing(tokenIds: Iterable<string>): string[] {
    if (this.complete) return [];
    const missing = new Set<string>();
    for (const id of tokenIds) if (!this.tokens.has(id)) missing.add(id);
    return [...missing];
  }

  stateOf(tokenId: string): TokenState | undefined {
    const cached = this.tokens.get(tokenId);
    if (cached === undefined && this.complete) return undefined;
    if (cached === undefined) throw new Error(`token ${tokenId} was not loaded before planning`);
    if (typeof cached === "string") return unpackToken(cached);
    return cached ?? undefined;
  }

  /** The partition a token lives on when that is not this one; events on it are wrong_partition. */
  homeOf(tokenId: string): number | undefined {
    return this.foreign.get(tokenId);
  }

  rememberForeign(tokenId: string, partition: number): void {
    this.foreign.set(tokenId, partition);
  }

  remember(tokenId: string, state: TokenState | null): void {
    this.tokens.set(tokenId, state === null ? null : (packToken(state) ?? state));
  }

  /** Keeps memory bounded; evicted tokens are simply loaded again when they next appear. */
  evictOver(keepIds: ReadonlySet<string>): void {
    const tokensMax = this.tokensMax();
    if (this.foreign.size > tokensMax) this.foreign.clear(); // loaded again when they next appear
    if (this.tokens.trim(tokensMax, keepIds)) this.complete = false;
  }
}

type TokenRow = {
  token_id: string;
  kafka_partition: number;
  asset: string;
  amount: string;
  owner: string | null;
  state: string;
  retired: boolean;
};

const rememberRow = (state: PartitionState, row: TokenRow) =>
  state.remember(row.token_id, {
    asset: row.asset,
    amount: BigInt(row.amount),
    owner: row.owner,
    state: row.state,
    retired: row.retired,
  });

/**
 * Loads the stored offset (creating the row at the log's start when there is none) and, when they
 * fit the bound, every token of the partition, in ONE snapshot: tokens older than the offset would
 * let a stale view pass the compare-and-set. The view is returned whole, never published half-made.
 * Throws IncarnationError when the stored offsets belong to another incarnation of the topic.
 */
export async function loadPartition(
  pool: Pool,
  ref: PartitionRef,
  log: LogWindow,
  tokensMax: number | (() => number),
): Promise<PartitionState> {
  await pool.query(
    `INSERT INTO applier_offsets ("group", topic, "partition", next_offset, first_offset, topic_id)
     VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT DO NOTHING`,
    [ref.group, ref.topic, ref.partition, log.lowOffset.toString(), log.topicId],
  );
  const stored = await storedPositionOf(pool, ref);
  const problem = incarnationProblem(ref, stored, log);
  if (problem !== null) throw problem;
  if (stored.topicId === null && log.topicId !== null) {
    // A row from before topic ids were kept: its offsets are within this log, so it adopts the id.
    await pool.query(
      `UPDATE applier_offsets SET topic_id = $4
        WHERE "group" = $1 AND topic = $2 AND "partition" = $3 AND topic_id IS NULL`,
      [ref.group, ref.topic, ref.partition, log.topicId],
    );
  }
  const state = new PartitionState(tokensMax);
  state.topicId = log.topicId;
  await inTransaction(
    pool,
    async (client) => {
      state.nextOffset = (await storedPositionOf(client, ref)).nextOffset;
      const count = await client.query<{ n: string }>(
        "SELECT count(*)::text AS n FROM token_state WHERE kafka_partition = $1",
        [ref.partition],
      );
      if (Number(count.rows[0]!.n) > state.tokenShare) return; // too many to hold: loaded per chunk instead
      const tokens = await client.query<TokenRow>(
        `SELECT token_id, kafka_partition, asset, amount::text, owner, state, retired
           FROM token_state WHERE kafka_partition = $1`,
        [ref.partition],
      );
      for (const row of tokens.rows) rememberRow(state, row);
      state.complete = true;
    },
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
  );
  return state;
}

async function storedPositionOf(client: Pick<Pool, "query">, ref: PartitionRef): Promise<StoredPosition> {
  const stored = await storedPosition(client, ref.group, ref.topic, ref.partition);
  if (stored === null) throw new Error(`applier_offsets has no row for partition ${ref.partition}`);
  return stored;
}

/**
 * One query for every token of the chunk this member does not hold yet. A token found on another
 * partition (minted there before records were checked for their partition) is not this view's.
 */
export async function loadTokens(
  pool: Pool,
  state: PartitionState,
  partition: number,
  tokenIds: readonly string[],
): Promise<void> {
  if (tokenIds.length === 0) return;
  // By the primary key however large token_state grows (beginKeyLookups says why).
  const result = await inTransaction(
    pool,
    (client) =>
      client.query<TokenRow>(
        `SELECT token_id, kafka_partition, asset, amount::text, owner, state, retired
           FROM token_state WHERE token_id = ANY($1::text[])`,
        [arrayLiteral(tokenIds)],
      ),
    beginKeyLookups,
  );
  for (const id of tokenIds) state.remember(id, null);
  for (const row of result.rows) {
    if (row.kafka_partition === partition) rememberRow(state, row);
    else state.rememberForeign(row.token_id, row.kafka_partition);
  }
}

/** The chunk's transfer ids already applied on this shard (lower-cased). */
export async function findAppliedIds(pool: Pool, transferIds: readonly string[]): Promise<Set<string>> {
  if (transferIds.length === 0) return new Set();
  const result = await pool.query<{ transfer_id: string }>(
    "SELECT transfer_id::text FROM transfer_ids WHERE transfer_id = ANY($1::uuid[])",
    [arrayLiteral(transferIds)],
  );
  return new Set(result.rows.map((r) => r.transfer_id.toLowerCase()));
}
