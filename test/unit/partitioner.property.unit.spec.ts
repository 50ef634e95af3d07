// Tally's murmur2 (32-bit integer arithmetic) against kafkajs' own (64-bit Long objects), which
// kafkajs documents as the Java client's: any bytes, any partition count, the same partition.
import fc from "fast-check";
import { Partitioners } from "kafkajs";
import { describe, expect, it } from "vitest";
import { javaCompatiblePartitioner } from "../../services/common/kafka.ts";
import { keyPartitioner, murmur2 } from "../../services/common/partitioner.ts";
import { fuzzRuns, fuzzSeed } from "../support/arbitraries.ts";

const kafkajsPartitionOf = (key: Buffer, partitionCount: number) =>
  Partitioners.DefaultPartitioner()({
    topic: "t",
    partitionMetadata: Array.from({ length: partitionCount }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
    })),
    message: { key, value: null },
  });

describe("murmur2 partitioning", () => {
  it("given any key bytes and partition count, when partitioned, then kafkajs' Java-compatible partitioner agrees", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 1, max: 1024 }), (bytes, count) => {
        const key = Buffer.from(bytes);
        expect(keyPartitioner(count)(key)).toBe(kafkajsPartitionOf(key, count));
      }),
      { numRuns: fuzzRuns(2000), seed: fuzzSeed },
    );
  });

  it("given the empty key and short tails, when hashed, then the values are Java's signed 32-bit ones", () => {
    // Utils.murmur2 of 0..3 bytes: each tail length takes its own path through the final mix.
    for (const bytes of [[], [0x61], [0x61, 0x62], [0x61, 0x62, 0x63], [0xff, 0xff, 0xff, 0xff, 0xff]]) {
      const key = Buffer.from(bytes);
      const ours = murmur2(key);
      expect(Number.isInteger(ours) && ours >= -(2 ** 31) && ours < 2 ** 31).toBe(true);
      expect(keyPartitioner(1000)(key)).toBe(kafkajsPartitionOf(key, 1000));
    }
  });

  it("given the producer's partitioner, when a message has a key, a partition or neither, then each rule holds", () => {
    const partitionMetadata = Array.from({ length: 6 }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
    }));
    const partitioner = javaCompatiblePartitioner();
    const key = Buffer.from("token-42");
    expect(partitioner({ topic: "t", partitionMetadata, message: { key, value: null } })).toBe(
      kafkajsPartitionOf(key, 6),
    );
    expect(partitioner({ topic: "t", partitionMetadata, message: { key: "token-42", value: null } })).toBe(
      kafkajsPartitionOf(key, 6),
    );
    expect(partitioner({ topic: "t", partitionMetadata, message: { key, value: null, partition: 5 } })).toBe(
      5,
    );
    const keyless = partitioner({ topic: "t", partitionMetadata, message: { value: null } });
    expect(keyless >= 0 && keyless < 6).toBe(true);
  });
});
