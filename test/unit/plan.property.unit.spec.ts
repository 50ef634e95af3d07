// Property tests of the batch planner (services/applier/plan.ts planChunk) over hostile batches,
// and a comparison with a reference model written here from DESIGN.md, record by record.
// Runs and seed: test/support/arbitraries.ts (TALLY_TEST_FUZZ_RUNS, TALLY_TEST_FUZZ_SEED, make fuzz).
import { describe, expect, it } from "vitest";
import {
  decide,
  type RejectionReason,
  rejectionReasons,
  type TokenState,
} from "../../services/applier/decide.ts";
import {
  type ChunkPlan,
  type DecodedRecord,
  planChunk,
  withAppliedIds,
} from "../../services/applier/plan.ts";
import { eventProblems, type TransferEvent } from "../../services/common/event.ts";
import { checkProperty, fc, fuzzRuns, fuzzTimeoutMs } from "../support/arbitraries.ts";
import { type BatchInput, batchInput } from "../support/batch-input.ts";

const file = "test/unit/plan.property.unit.spec.ts";
const runs = fuzzRuns(200);
const timeout = fuzzTimeoutMs(runs, 5);

const planOf = (input: BatchInput): ChunkPlan =>
  planChunk(
    input.records,
    (tokenId) => input.initial.get(tokenId),
    input.appliedIds,
    input.window,
    input.routing,
  );

// ---------------------------------------------------------------------------------------------
// The reference model: the rules of DESIGN.md folded over the records one at a time, with a Map of
// token states and a Set of applied ids; nothing shared with plan.ts but decide and eventProblems.

type Outcome =
  | { offset: bigint; outcome: "applied" }
  | { offset: bigint; outcome: "duplicate" }
  | { offset: bigint; outcome: "rejected"; reason: RejectionReason };

type ModelResult = {
  outcomes: Outcome[];
  applied: { event: TransferEvent; offset: bigint; schemaId: number }[];
  rejected: { record: DecodedRecord; reason: RejectionReason; event: TransferEvent | null }[];
  tokens: Map<string, { state: TokenState; existedBefore: boolean; lastOffset: bigint }>;
  /** ids the token rules rejected (lower-cased), in order */
  ruleRejectedIds: string[];
};

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The key is the plain UTF-8 token_id (DESIGN.md): its bytes are valid UTF-8 and spell exactly the token id. */
function keyIsToken(key: Buffer | null, tokenId: string): boolean {
  if (key === null) return false;
  try {
    return strictUtf8.decode(key) === tokenId;
  } catch {
    return false;
  }
}

const dayMs = 86_400_000;
const year10000Ms = Date.UTC(10_000, 0, 1);

function referenceModel(input: BatchInput): ModelResult {
  const result: ModelResult = {
    outcomes: [],
    applied: [],
    rejected: [],
    tokens: new Map(),
    ruleRejectedIds: [],
  };
  const states = new Map<string, TokenState | undefined>();
  const appliedInBatch = new Set<string>();
  for (const record of input.records) {
    const { offset, decoded } = record;
    const reject = (reason: RejectionReason, event: TransferEvent | null) => {
      result.outcomes.push({ offset, outcome: "rejected", reason });
      result.rejected.push({ record, reason, event });
    };
    if (!decoded.ok) {
      reject(decoded.reason, null);
      continue;
    }
    const event = decoded.event;
    if (eventProblems(event).length > 0) {
      reject("invalid_field", event);
      continue;
    }
    if (!keyIsToken(record.key, event.token_id)) {
      reject("invalid_field", event);
      continue;
    }
    // a token lives on the one partition its key maps to, and only there
    const routing = input.routing;
    if (
      routing !== undefined &&
      (routing.partitionOfKey(record.key!) !== routing.partition ||
        (routing.homeOf(event.token_id) ?? routing.partition) !== routing.partition)
    ) {
      reject("wrong_partition", event);
      continue;
    }
    const earliest = record.timestampMs - input.window.pastDays * dayMs;
    const latest = record.timestampMs + input.window.futureDays * dayMs;
    // day partitions are named by a four-digit year (transfers_YYYYMMDD): later instants have no day
    if (event.occurred_at < earliest || event.occurred_at > latest || event.occurred_at >= year10000Ms) {
      reject("out_of_window", event);
      continue;
    }
    const id = event.transfer_id.toLowerCase();
    if (input.appliedIds.has(id) || appliedInBatch.has(id)) {
      result.outcomes.push({ offset, outcome: "duplicate" });
      continue;
    }
    const before = states.has(event.token_id)
      ? states.get(event.token_id)
      : input.initial.get(event.token_id);
    const decision = decide(before, event);
    if (decision.outcome === "rejected") {
      result.ruleRejectedIds.push(id);
      reject(decision.reason, event);
      continue;
    }
    // a detached day takes no rows: rejected after the rules, so the chain stays where it was
    if (routing?.archivedDays.has(Math.floor(event.occurred_at / dayMs))) {
      reject("archived_day", event);
      continue;
    }
    appliedInBatch.add(id);
    states.set(event.token_id, decision.next);
    const existedBefore = result.tokens.get(event.token_id)?.existedBefore ?? before !== undefined;
    result.tokens.set(event.token_id, { state: decision.next, existedBefore, lastOffset: offset });
    result.outcomes.push({ offset, outcome: "applied" });
    result.applied.push({ event, offset, schemaId: decoded.schemaId });
  }
  return result;
}

/** The plan's outcome of every record, in offset order: a record in neither list is a duplicate. */
function planOutcomes(input: BatchInput, plan: ChunkPlan): Outcome[] {
  const applied = new Set(plan.ledger.map((row) => row.offset));
  const rejected = new Map(plan.rejections.map((row) => [row.offset, row.reason]));
  return input.records.map(({ offset }): Outcome => {
    if (applied.has(offset)) return { offset, outcome: "applied" };
    const reason = rejected.get(offset);
    if (reason !== undefined) return { offset, outcome: "rejected", reason };
    return { offset, outcome: "duplicate" };
  });
}

type Sums = Map<string, { minted: bigint; burned: bigint }>;

function supplyOfLedger(events: readonly TransferEvent[]): Sums {
  const sums: Sums = new Map();
  for (const event of events) {
    const sum = sums.get(event.asset) ?? { minted: 0n, burned: 0n };
    if (event.from_wallet === null) sum.minted += event.amount;
    if (event.to_wallet === null) sum.burned += event.amount;
    sums.set(event.asset, sum);
  }
  return sums;
}

const sorted = <K, V>(map: Map<K, V>) => [...map].sort(([a], [b]) => (String(a) < String(b) ? -1 : 1));

// ---------------------------------------------------------------------------------------------

describe("planChunk: properties over hostile batches", () => {
  it(
    "every record ends in exactly one outcome: ledger + rejections + duplicates = records; never throws",
    async () => {
      await checkProperty(
        fc.property(batchInput, (input) => {
          const plan = planOf(input);
          expect(plan.ledger.length + plan.rejections.length + plan.duplicates).toBe(input.records.length);
          const offsets = [
            ...plan.ledger.map((row) => row.offset),
            ...plan.rejections.map((row) => row.offset),
          ];
          expect(new Set(offsets).size).toBe(offsets.length);
          const recordOffsets = new Set(input.records.map((record) => record.offset));
          for (const offset of offsets) expect(recordOffsets.has(offset)).toBe(true);
          for (const row of plan.rejections) expect(rejectionReasons).toContain(row.reason);
          expect(plan.nextOffset).toBe(input.records[input.records.length - 1]!.offset + 1n);
        }),
        { runs, file, name: "every record ends in exactly one outcome" },
      );
    },
    timeout,
  );

  it(
    "planning is deterministic: the same records, states and ids give a deep-equal plan, also from copies",
    async () => {
      await checkProperty(
        fc.property(batchInput, (input) => {
          const first = planOf(input);
          const again = planOf(input);
          expect(again).toEqual(first);
          const copy: BatchInput = {
            records: input.records.map((record) => ({
              ...record,
              key: record.key === null ? null : Buffer.from(record.key),
              value: record.value === null ? null : Buffer.from(record.value),
              decoded: record.decoded.ok
                ? { ...record.decoded, event: { ...record.decoded.event } }
                : { ...record.decoded },
            })),
            initial: new Map(input.initial),
            appliedIds: new Set(input.appliedIds),
            window: { ...input.window },
            routing: input.routing && { ...input.routing, archivedDays: new Set(input.routing.archivedDays) },
          };
          expect(planOf(copy)).toEqual(first);
        }),
        { runs, file, name: "planning is deterministic" },
      );
    },
    timeout,
  );

  it(
    "per asset, the balance deltas sum to minted − burned, and the supply deltas are the ledger's mints and burns",
    async () => {
      await checkProperty(
        fc.property(batchInput, (input) => {
          const plan = planOf(input);
          const fromLedger = supplyOfLedger(plan.ledger.map((row) => row.event));
          expect(sorted(plan.supplyDeltas)).toEqual(
            sorted(new Map([...fromLedger].filter(([, s]) => s.minted + s.burned > 0n))),
          );
          const assets = new Set([...plan.balanceDeltas.keys(), ...fromLedger.keys()]);
          for (const asset of assets) {
            let sum = 0n;
            for (const delta of plan.balanceDeltas.get(asset)?.values() ?? []) sum += delta;
            const supply = plan.supplyDeltas.get(asset) ?? { minted: 0n, burned: 0n };
            expect({ asset, sum }).toEqual({ asset, sum: supply.minted - supply.burned });
          }
        }),
        { runs, file, name: "the balance deltas sum to minted" },
      );
    },
    timeout,
  );

  it(
    "ids found applied after planning: withAppliedIds equals planning again, or says it cannot (null)",
    async () => {
      let derived = 0;
      let refused = 0;
      await checkProperty(
        fc.property(batchInput, fc.array(fc.boolean(), { maxLength: 80 }), (input, mask) => {
          const first = planOf(input);
          // Mostly the plan's own candidates (what the applier looks up), sometimes a ledger id.
          const pool = [
            ...first.duplicateCandidates,
            ...first.ledger.slice(0, 3).map((row) => row.event.transfer_id.toLowerCase()),
          ];
          const more = new Set(pool.filter((_, k) => mask[k] ?? false));
          const derivedPlan = withAppliedIds(first, more);
          const again = planOf({ ...input, appliedIds: new Set([...input.appliedIds, ...more]) });
          if (derivedPlan === null) {
            refused++;
            const ledgerIds = new Set(first.ledger.map((row) => row.event.transfer_id.toLowerCase()));
            expect([...more].some((id) => ledgerIds.has(id))).toBe(true);
          } else {
            if (more.size > 0) derived++;
            expect(derivedPlan).toEqual(again);
          }
        }),
        { runs, file, name: "withAppliedIds equals planning again" },
      );
      // Both paths were taken: a property never reached proves nothing.
      expect(derived).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    },
    timeout,
  );

  it(
    "no transfer id appears twice in the ledger (ids compare case-insensitively), nor one applied before the batch",
    async () => {
      await checkProperty(
        fc.property(batchInput, (input) => {
          const plan = planOf(input);
          const ids = plan.ledger.map((row) => row.event.transfer_id.toLowerCase());
          expect(new Set(ids).size).toBe(ids.length);
          for (const id of ids) expect(input.appliedIds.has(id)).toBe(false);
        }),
        { runs, file, name: "no transfer id appears twice in the ledger" },
      );
    },
    timeout,
  );

  it(
    "the plan equals the reference model's fold of decide over the records, record by record",
    async () => {
      const reached = new Map<string, number>();
      await checkProperty(
        fc.property(batchInput, (input) => {
          const plan = planOf(input);
          const model = referenceModel(input);
          for (const [k, o] of model.outcomes.entries()) {
            // the reasons of records that did not decode are the generator's, not the plan's
            if (!input.records[k]!.decoded.ok) continue;
            const label = o.outcome === "rejected" ? o.reason : o.outcome;
            reached.set(label, (reached.get(label) ?? 0) + 1);
          }
          // outcomes, record by record
          expect(planOutcomes(input, plan)).toEqual(model.outcomes);
          // the ledger rows, in order
          expect(plan.ledger).toEqual(model.applied);
          // the rejection rows with their coordinates and raw bytes
          expect(plan.rejections.map(({ detail: _, ...row }) => row)).toEqual(
            model.rejected.map(({ record, reason, event }) => ({
              offset: record.offset,
              reason,
              transferId: event?.transfer_id ?? null,
              tokenId: event?.token_id ?? null,
              schemaId: record.decoded.schemaId,
              key: record.key,
              value: record.value,
            })),
          );
          expect(plan.duplicates).toBe(model.outcomes.filter((o) => o.outcome === "duplicate").length);
          expect(plan.duplicateCandidates).toEqual(model.ruleRejectedIds);
          // token states after the batch, collapsed to the last per token
          expect(
            sorted(
              new Map(
                [...plan.tokenChanges].map(([token, { tokenId, ...change }]) => {
                  expect(tokenId).toBe(token);
                  return [token, change];
                }),
              ),
            ),
          ).toEqual(sorted(model.tokens));
          // balances: credits minus debits of the applied events, per asset and wallet
          const balances = new Map<string, Map<string, bigint>>();
          for (const { event } of model.applied) {
            const perWallet = balances.get(event.asset) ?? new Map<string, bigint>();
            if (event.to_wallet !== null)
              perWallet.set(event.to_wallet, (perWallet.get(event.to_wallet) ?? 0n) + event.amount);
            if (event.from_wallet !== null)
              perWallet.set(event.from_wallet, (perWallet.get(event.from_wallet) ?? 0n) - event.amount);
            balances.set(event.asset, perWallet);
          }
          expect(sorted(new Map([...plan.balanceDeltas].map(([a, w]) => [a, sorted(w)])))).toEqual(
            sorted(new Map([...balances].map(([a, w]) => [a, sorted(w)]))),
          );
          expect([...plan.days].sort((a, b) => a - b)).toEqual(
            [...new Set(model.applied.map(({ event }) => Math.floor(event.occurred_at / dayMs)))].sort(
              (a, b) => a - b,
            ),
          );
        }),
        { runs, file, name: "the plan equals the reference model" },
      );
      // The generator must reach the outcomes that matter, or the comparison says little.
      if (runs >= 200 && process.env.TALLY_TEST_FUZZ_PATH === undefined) {
        for (const label of [
          "applied",
          "duplicate",
          "invalid_field",
          "out_of_window",
          "state_conflict",
          "token_exists",
          "unknown_token",
          "retired_token",
          "wrong_owner",
          "value_mismatch",
          "wrong_partition",
          "archived_day",
        ]) {
          expect({ label, reached: (reached.get(label) ?? 0) > 0 }).toEqual({ label, reached: true });
        }
      }
    },
    timeout,
  );
});
