import { describe, expect, it } from "vitest";
import { decide, outsideWindow, type TokenState } from "../../services/applier/decide.ts";
import { burnOf, mintOf, moveOf } from "../support/events.ts";

const aliceToken: TokenState = { asset: "USD", amount: 1_000n, owner: "alice", state: "s0", retired: false };

describe("decide: mint", () => {
  it("given an unknown token, when minted, then alice owns it at the mint's state", () => {
    const decision = decide(undefined, mintOf());
    expect(decision).toEqual({ outcome: "applied", kind: "mint", next: aliceToken });
  });
  it("given a known token, when minted again with a new id, then token_exists", () => {
    expect(decide(aliceToken, mintOf({ next_state: "x" }))).toMatchObject({
      outcome: "rejected",
      reason: "token_exists",
    });
  });
  it("given a retired token, when minted again, then token_exists (a token id is never reused)", () => {
    const retired = { ...aliceToken, owner: null, retired: true };
    expect(decide(retired, mintOf())).toMatchObject({ outcome: "rejected", reason: "token_exists" });
  });
  it("given an amount beyond 2^63, when minted, then the value is kept exactly", () => {
    const amount = 10n ** 38n - 1n;
    const decision = decide(undefined, mintOf({ amount }));
    expect(decision.outcome === "applied" && decision.next.amount).toBe(amount);
  });
});

describe("decide: move", () => {
  it("given alice owns the token at s0, when she moves it to bob from s0, then bob owns it at s1", () => {
    expect(decide(aliceToken, moveOf())).toEqual({
      outcome: "applied",
      kind: "move",
      next: { ...aliceToken, owner: "bob", state: "s1" },
    });
  });
  it("given an unknown token, when moved, then unknown_token", () => {
    expect(decide(undefined, moveOf())).toMatchObject({ outcome: "rejected", reason: "unknown_token" });
  });
  it("given the token at s1, when a move from s0 comes (a double spend), then state_conflict", () => {
    const moved = { ...aliceToken, owner: "bob", state: "s1" };
    // alice, the former owner, spends s0 again: the state check names it, not the owner check
    expect(decide(moved, moveOf({ to_wallet: "carol", next_state: "s1b" }))).toMatchObject({
      outcome: "rejected",
      reason: "state_conflict",
    });
  });
  it("given alice owns it, when mallory moves it from the right state, then wrong_owner", () => {
    expect(decide(aliceToken, moveOf({ from_wallet: "mallory" }))).toMatchObject({
      outcome: "rejected",
      reason: "wrong_owner",
    });
  });
  it("given a 1000 token, when moved with amount 999, then value_mismatch", () => {
    expect(decide(aliceToken, moveOf({ amount: 999n }))).toMatchObject({
      outcome: "rejected",
      reason: "value_mismatch",
    });
  });
  it("given a USD token, when moved as EUR, then value_mismatch", () => {
    expect(decide(aliceToken, moveOf({ asset: "EUR" }))).toMatchObject({
      outcome: "rejected",
      reason: "value_mismatch",
    });
  });
  it("given a retired token, when moved, then retired_token", () => {
    const retired = { ...aliceToken, owner: null, retired: true };
    expect(decide(retired, moveOf())).toMatchObject({ outcome: "rejected", reason: "retired_token" });
  });
});

describe("decide: burn", () => {
  it("given alice owns the token, when she burns it, then it is retired with no owner", () => {
    expect(decide(aliceToken, burnOf())).toEqual({
      outcome: "applied",
      kind: "burn",
      next: { ...aliceToken, owner: null, state: "s1", retired: true },
    });
  });
  it("given an unknown token, when burned, then unknown_token", () => {
    expect(decide(undefined, burnOf())).toMatchObject({ outcome: "rejected", reason: "unknown_token" });
  });
  it.each([
    ["a stale state", { prev_state: "old" }, "state_conflict"],
    ["another owner", { from_wallet: "bob" }, "wrong_owner"],
    ["another amount", { amount: 1n }, "value_mismatch"],
  ] as const)("given alice's token, when burned from %s, then %s", (_, overrides, reason) => {
    expect(decide(aliceToken, burnOf(overrides))).toMatchObject({ outcome: "rejected", reason });
  });
  it("given a burned token, when burned again, then retired_token", () => {
    expect(decide({ ...aliceToken, owner: null, retired: true }, burnOf())).toMatchObject({
      outcome: "rejected",
      reason: "retired_token",
    });
  });
});

describe("outsideWindow", () => {
  const window = { pastDays: 2, futureDays: 1 };
  // Noon, and the bounds written out as times of day: the window is whole days of 24 h from the
  // record's timestamp, not calendar days (which a midnight record could not tell apart).
  const recordMs = Date.UTC(2026, 10, 22, 12, 0, 0);
  it.each([
    ["exactly 2 days before (Nov 20, 12:00)", Date.UTC(2026, 10, 20, 12, 0, 0), false],
    ["just past 2 days before (Nov 20, 11:59:59.999)", Date.UTC(2026, 10, 20, 11, 59, 59, 999), true],
    ["the start of the calendar day 2 days before (Nov 20, 00:00)", Date.UTC(2026, 10, 20), true],
    ["exactly 1 day after (Nov 23, 12:00)", Date.UTC(2026, 10, 23, 12, 0, 0), false],
    ["just past 1 day after (Nov 23, 12:00:00.001)", Date.UTC(2026, 10, 23, 12, 0, 0, 1), true],
    [
      "the end of the calendar day 1 day after (Nov 23, 23:59:59.999)",
      Date.UTC(2026, 10, 23, 23, 59, 59, 999),
      true,
    ],
  ])("given a record at noon, when occurred_at is %s, then outside = %s", (_, occurredMs, outside) => {
    expect(outsideWindow(occurredMs, recordMs, window) !== null).toBe(outside);
  });
});
