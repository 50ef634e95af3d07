// The Long parse installed on kafkajs (common/kafka-long-memo.ts) against kafkajs' own: the same
// value for every string in any order, and the same offsets and timestamps for a decoded batch.
import { createRequire } from "node:module";
import fc from "fast-check";
// @ts-expect-error TS7016: no declaration file for a kafkajs internal
import LongModule from "kafkajs/src/utils/long.js";
import { describe, expect, it } from "vitest";
import { fromString, kafkajsFromString } from "../../services/common/kafka-long-memo.ts";
import "../../services/common/kafka.ts";

type LongLike = { value: bigint };
const Long = LongModule as { fromString: (text: string) => LongLike; fromValue: (v: unknown) => LongLike };
const require = createRequire(import.meta.url);

const int64Text = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);

/** A kafkajs record batch of `count` records from `firstOffset`, decoded by kafkajs' decoder. */
async function decodedBatch(firstOffset: string, firstTimestamp: number, count: number) {
  const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js");
  const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js");
  const decodeBatch = require("kafkajs/src/protocol/recordBatch/v0/decoder.js");
  const Decoder = require("kafkajs/src/protocol/decoder.js");
  const records = Array.from({ length: count }, (_, k) =>
    Record({ offsetDelta: k, timestampDelta: k * 3, key: Buffer.from(`t-${k}`), value: Buffer.from([k]) }),
  );
  const encoded = await RecordBatch({ firstOffset, firstTimestamp, records, lastOffsetDelta: count - 1 });
  const batch = await decodeBatch(new Decoder(encoded.buffer));
  return (batch.records as { offset: string; timestamp: string }[]).map((r) => [r.offset, r.timestamp]);
}

describe("kafkajs Long parse with the last two strings remembered", () => {
  it("is the one kafkajs' Long uses once common/kafka.ts is loaded", () => {
    expect(Long.fromString).toBe(fromString);
    expect(kafkajsFromString).not.toBe(fromString);
  });

  it("given any sequence of 64-bit decimal strings, repeats and alternations included, when parsed, then each value is kafkajs' own", () => {
    const sequence = fc.array(fc.oneof(int64Text, fc.constantFrom("0", "1", "-1", "42")), { maxLength: 40 });
    fc.assert(
      fc.property(sequence, (texts) => {
        for (const text of texts)
          expect(fromString.call(Long, text)).toEqual(kafkajsFromString.call(Long, text));
      }),
      { numRuns: 300 },
    );
  });

  it("given two batches decoded in turn, when their records are read, then offsets and timestamps are each batch's own", async () => {
    const first = await decodedBatch("1000", 1_700_000_000_000, 5);
    const second = await decodedBatch("9007199254740993", 1_700_000_100_000, 3);
    expect(first).toEqual([
      ["1000", "1700000000000"],
      ["1001", "1700000000003"],
      ["1002", "1700000000006"],
      ["1003", "1700000000009"],
      ["1004", "1700000000012"],
    ]);
    expect(second).toEqual([
      ["9007199254740993", "1700000100000"],
      ["9007199254740994", "1700000100003"],
      ["9007199254740995", "1700000100006"],
    ]);
  });

  it("given kafkajs' special strings and an empty one, when parsed, then they behave as kafkajs' parse", () => {
    for (const text of ["NaN", "Infinity", "-Infinity"])
      expect(fromString.call(Long, text)).toEqual(kafkajsFromString.call(Long, text));
    expect(() => fromString.call(Long, "")).toThrow("empty string");
  });
});
