// Builders for test events: plain data with sensible defaults, overridden per case.
import { randomUUID } from "node:crypto";
import type { TransferEvent } from "../../services/common/event.ts";

export const fixedNowMs = Date.UTC(2026, 10, 22, 12, 0, 0);

export function mintOf(overrides: Partial<TransferEvent> = {}): TransferEvent {
  return {
    transfer_id: randomUUID(),
    batch_id: null,
    token_id: "tok-1",
    asset: "USD",
    amount: 1_000n,
    from_wallet: null,
    to_wallet: "alice",
    prev_state: null,
    next_state: "s0",
    occurred_at: fixedNowMs,
    ...overrides,
  };
}

export function moveOf(overrides: Partial<TransferEvent> = {}): TransferEvent {
  return mintOf({ from_wallet: "alice", to_wallet: "bob", prev_state: "s0", next_state: "s1", ...overrides });
}

export function burnOf(overrides: Partial<TransferEvent> = {}): TransferEvent {
  return moveOf({ to_wallet: null, ...overrides });
}
