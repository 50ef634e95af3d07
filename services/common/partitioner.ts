// The partition a key belongs on, as the Java client's default partitioner computes it: murmur2 of
// the key bytes, made positive, modulo the partition count. Producers (kafka.ts) and the applier's
// routing check use this one function. Written here with 32-bit integer arithmetic (Math.imul):
// kafkajs' own murmur2 works in 64-bit Long objects, about 4 µs and a dozen allocations per key,
// which the applier paid on every record it checks.

const seed = 0x9747b28c | 0;
const m = 0x5bd1e995;

/** Kafka's Utils.murmur2: the same signed 32-bit result as the Java client for the same bytes. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = seed ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i << 2;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  // Java's switch falls through from 3 to 1: the same as these three steps.
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) h = Math.imul(h ^ data[tail]!, m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a key on a topic of `partitionCount` partitions (Java's toPositive, then modulo). */
export function partitionOfKey(key: Uint8Array, partitionCount: number): number {
  return (murmur2(key) & 0x7fffffff) % partitionCount;
}

/** Returns key → partition for a topic of `partitionCount` partitions. */
export function keyPartitioner(partitionCount: number): (key: Uint8Array) => number {
  if (!(Number.isSafeInteger(partitionCount) && partitionCount >= 1))
    throw new RangeError("partitionCount must be a whole number of at least 1");
  return (key) => partitionOfKey(key, partitionCount);
}
