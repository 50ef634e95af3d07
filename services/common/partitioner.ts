// The partition a key belongs on, as the Java client's default partitioner computes it (murmur2 of
// the key bytes, positive, mod the partition count): the same function producers use (kafka.ts).
import { javaCompatiblePartitioner } from "./kafka.ts";

/** Returns key → partition for a topic of `partitionCount` partitions. */
export function keyPartitioner(partitionCount: number): (key: Buffer) => number {
  const partitionMetadata = Array.from({ length: partitionCount }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  const partitioner = javaCompatiblePartitioner();
  return (key) => partitioner({ topic: "", partitionMetadata, message: { key, value: null } });
}
