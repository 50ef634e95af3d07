// Property tests of the token rules (services/applier/decide.ts) over hostile values.
// Runs and seed: test/support/arbitraries.ts (TALLY_TEST_FUZZ_RUNS, TALLY_TEST_FUZZ_SEED, make fuzz).
import { describe, expect, it } from "vitest";
import {
  type Decision,
  decide,
  type RejectionReason,
  rejectionReasons,
  type TokenState,
} from "../../services/applier/decide.ts";
import { eventProblems, kindOf, type TransferEvent } from "../../services/common/event.ts";
import { tokenRuleReasons } from "../../services/common/rejection-reasons.ts";
import {
  amount,
  asset,
  checkProperty,
  fc,
  fuzzRuns,
  fuzzTimeoutMs,
  hostileTokenState,
  reachableTokenState,
  stateName,
  tokenId,
  transferId,
  wallet,
  wellFormedEvent,
} from "../support/arbitraries.ts";

const file = "test/unit/decide.property.unit.spec.ts";
const runs = fuzzRuns(1_000);
const timeout = fuzzTimeoutMs(runs, 1);

const mostlyTrue = fc.oneof(
  { weight: 3, arbitrary: fc.constant(true) },
  { weight: 1, arbitrary: fc.constant(false) },
);
const anyState = fc.oneof(reachableTokenState, hostileTokenState);

/** The rules for a move or a burn as DESIGN.md states them, checks in the documented order. */
function expectedMoveOutcome(
  state: TokenState | undefined,
  event: TransferEvent,
): "applied" | RejectionReason {
  if (state === undefined) return "unknown_token";
  if (state.retired) return "retired_token";
  if (event.prev_state !== state.state) return "state_conflict";
  if (event.from_wallet !== state.owner) return "wrong_owner";
  if (event.asset !== state.asset || event.amount !== state.amount) return "value_mismatch";
  return "applied";
}

const outcomeOf = (decision: Decision) => (decision.outcome === "applied" ? "applied" : decision.reason);

describe("decide: properties over hostile values", () => {
  it(
    "for any token state and any well-formed event: applied with the next state, or rejected with a known reason; never throws, mutates nothing",
    async () => {
      await checkProperty(
        fc.property(fc.option(hostileTokenState, { nil: undefined }), wellFormedEvent(), (state, event) => {
          expect(eventProblems(event)).toEqual([]);
          const stateBefore = structuredClone(state);
          const eventBefore = structuredClone(event);
          const decision = decide(state, event);
          expect(state).toEqual(stateBefore);
          expect(event).toEqual(eventBefore);
          if (decision.outcome === "rejected") {
            expect(Object.keys(decision).sort()).toEqual(["detail", "outcome", "reason"]);
            expect(rejectionReasons).toContain(decision.reason);
            expect(tokenRuleReasons).toContain(decision.reason);
            expect(typeof decision.detail).toBe("string");
            expect(decision.detail.length).toBeGreaterThan(0);
            return;
          }
          expect(decision.outcome).toBe("applied");
          expect(Object.keys(decision).sort()).toEqual(["kind", "next", "outcome"]);
          const kind = kindOf(event);
          expect(decision.kind).toBe(kind);
          if (kind === "mint") {
            expect(state).toBeUndefined();
            expect(decision.next).toEqual({
              asset: event.asset,
              amount: event.amount,
              owner: event.to_wallet,
              state: event.next_state,
              retired: false,
            });
          } else {
            expect(state).toBeDefined();
            expect(decision.next).toEqual({
              asset: state!.asset,
              amount: state!.amount,
              owner: kind === "burn" ? null : event.to_wallet,
              state: event.next_state,
              retired: kind === "burn",
            });
          }
        }),
        { runs, file, name: "for any token state and any well-formed event" },
      );
    },
    timeout,
  );

  it(
    "a mint never applies to an existing token, whatever its state (retired included): token_exists",
    async () => {
      await checkProperty(
        fc.property(anyState, wellFormedEvent({}, ["mint"]), (state, event) => {
          const decision = decide(state, event);
          expect(outcomeOf(decision)).toBe("token_exists");
        }),
        { runs, file, name: "a mint never applies" },
      );
    },
    timeout,
  );

  it(
    "a move or burn applies exactly when the token is live and prev_state, owner, asset and amount all match; else the first failing check's reason",
    async () => {
      const seen = new Map<string, number>();
      const coupled = fc
        .record({
          state: fc.option(anyState, { nil: undefined, freq: 12 }),
          event: wellFormedEvent({}, ["move", "burn"]),
          same: fc.record({ prev: mostlyTrue, owner: mostlyTrue, asset: mostlyTrue, amount: mostlyTrue }),
          live: mostlyTrue,
        })
        .map(({ state, event, same, live }) => {
          if (state === undefined) return { state, event };
          const token: TokenState = live ? { ...state, retired: false } : state;
          return {
            state: token,
            event: {
              ...event,
              prev_state: same.prev ? token.state : event.prev_state,
              from_wallet: same.owner && token.owner !== null ? token.owner : event.from_wallet,
              asset: same.asset ? token.asset : event.asset,
              amount: same.amount ? token.amount : event.amount,
            },
          };
        })
        // copying a hostile state's values into the event may make it ill-formed: decide's input is not
        .filter(({ event }) => eventProblems(event).length === 0);
      await checkProperty(
        fc.property(coupled, ({ state, event }) => {
          const outcome = outcomeOf(decide(state, event));
          seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
          expect(outcome).toBe(expectedMoveOutcome(state, event));
        }),
        { runs, file, name: "a move or burn applies exactly when" },
      );
      // The generator must reach every branch, or the property says little.
      if (runs >= 500 && process.env.TALLY_TEST_FUZZ_PATH === undefined) {
        expect([...seen.keys()].sort()).toEqual(
          [
            "applied",
            "retired_token",
            "state_conflict",
            "unknown_token",
            "value_mismatch",
            "wrong_owner",
          ].sort(),
        );
      }
    },
    timeout,
  );

  it(
    "after a chain of valid moves (unique states), replaying any earlier move is state_conflict (retired_token once burned), and the mint token_exists",
    async () => {
      const chain = fc.record({
        token: tokenId,
        asset,
        amount,
        steps: fc.uniqueArray(fc.record({ state: stateName, owner: wallet }), {
          selector: (step) => step.state,
          minLength: 2,
          maxLength: 16,
        }),
        ids: fc.array(transferId, { minLength: 16, maxLength: 16 }),
        burned: fc.boolean(),
        pick: fc.nat(),
      });
      await checkProperty(
        fc.property(chain, ({ token, asset, amount, steps, ids, burned, pick }) => {
          // owners of consecutive steps differ: a move to oneself is ill-formed
          const owners = steps.map((step) => step.owner);
          for (let k = 1; k < owners.length; k++) {
            if (owners[k] === owners[k - 1]) owners[k] = owners[k - 1] === "alice" ? "bob" : "alice";
          }
          const base = { batch_id: null, token_id: token, asset, amount, occurred_at: 1_000 };
          const mint: TransferEvent = {
            ...base,
            transfer_id: ids[0]!,
            from_wallet: null,
            to_wallet: owners[0]!,
            prev_state: null,
            next_state: steps[0]!.state,
          };
          const moves: TransferEvent[] = [];
          for (let k = 1; k < steps.length; k++) {
            const last = k === steps.length - 1;
            moves.push({
              ...base,
              transfer_id: ids[k]!,
              from_wallet: owners[k - 1]!,
              to_wallet: burned && last ? null : owners[k]!,
              prev_state: steps[k - 1]!.state,
              next_state: steps[k]!.state,
            });
          }
          let state: TokenState | undefined;
          for (const event of [mint, ...moves]) {
            expect(eventProblems(event)).toEqual([]);
            const decision = decide(state, event);
            expect(decision.outcome).toBe("applied");
            if (decision.outcome === "applied") state = decision.next;
          }
          const replayed = moves[pick % moves.length]!;
          expect(outcomeOf(decide(state, replayed))).toBe(burned ? "retired_token" : "state_conflict");
          // the same move under a new transfer id (a double spend, not a duplicate) is refused alike
          const respent = { ...replayed, transfer_id: ids[15]! };
          expect(outcomeOf(decide(state, respent))).toBe(burned ? "retired_token" : "state_conflict");
          expect(outcomeOf(decide(state, mint))).toBe("token_exists");
        }),
        { runs, file, name: "after a chain of valid moves" },
      );
    },
    timeout,
  );
});
