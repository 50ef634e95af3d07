// The process-wide bound on token states: shared among the partitions owned, enforced on eviction.
import { describe, expect, it } from "vitest";
import { PartitionState } from "../../services/applier/partition-state.ts";
import { TokenBudget } from "../../services/applier/token-budget.ts";

const state = { asset: "USD", amount: 100n, owner: "w", state: "s0", retired: false };

function viewHolding(budget: TokenBudget, tokens: number): PartitionState {
  const view = new PartitionState(() => budget.perPartition());
  for (let k = 0; k < tokens; k++) view.remember(`t${k}`, state);
  return view;
}

describe("TokenBudget", () => {
  it("given a bound of 1000 and 4 partitions owned, when shared, then each may keep 250", () => {
    const budget = new TokenBudget(1000);
    budget.setPartitionsOwned(4);
    expect(budget.perPartition()).toBe(250);
  });

  it("given no partition owned yet, when asked, then one partition may keep the whole bound", () => {
    expect(new TokenBudget(1000).perPartition()).toBe(1000);
  });

  it("given two views over their shares, when they evict, then the process holds at most the bound", () => {
    const budget = new TokenBudget(1000);
    budget.setPartitionsOwned(2);
    const views = [viewHolding(budget, 900), viewHolding(budget, 700)];
    for (const view of views) view.evictOver(new Set());
    // Each view's one generation was over three quarters of its share: cut to its newest half.
    expect(views.map((v) => v.tokenCount)).toEqual([250, 250]);
    expect(views.every((v) => !v.complete)).toBe(true);
  });

  it("given a chunk's own tokens, when evicting, then they are kept and the oldest others go first", () => {
    const budget = new TokenBudget(1000);
    budget.setPartitionsOwned(250); // a share of 4 tokens
    const view = viewHolding(budget, 8); // t0 (oldest) .. t7
    view.evictOver(new Set(["t0"]));
    expect(view.tokenCount).toBe(2); // half the share: t0 (kept) and the newest
    expect(view.stateOf("t0")).toEqual(state);
    expect(view.stateOf("t7")).toEqual(state);
    expect(() => view.stateOf("t1")).toThrow(/not loaded/);
  });

  it("given a view within its share, when it evicts, then it stays complete", () => {
    const budget = new TokenBudget(1000);
    budget.setPartitionsOwned(2);
    const view = viewHolding(budget, 500);
    view.complete = true; // loaded whole
    for (let round = 0; round < 5; round++) {
      // A chunk using 300 of the 500 tokens: more than half the share, a different window each time.
      const used = Array.from({ length: 300 }, (_, k) => `t${(round * 100 + k) % 500}`);
      for (const id of used) expect(view.stateOf(id)).toEqual(state);
      view.evictOver(new Set(used));
    }
    expect(view.tokenCount).toBe(500);
    expect(view.complete).toBe(true);
    expect(view.stateOf("never-minted")).toBeUndefined();
  });

  it("given fewer partitions after a rebalance, when the view evicts, then it keeps its larger share", () => {
    const budget = new TokenBudget(1000);
    budget.setPartitionsOwned(4);
    const view = viewHolding(budget, 600);
    budget.setPartitionsOwned(1);
    view.evictOver(new Set());
    expect(view.tokenCount).toBe(600);
  });
});
