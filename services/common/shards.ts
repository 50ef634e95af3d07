// A record's shard is its Kafka partition mod the shard count: a token, living on one partition,
// keeps its whole history on one shard.
import { assert } from "./assert.ts";

export function shardOf(partition: number, shardCount: number): number {
  assert(Number.isInteger(partition) && partition >= 0, `partition ${partition} is a non-negative integer`);
  assert(Number.isInteger(shardCount) && shardCount >= 1, `shard count ${shardCount} is at least 1`);
  return partition % shardCount;
}

/** The partitions whose rows live on `shard`. */
export function partitionsOfShard(shard: number, shardCount: number, partitionCount: number): number[] {
  const partitions: number[] = [];
  for (let p = shard; p < partitionCount; p += shardCount) partitions.push(p);
  return partitions;
}
