// The token cache's packed form: every state comes back exactly as remembered, and a cached token
// costs one string instead of an object with its own strings and bigint.
import { describe, expect, it } from "vitest";
import type { TokenState } from "../../services/applier/decide.ts";
import { PartitionState, packToken, unpackToken } from "../../services/applier/partition-state.ts";

const amountMax = 10n ** 38n - 1n;

const states: TokenState[] = [
  { asset: "USD", amount: 100n, owner: "w-1", state: "st-1", retired: false },
  { asset: "EUR", amount: amountMax, owner: "кошелёк-5 card-💳", state: "st-2", retired: false },
  { asset: "RBT", amount: 2n ** 63n + 7n, owner: null, state: "st-burned", retired: true },
  { asset: "USD", amount: 0n, owner: "", state: "", retired: false },
  { asset: "X", amount: 1n, owner: "w", state: "s", retired: true }, // retired, owner kept
  { asset: "USD", amount: 5n, owner: null, state: "s", retired: false }, // owner null, not retired
];

describe("packToken / unpackToken", () => {
  it.each(states)("given %o, when packed and unpacked, then it is the same state", (state) => {
    const packed = packToken(state);
    expect(typeof packed).toBe("string");
    expect(unpackToken(packed!)).toEqual(state);
  });

  it("given a field holding the separator, when packed, then it is not packed (kept as the object)", () => {
    const state = { asset: "USD", amount: 1n, owner: "a\u0000b", state: "s", retired: false };
    expect(packToken(state)).toBeNull();
    expect(packToken({ ...state, owner: "w", state: "x\u0000" })).toBeNull();
    expect(packToken({ ...state, owner: "w", asset: "\u0000" })).toBeNull();
  });

  it("given a typical state, when packed, then it is one string of its fields and four flag/separator characters", () => {
    const state = states[0]!;
    expect(packToken(state)).toBe("0USD\u0000100\u0000w-1\u0000st-1");
    expect(packToken(states[2]!)!.charAt(0)).toBe("3"); // retired and owner null
  });
});

describe("PartitionState token cache", () => {
  it("given remembered states, packed or not, when asked, then each comes back equal; a known unminted token is undefined", () => {
    const view = new PartitionState(10);
    const odd = { asset: "USD", amount: 3n, owner: "a\u0000b", state: "s", retired: false };
    for (const [k, state] of states.entries()) view.remember(`t${k}`, state);
    view.remember("odd", odd);
    view.remember("never", null);
    for (const [k, state] of states.entries()) expect(view.stateOf(`t${k}`)).toEqual(state);
    expect(view.stateOf("odd")).toEqual(odd);
    expect(view.stateOf("never")).toBeUndefined();
    expect(view.tokenCount).toBe(states.length + 2);
    expect(view.missing(["t0", "never", "other"])).toEqual(["other"]);
  });

  it("given a token remembered twice, when asked, then the later state is returned", () => {
    const view = new PartitionState(10);
    view.remember("t", states[0]!);
    view.remember("t", { ...states[0]!, owner: "w-2", state: "st-2" });
    expect(view.stateOf("t")).toEqual({ ...states[0]!, owner: "w-2", state: "st-2" });
    expect(view.tokenCount).toBe(1);
  });
});
