import { describe, expect, it } from "vitest";
import { partitionsOfShard, shardOf } from "../../services/common/shards.ts";

describe("shard routing", () => {
  it("given 6 partitions and 2 shards, when routed, then shard = partition mod 2", () => {
    expect([0, 1, 2, 3, 4, 5].map((p) => shardOf(p, 2))).toEqual([0, 1, 0, 1, 0, 1]);
  });
  it("given 7 partitions and 3 shards, when listing each shard's partitions, then every partition appears exactly once", () => {
    const all = [0, 1, 2].flatMap((k) => partitionsOfShard(k, 3, 7));
    expect(all.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(partitionsOfShard(1, 3, 7)).toEqual([1, 4]);
  });
  it("given a bad partition or shard count, when routed, then an assertion fails", () => {
    expect(() => shardOf(-1, 2)).toThrow();
    expect(() => shardOf(1, 0)).toThrow();
  });
});
