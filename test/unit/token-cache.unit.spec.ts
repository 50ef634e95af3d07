// The token cache's two generations: what is held, what is dropped, and that the bound holds.
import { describe, expect, it } from "vitest";
import { TokenCache } from "../../services/applier/token-cache.ts";

function cacheOf(ids: readonly string[]): TokenCache<number> {
  const cache = new TokenCache<number>();
  for (const [k, id] of ids.entries()) cache.set(id, k);
  return cache;
}

const idsFrom = (prefix: string, count: number) => Array.from({ length: count }, (_, k) => `${prefix}${k}`);
const noKeep = new Set<string>();

describe("TokenCache", () => {
  it("given values set, some twice, when asked, then the latest comes back and size counts ids once", () => {
    const cache = cacheOf(["a", "b", "c"]);
    cache.set("a", 10);
    expect([cache.get("a"), cache.get("b"), cache.get("c"), cache.get("z")]).toEqual([10, 1, 2, undefined]);
    expect(cache.size).toBe(3);
    expect([cache.has("c"), cache.has("z")]).toEqual([true, false]);
  });

  it("given up to the capacity, used in any order over many trims, then nothing is ever dropped", () => {
    const ids = idsFrom("t", 10);
    const cache = cacheOf(ids);
    for (let round = 0; round < 20; round++) {
      const used = ids.filter((_, k) => (k + round) % 3 === 0);
      for (const id of used) expect(cache.get(id)).toBeDefined();
      expect(cache.trim(10, new Set(used))).toBe(false);
    }
    expect(cache.size).toBe(10);
    for (const [k, id] of ids.entries()) expect(cache.get(id)).toBe(k);
  });

  it("given one more than the capacity, when trimmed, then ids are dropped and the newest and kept stay", () => {
    const cache = cacheOf(idsFrom("t", 11));
    expect(cache.trim(10, new Set(["t0"]))).toBe(true);
    // The whole set was one generation over three quarters of the bound: cut to its newest half.
    expect(cache.size).toBe(5);
    expect([cache.has("t0"), cache.has("t10"), cache.has("t7"), cache.has("t6"), cache.has("t1")]).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
  });

  it("given a turn, when the older ids are used before the next one, then they survive it and the unused do not", () => {
    const cache = cacheOf(idsFrom("old", 6));
    cache.set("x", 99); // 7 ids over a capacity of 6: the turn keeps the newest half, old4, old5 and x
    expect(cache.trim(6, noKeep)).toBe(true);
    const survivors = ["old4", "old5", "x"].filter((id) => cache.has(id));
    expect(survivors).toEqual(["old4", "old5", "x"]);
    expect(cache.get("old5")).toBe(5); // used: copied forward
    for (const id of idsFrom("new", 4)) cache.set(id, 0);
    expect(cache.size).toBe(7);
    expect(cache.trim(6, noKeep)).toBe(true);
    expect([cache.has("old5"), cache.has("old4"), cache.has("x"), cache.has("new3")]).toEqual([
      true,
      false,
      false,
      true,
    ]);
    expect(cache.get("old5")).toBe(5);
  });

  it("given an id set again after a turn, when counted, then it is one id with its new value", () => {
    const cache = cacheOf(idsFrom("t", 5));
    cache.trim(4, noKeep);
    const held = idsFrom("t", 5).filter((id) => cache.has(id));
    cache.set(held[0]!, 50);
    expect(cache.size).toBe(held.length);
    expect(cache.get(held[0]!)).toBe(50);
  });

  it("given null held for an id (a token known absent), when got across a turn and set again, then null is a hit and the id counts once", () => {
    const cache = new TokenCache<number | null>();
    for (const id of idsFrom("n", 4)) cache.set(id, null);
    cache.set("v", 1);
    // Five ids over a capacity of 4: the turn keeps n0 (asked) and the newest, v, in the older generation.
    expect(cache.trim(4, new Set(["n0"]))).toBe(true);
    expect(["n0", "n1", "n3", "v"].map((id) => cache.has(id))).toEqual([true, false, false, true]);
    expect(cache.get("n0")).toBeNull(); // a hit, copied forward
    expect(cache.get("n0")).toBeNull();
    cache.set("n0", 7);
    expect(cache.size).toBe(2);
    expect(cache.get("n0")).toBe(7);
  });

  it("given kept ids only in the older generation, when the generation turns, then they stay", () => {
    const cache = cacheOf(idsFrom("a", 3));
    cache.set("a3", 3); // 4 over a capacity of 3
    cache.trim(3, noKeep);
    const older = idsFrom("a", 4).filter((id) => cache.has(id));
    for (const id of idsFrom("n", 3)) cache.set(id, 0);
    expect(cache.trim(3, new Set([older[0]!]))).toBe(true);
    expect(cache.has(older[0]!)).toBe(true);
  });

  it("given a steady stream of new ids, when trimmed after each batch, then the size stays within the capacity plus a batch and above a quarter of it", () => {
    const cache = new TokenCache<number>();
    const capacity = 1000;
    const batch = 150;
    const sizes: number[] = [];
    for (let round = 0; round < 60; round++) {
      const keep = new Set(idsFrom(`r${round}-`, batch));
      for (const id of keep) cache.set(id, round);
      expect(cache.size).toBeLessThanOrEqual(capacity + batch);
      cache.trim(capacity, keep);
      sizes.push(cache.size);
      for (const id of keep) expect(cache.get(id)).toBe(round);
    }
    expect(Math.max(...sizes)).toBeLessThanOrEqual(capacity);
    expect(Math.min(...sizes.slice(10))).toBeGreaterThanOrEqual(capacity / 4);
  });

  it("given a hot set near the capacity and new ids each batch, when trimmed, then the ids of the batch are never lost", () => {
    const cache = new TokenCache<number>();
    const capacity = 1000;
    const hot = idsFrom("hot", 700);
    for (const id of hot) cache.set(id, 1);
    for (let round = 0; round < 40; round++) {
      const fresh = idsFrom(`f${round}-`, 100);
      for (const id of fresh) cache.set(id, 2);
      const used = hot.filter((_, k) => k % 40 === round);
      // As the applier does: a token not held is loaded before the batch is planned.
      for (const id of used) if (cache.get(id) === undefined) cache.set(id, 1);
      cache.trim(capacity, new Set([...fresh, ...used]));
      expect(cache.size).toBeLessThanOrEqual(capacity);
      for (const id of used) expect(cache.has(id)).toBe(true);
    }
  });
});
