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
  it("given values set, some twice and one null-like 0, when asked, then the latest comes back and size counts ids once", () => {
    const cache = cacheOf(["a", "b", "c"]);
    cache.set("a", 10);
    expect([cache.get("a"), cache.get("b"), cache.get("c"), cache.get("z")]).toEqual([10, 1, 2, undefined]);
    expect(cache.size).toBe(3);
    expect(cache.has("c")).toBe(true);
    expect(cache.has("z")).toBe(false);
  });

  it("given fewer than half the capacity, when trimmed, then nothing is dropped", () => {
    const cache = cacheOf(idsFrom("t", 4));
    expect(cache.trim(10, noKeep)).toBe(false);
    expect(cache.size).toBe(4);
  });

  it("given half the capacity, when trimmed, then the generation turns and nothing is dropped yet", () => {
    const cache = cacheOf(idsFrom("t", 5));
    expect(cache.trim(10, noKeep)).toBe(false);
    expect(cache.size).toBe(5);
    expect(cache.get("t0")).toBe(0);
  });

  it("given two full turns, when trimmed, then the ids unused for a whole generation are dropped and the used ones kept", () => {
    const cache = cacheOf(idsFrom("old", 5));
    cache.trim(10, noKeep); // old0..old4 become the older generation
    expect(cache.get("old3")).toBe(3); // used: copied forward
    for (const [k, id] of idsFrom("new", 4).entries()) cache.set(id, 100 + k);
    expect(cache.size).toBe(9);
    expect(cache.trim(10, noKeep)).toBe(true);
    expect(cache.has("old0")).toBe(false);
    expect(cache.get("old3")).toBe(3);
    expect(cache.get("new2")).toBe(102);
    expect(cache.size).toBe(5);
  });

  it("given an id set again after the turn, when counted and turned, then it is one id with its new value", () => {
    const cache = cacheOf(idsFrom("t", 2));
    cache.trim(4, noKeep);
    cache.set("t0", 50);
    expect(cache.size).toBe(2);
    cache.set("t2", 2);
    expect(cache.trim(4, noKeep)).toBe(true); // t1 was not used for a generation
    expect([cache.get("t0"), cache.has("t1"), cache.size]).toEqual([50, false, 2]);
  });

  it("given kept ids only in the older generation, when the generation turns, then they stay", () => {
    const cache = cacheOf(["k", "x"]);
    cache.trim(4, noKeep);
    cache.set("y", 1);
    cache.set("z", 2);
    expect(cache.trim(4, new Set(["k"]))).toBe(true);
    expect([cache.has("k"), cache.has("x"), cache.has("y"), cache.has("z")]).toEqual([
      true,
      false,
      true,
      true,
    ]);
  });

  it("given many more ids than the capacity at once, when trimmed, then the kept and the newest remain up to the capacity", () => {
    const ids = idsFrom("t", 1000);
    const cache = cacheOf(ids);
    expect(cache.trim(100, new Set(["t0", "t1"]))).toBe(true);
    expect(cache.size).toBe(100);
    expect(cache.has("t0") && cache.has("t1") && cache.has("t999") && cache.has("t902")).toBe(true);
    expect(cache.has("t901")).toBe(false);
  });

  it("given a steady stream of new ids, when trimmed after each batch, then the size never exceeds the capacity plus a batch", () => {
    const cache = new TokenCache<number>();
    const capacity = 1000;
    const batch = 300;
    let sizeMax = 0;
    for (let round = 0; round < 50; round++) {
      const keep = new Set(idsFrom(`r${round}-`, batch));
      for (const id of keep) cache.set(id, round);
      sizeMax = Math.max(sizeMax, cache.size);
      cache.trim(capacity, keep);
      for (const id of keep) expect(cache.get(id)).toBe(round);
    }
    expect(sizeMax).toBeLessThanOrEqual(capacity + batch);
    expect(cache.size).toBeGreaterThanOrEqual(capacity / 2);
  });
});
