// Plans one chunk of one partition in memory, in offset order: which records become ledger rows,
// duplicates or rejections, the tokens' resulting states (collapsed to the last per token), and the
// balance deltas. Pure: the write path turns a plan into one transaction.
import { assert } from "../common/assert.ts";
import type { TransferEvent } from "../common/event.ts";
import { eventProblems } from "../common/event.ts";
import { tokenRuleReasons } from "../common/rejection-reasons.ts";
import { dayMax, dayOf } from "../storage/partitions.ts";
import {
  type Decision,
  decide,
  type EventWindow,
  outsideWindow,
  type RejectionReason,
  type TokenState,
} from "./decide.ts";

/** A consumed record after decoding: an event, or why it could not be one. */
export type DecodedRecord = {
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  timestampMs: number;
  decoded:
    | { ok: true; event: TransferEvent; schemaId: number }
    | { ok: false; reason: RejectionReason; detail: string; schemaId: number | null };
};

export type LedgerRow = { event: TransferEvent; offset: bigint; schemaId: number };
export type RejectionRow = {
  offset: bigint;
  reason: RejectionReason;
  detail: string;
  transferId: string | null;
  tokenId: string | null;
  schemaId: number | null;
  key: Buffer | null;
  value: Buffer | null;
};
export type TokenChange = { tokenId: string; state: TokenState; existedBefore: boolean; lastOffset: bigint };
export type SupplyDelta = { minted: bigint; burned: bigint };

export type ChunkPlan = {
  ledger: LedgerRow[];
  rejections: RejectionRow[];
  duplicates: number;
  tokenChanges: Map<string, TokenChange>;
  /** asset → wallet → delta; nested rather than a joined key, which cost a string per event */
  balanceDeltas: Map<string, Map<string, bigint>>;
  supplyDeltas: Map<string, SupplyDelta>;
  days: Set<number>;
  /** transfer ids of records the rules rejected: a look-up tells whether they are duplicates */
  duplicateCandidates: string[];
  nextOffset: bigint;
};

/** Where the chunk's records must be, and what the shard cannot take: facts from outside the plan. */
export type PlanRouting = {
  partition: number;
  /** the partition the Java-compatible murmur2 partitioner gives a key */
  partitionOfKey: (key: Buffer) => number;
  /** the partition a token already lives on, when that is not this one */
  homeOf: (tokenId: string) => number | undefined;
  /** days whose partition of `transfers` is detached (archived) */
  archivedDays: ReadonlySet<number>;
};

/** A plan with nothing in it yet, ending at `nextOffset`: what planChunk (and the bench's limit) fill. */
export function emptyChunkPlan(nextOffset: bigint): ChunkPlan {
  return {
    ledger: [],
    rejections: [],
    duplicates: 0,
    tokenChanges: new Map(),
    balanceDeltas: new Map(),
    supplyDeltas: new Map(),
    days: new Set(),
    duplicateCandidates: [],
    nextOffset,
  };
}

/**
 * `stateOf` must answer for every token of the chunk as it stood before the chunk (undefined: never
 * minted). `appliedIds` holds the chunk's transfer ids known to be applied already (lower-cased).
 * Without `routing`, records are not checked for their partition (tests of the rules alone).
 */
export function planChunk(
  records: readonly DecodedRecord[],
  stateOf: (tokenId: string) => TokenState | undefined,
  appliedIds: ReadonlySet<string>,
  window: EventWindow,
  routing?: PlanRouting,
): ChunkPlan {
  assert(records.length > 0, "a chunk has records");
  const plan = emptyChunkPlan(records[records.length - 1]!.offset + 1n);
  const seenIds = new Set<string>(); // applied earlier in this chunk
  let previousOffset = -1n;
  for (const record of records) {
    assert(record.offset > previousOffset, "records are in strictly increasing offset order");
    previousOffset = record.offset;
    planRecord(plan, record, stateOf, appliedIds, seenIds, window, routing);
  }
  return plan;
}

/**
 * Reasons given only to records that got past the applied-id check (the token rules, and a day
 * found detached after them): the only rejections a known applied id turns into a duplicate.
 */
const reasonsAfterIdCheck: ReadonlySet<RejectionReason> = new Set<RejectionReason>([
  ...tokenRuleReasons,
  "archived_day",
]);

/**
 * The plan `planChunk` gives when it also knows `moreAppliedIds` (lower-cased ids found applied
 * before, e.g. among the plan's duplicate candidates), derived from `plan` without planning every
 * record again; null when only planning again can tell. It holds when no record carrying such an
 * id was applied in `plan`: then each one that reached the id check was rejected, which moved no
 * token, no balance and no seen id, so planning again would differ only in those records, counted
 * as duplicates instead. The plan property test checks this against planning again.
 */
export function withAppliedIds(plan: ChunkPlan, moreAppliedIds: ReadonlySet<string>): ChunkPlan | null {
  if (moreAppliedIds.size === 0) return plan;
  for (const row of plan.ledger) if (moreAppliedIds.has(row.event.transfer_id.toLowerCase())) return null;
  const known = (id: string | null) => id !== null && moreAppliedIds.has(id.toLowerCase());
  const rejections = plan.rejections.filter(
    (r) => !(reasonsAfterIdCheck.has(r.reason) && known(r.transferId)),
  );
  return {
    ...plan,
    rejections,
    duplicates: plan.duplicates + plan.rejections.length - rejections.length,
    duplicateCandidates: plan.duplicateCandidates.filter((id) => !moreAppliedIds.has(id)),
  };
}

function planRecord(
  plan: ChunkPlan,
  record: DecodedRecord,
  stateOf: (tokenId: string) => TokenState | undefined,
  appliedIds: ReadonlySet<string>,
  seenIds: Set<string>,
  window: EventWindow,
  routing: PlanRouting | undefined,
): void {
  const { decoded } = record;
  if (!decoded.ok) {
    addRejection(plan, record, decoded.reason, decoded.detail, null);
    return;
  }
  const event = decoded.event;
  const problems = eventProblems(event);
  if (problems.length > 0) {
    const detail = problems.map((p) => `${p.field}: ${p.problem}`).join("; ");
    addRejection(plan, record, "invalid_field", detail, event);
    return;
  }
  if (record.key === null || !isKeyOf(record.key, event.token_id)) {
    // The key routes the token to its partition; a mismatch would split a token's chain.
    addRejection(plan, record, "invalid_field", "key: must be the token_id", event);
    return;
  }
  const routingProblem = routing ? misrouted(routing, record.key, event.token_id) : null;
  if (routingProblem !== null) {
    addRejection(plan, record, "wrong_partition", routingProblem, event);
    return;
  }
  const windowProblem =
    outsideWindow(event.occurred_at, record.timestampMs, window) ?? beyondNamedDays(event.occurred_at);
  if (windowProblem !== null) {
    addRejection(plan, record, "out_of_window", windowProblem, event);
    return;
  }
  const transferId = event.transfer_id.toLowerCase();
  if (appliedIds.has(transferId) || seenIds.has(transferId)) {
    plan.duplicates++;
    return;
  }
  const change = plan.tokenChanges.get(event.token_id);
  const before = change ? change.state : stateOf(event.token_id);
  const decision: Decision = decide(before, event);
  if (decision.outcome === "rejected") {
    plan.duplicateCandidates.push(transferId);
    addRejection(plan, record, decision.reason, decision.detail, event);
    return;
  }
  const day = dayOf(event.occurred_at);
  if (routing?.archivedDays.has(day)) {
    // Decided after the rules, so the token's chain does not move: a re-drive after the day is
    // attached again meets the same state and applies.
    const detail = `the day partition of ${new Date(day * 86_400_000).toISOString().slice(0, 10)} is detached (archived)`;
    addRejection(plan, record, "archived_day", detail, event);
    return;
  }
  seenIds.add(transferId);
  plan.ledger.push({ event, offset: record.offset, schemaId: decoded.schemaId });
  plan.days.add(day);
  plan.tokenChanges.set(event.token_id, {
    tokenId: event.token_id,
    state: decision.next,
    existedBefore: change ? change.existedBefore : before !== undefined,
    lastOffset: record.offset,
  });
  addBalanceDeltas(plan, event);
}

/**
 * The key's bytes are exactly the token_id's UTF-8. Decoding the key leniently would read invalid
 * bytes as U+FFFD, so two keys that partition differently could name one token: the bytes decide.
 */
function isKeyOf(key: Buffer, tokenId: string): boolean {
  // The common case, an ASCII id, compares bytes to code units: no string is made per record.
  if (key.length === tokenId.length) {
    let k = 0;
    while (k < key.length && tokenId.charCodeAt(k) < 0x80 && key[k] === tokenId.charCodeAt(k)) k++;
    if (k === key.length) return true;
  }
  if (key.length !== Buffer.byteLength(tokenId, "utf8") || key.toString("utf8") !== tokenId) return false;
  // Only a token_id holding U+FFFD can equal a leniently decoded key: then compare the bytes.
  return !tokenId.includes("\uFFFD") || key.equals(Buffer.from(tokenId, "utf8"));
}

/** A token's records must all be on the one partition its key maps to: one view, one writer. */
function misrouted(routing: PlanRouting, key: Buffer, tokenId: string): string | null {
  const expected = routing.partitionOfKey(key);
  if (expected !== routing.partition) {
    return `key ${JSON.stringify(tokenId.slice(0, 64))} belongs on partition ${expected}, not ${routing.partition}`;
  }
  const home = routing.homeOf(tokenId);
  if (home !== undefined && home !== routing.partition) {
    return `token ${JSON.stringify(tokenId.slice(0, 64))} lives on partition ${home}`;
  }
  return null;
}

/** Day partitions are named by a four-digit year: later instants cannot be stored. */
function beyondNamedDays(occurredAtMs: number): string | null {
  if (dayOf(occurredAtMs) <= dayMax) return null;
  return `occurred_at ${occurredAtMs} ms is after 9999-12-31`;
}

/** An applied event's balance and supply changes, added to the chunk's (the bench's limit plans with it too). */
export function addBalanceDeltas(plan: ChunkPlan, event: TransferEvent): void {
  let perWallet = plan.balanceDeltas.get(event.asset);
  if (perWallet === undefined) {
    perWallet = new Map();
    plan.balanceDeltas.set(event.asset, perWallet);
  }
  const { to_wallet: to, from_wallet: from, amount } = event;
  if (to !== null) perWallet.set(to, (perWallet.get(to) ?? 0n) + amount);
  if (from !== null) perWallet.set(from, (perWallet.get(from) ?? 0n) - amount);
  if (from === null || to === null) {
    const supply = plan.supplyDeltas.get(event.asset) ?? { minted: 0n, burned: 0n };
    if (from === null) supply.minted += amount;
    else supply.burned += amount;
    plan.supplyDeltas.set(event.asset, supply);
  }
}

function addRejection(
  plan: ChunkPlan,
  record: DecodedRecord,
  reason: RejectionReason,
  detail: string,
  event: TransferEvent | null,
): void {
  plan.rejections.push({
    offset: record.offset,
    reason,
    detail,
    transferId: event?.transfer_id ?? null,
    tokenId: event?.token_id ?? null,
    schemaId: record.decoded.schemaId,
    key: record.key,
    value: record.value,
  });
}
