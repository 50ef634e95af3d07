// The token rules, pure: given the token's state and an event, the token's next state or a
// rejection with its reason. No I/O here; the applier feeds it state it loaded or kept in memory.
import { type EventKind, kindOf, type TransferEvent } from "../common/event.ts";
import type { RejectionReason } from "../common/rejection-reasons.ts";

/** A token: fixed value, one owner, a state chain. `owner` is null once retired (burned). */
export type TokenState = Readonly<{
  asset: string;
  amount: bigint;
  owner: string | null;
  state: string;
  retired: boolean;
}>;

export { type RejectionReason, rejectionReasons } from "../common/rejection-reasons.ts";

export type Applied = { outcome: "applied"; kind: EventKind; next: TokenState };
export type Rejected = { outcome: "rejected"; reason: RejectionReason; detail: string };
export type Decision = Applied | Rejected;

const reject = (reason: RejectionReason, detail: string): Rejected => ({
  outcome: "rejected",
  reason,
  detail,
});

/**
 * Decides one well-formed event (see eventProblems) against the token's current state.
 * The order of checks matters: a double spend also comes from a former owner, so the state
 * check runs before the owner check and the reason given is state_conflict.
 */
export function decide(state: TokenState | undefined, event: TransferEvent): Decision {
  const kind = kindOf(event);
  if (kind === "mint") {
    if (state !== undefined) return reject("token_exists", `token ${event.token_id} already exists`);
    return {
      outcome: "applied",
      kind,
      next: {
        asset: event.asset,
        amount: event.amount,
        owner: event.to_wallet,
        state: event.next_state,
        retired: false,
      },
    };
  }
  if (state === undefined) return reject("unknown_token", `token ${event.token_id} was never minted`);
  if (state.retired) return reject("retired_token", `token ${event.token_id} was burned`);
  if (event.prev_state !== state.state) {
    return reject("state_conflict", `prev_state ${event.prev_state} is not the current state ${state.state}`);
  }
  if (event.from_wallet !== state.owner) {
    return reject("wrong_owner", `from_wallet ${event.from_wallet} is not the owner ${state.owner}`);
  }
  if (event.asset !== state.asset)
    return reject("value_mismatch", `asset ${event.asset} is not ${state.asset}`);
  if (event.amount !== state.amount) {
    return reject("value_mismatch", `amount ${event.amount} is not the token value ${state.amount}`);
  }
  const retired = kind === "burn";
  return {
    outcome: "applied",
    kind,
    next: { ...state, owner: retired ? null : event.to_wallet, state: event.next_state, retired },
  };
}

export type EventWindow = { pastDays: number; futureDays: number };
const dayMs = 86_400_000;

/**
 * Events must fall within a window around the record's Kafka timestamp (not the wall clock, so a
 * replay decides exactly as the first run did); the window bounds the day partitions an input can create.
 */
export function outsideWindow(
  occurredAtMs: number,
  recordTimestampMs: number,
  window: EventWindow,
): string | null {
  const earliestMs = recordTimestampMs - window.pastDays * dayMs;
  const latestMs = recordTimestampMs + window.futureDays * dayMs;
  if (occurredAtMs < earliestMs || occurredAtMs > latestMs) {
    return `occurred_at ${instantText(occurredAtMs)} is outside [${instantText(earliestMs)}, ${instantText(latestMs)}]`;
  }
  return null;
}

/** An instant for a message: ISO 8601 where a Date can hold it, else its milliseconds (never a throw). */
function instantText(epochMs: number): string {
  const date = new Date(epochMs);
  return Number.isNaN(date.getTime()) ? `${epochMs} ms` : date.toISOString();
}
