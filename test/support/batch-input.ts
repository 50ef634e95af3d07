// Batches of decoded records for planChunk's property tests (test/unit/plan.property.unit.spec.ts):
// the records of one partition built from generated operations (test/support/batch-ops.ts), the token
// states and applied ids from before the batch, and the routing (wrong_partition, archived_day).
import fc from "fast-check";
import type { TokenState } from "../../services/applier/decide.ts";
import type { DecodedRecord, PlanRouting } from "../../services/applier/plan.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { reachableTokenState, tokenId } from "./arbitraries.ts";
import { type KeyMode, type OccurredMode, op } from "./batch-ops.ts";
import { mintOf } from "./events.ts";

export type BatchInput = {
  records: DecodedRecord[];
  /** token states before the batch (what stateOf answers) */
  initial: Map<string, TokenState>;
  /** transfer ids known as applied before the batch, lower-cased */
  appliedIds: Set<string>;
  window: { pastDays: number; futureDays: number };
  /** where the records must be (wrong_partition) and the archived days (archived_day); none: unchecked */
  routing: PlanRouting | undefined;
};

const dayMs = 86_400_000;

type Link = { owner: string | null; state: string; asset: string; amount: bigint };

function occurredAtOf(mode: OccurredMode, timestampMs: number, window: BatchInput["window"]): number {
  const earliest = timestampMs - window.pastDays * dayMs;
  const latest = timestampMs + window.futureDays * dayMs;
  if (mode === "earliest") return earliest;
  if (mode === "latest") return latest;
  if (mode === "before") return earliest - 1;
  if (mode === "after") return latest + 1;
  if ("at" in mode) return mode.at;
  return earliest + Math.round(mode.inside * (latest - earliest));
}

function keyOf(mode: KeyMode, tokenId: string): Buffer | null {
  if (mode === "token") return Buffer.from(tokenId, "utf8");
  if (mode === "null") return null;
  if (mode === "lookalike") {
    const utf8 = Buffer.from(tokenId, "utf8");
    const replacement = Buffer.from("\uFFFD", "utf8");
    const at = utf8.indexOf(replacement);
    // 0xff is not UTF-8; a lenient decoder reads it as U+FFFD, which the token's bytes EF BF BD are
    if (at >= 0) return Buffer.concat([utf8.subarray(0, at), Buffer.from([0xff]), utf8.subarray(at + 3)]);
    return Buffer.concat([utf8, Buffer.from([0xc3])]); // a truncated sequence at the end
  }
  return Buffer.from(mode.other, "utf8");
}

const withCasing = (id: string, casing: string) =>
  casing === "lower"
    ? id.toLowerCase()
    : casing === "upper"
      ? id.toUpperCase()
      : [...id].map((c, k) => (k % 2 === 1 ? c.toUpperCase() : c.toLowerCase())).join("");

/**
 * A batch of one partition: mints, chains of moves and burns of a few tokens (so that many apply),
 * double spends, replays under the same or another id, duplicate ids in other casings, ill-formed
 * events, wrong keys, events outside the window, records that did not decode; offsets strictly
 * increasing with random gaps; token states and applied ids from before the batch.
 */
export const batchInput: fc.Arbitrary<BatchInput> = fc
  .record({
    window: fc.record({
      pastDays: fc.integer({ min: 0, max: 500 }),
      futureDays: fc.integer({ min: 0, max: 5 }),
    }),
    initial: fc.array(fc.tuple(tokenId, reachableTokenState), { maxLength: 4 }),
    pool: fc.uniqueArray(fc.uuid(), { minLength: 8, maxLength: 8 }),
    appliedMask: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    ops: fc.array(op, { minLength: 1, maxLength: 40 }),
    firstOffset: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 62n })),
    routing: fc.option(
      fc.record({
        partition: fc.nat(5),
        // tokens whose key the partitioner sends to another partition
        elsewhereKeys: fc.uniqueArray(tokenId, { maxLength: 2 }),
        // tokens that already live on a partition (this one or another)
        homes: fc.array(fc.tuple(tokenId, fc.boolean()), { maxLength: 3 }),
        // detached days: the days of some of the batch's events
        archived: fc.uniqueArray(fc.nat(39), { maxLength: 2 }),
      }),
      { freq: 3 },
    ),
    gaps: fc.array(
      fc.oneof(
        { weight: 8, arbitrary: fc.constant(1n) },
        { weight: 1, arbitrary: fc.bigInt({ min: 2n, max: 1_000n }) },
      ),
      {
        minLength: 40,
        maxLength: 40,
      },
    ),
  })
  .map(({ window, initial, pool, appliedMask, ops, firstOffset, gaps, routing }): BatchInput => {
    const initialStates = new Map(initial);
    const history = new Map<string, Link[]>();
    for (const [token, state] of initialStates) history.set(token, [state]);
    const sent: TransferEvent[] = [];
    const records: DecodedRecord[] = [];
    let lastToken: string | undefined;
    let offset = firstOffset;
    ops.forEach((o, k) => {
      offset += k === 0 ? 0n : gaps[k]!;
      const c = o.c;
      const id = withCasing("pooled" in c.id ? pool[c.id.pooled]! : c.id.fresh, c.casing);
      const base = {
        offset,
        timestampMs: c.timestamp,
        value: c.value === null ? null : Buffer.from(c.value),
      };
      if (o.t === "failure") {
        records.push({
          ...base,
          key: keyOf(c.key, "tok-1"),
          decoded: { ok: false, reason: o.reason, detail: o.detail, schemaId: o.schemaIdOrNull },
        });
        return;
      }
      const occurred_at = occurredAtOf(c.occurred, c.timestamp, window);
      let event: TransferEvent;
      if (o.t === "hostile") {
        event = o.event;
      } else if (o.t === "replay") {
        const earlier = sent[sent.length - 1 - (o.back % Math.max(1, sent.length))];
        if (earlier === undefined) {
          event = mintOf({ transfer_id: id, occurred_at }); // a replay with nothing to replay yet
        } else {
          event = o.sameId ? { ...earlier } : { ...earlier, transfer_id: id };
        }
      } else {
        const next = o.next ?? `n${k}`;
        if (o.t === "mint") {
          event = {
            transfer_id: id,
            batch_id: c.batchId,
            token_id: o.token,
            asset: o.asset,
            amount: o.amount,
            from_wallet: null,
            to_wallet: o.to,
            prev_state: null,
            next_state: next,
            occurred_at,
          };
        } else {
          // a token with no history yet: follow the latest token that has one
          const token = history.has(o.token) ? o.token : (lastToken ?? o.token);
          const links = history.get(token) ?? [];
          const from = links[links.length - 1 - (o.back % Math.max(1, links.length))] ?? {
            owner: "alice",
            state: "s0",
            asset: "USD",
            amount: 1_000n,
          };
          const owner = o.thief ?? from.owner ?? "alice";
          const to = o.to === owner ? (owner === "bob" ? "carol" : "bob") : o.to;
          event = {
            transfer_id: id,
            batch_id: c.batchId,
            token_id: token,
            asset: from.asset,
            amount: o.forged ?? from.amount,
            from_wallet: owner,
            to_wallet: to,
            prev_state: from.state,
            next_state: next,
            occurred_at,
          };
        }
        const links = history.get(event.token_id) ?? [];
        links.push({
          owner: event.to_wallet,
          state: event.next_state,
          asset: event.asset,
          amount: event.amount,
        });
        history.set(event.token_id, links);
        lastToken = event.token_id;
      }
      sent.push(event);
      records.push({
        ...base,
        key: keyOf(c.key, typeof event.token_id === "string" ? event.token_id : ""),
        decoded: { ok: true, event, schemaId: c.schemaId },
      });
    });
    const appliedIds = new Set(pool.filter((_, k) => appliedMask[k]).map((id) => id.toLowerCase()));
    return { records, initial: initialStates, appliedIds, window, routing: routingOf(routing, records) };
  });

type RoutingChoice = {
  partition: number;
  elsewhereKeys: string[];
  homes: [string, boolean][];
  archived: number[];
} | null;

/** A partitioner stub that is right for every key but the chosen ones; homes; the days of some records archived. */
function routingOf(choice: RoutingChoice, records: readonly DecodedRecord[]): PlanRouting | undefined {
  if (choice === null) return undefined;
  const { partition } = choice;
  const other = (partition + 1) % 6;
  const elsewhere = new Set(choice.elsewhereKeys.map((token) => Buffer.from(token, "utf8").toString("hex")));
  const homes = new Map(choice.homes.map(([token, here]) => [token, here ? partition : other]));
  const archivedDays = new Set<number>();
  for (const index of choice.archived) {
    const decoded = records[index % records.length]!.decoded;
    if (decoded.ok && Number.isFinite(decoded.event.occurred_at))
      archivedDays.add(Math.floor(decoded.event.occurred_at / dayMs));
  }
  return {
    partition,
    partitionOfKey: (key) => (elsewhere.has(key.toString("hex")) ? other : partition),
    homeOf: (token) => homes.get(token),
    archivedDays,
  };
}
