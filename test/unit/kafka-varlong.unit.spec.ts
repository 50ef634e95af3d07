// The varlong reader installed on kafkajs' Decoder (common/kafka-varlong.ts) against kafkajs' own:
// the same value and the same position after it, for every 64-bit value and every place in a buffer.
import fc from "fast-check";
// @ts-expect-error TS7016: no declaration file for a kafkajs internal
import Decoder from "kafkajs/src/protocol/decoder.js";
// @ts-expect-error TS7016: no declaration file for a kafkajs internal
import EncoderModule from "kafkajs/src/protocol/encoder.js";
import { describe, expect, it } from "vitest";
import { kafkajsReadVarLong, readVarLong } from "../../services/common/kafka-varlong.ts";

type Read = (this: { buffer: Buffer; offset: number }) => unknown;

/** kafkajs' encoder: the bytes its producer writes. */
const Encoder = EncoderModule as new () => { writeVarLong(value: bigint): { buffer: Buffer } };

/** The bytes kafkajs' producer writes for `value`, with `before` and `after` bytes around them. */
function encoded(value: bigint, before: number, after: number): Buffer {
  const varlong = new Encoder().writeVarLong(value).buffer;
  return Buffer.concat([Buffer.alloc(before, 0x80), varlong, Buffer.alloc(after, 0xff)]);
}

/** Reads at `at` with `read`: the value as a bigint and the offset after it, or the error's name. */
function readWith(read: Read, buffer: Buffer, at: number): { value: string; offset: number } | string {
  const decoder = { buffer, offset: at };
  try {
    const long = read.call(decoder) as { value: bigint };
    return { value: long.value.toString(), offset: decoder.offset };
  } catch (error) {
    return (error as Error).name;
  }
}

const edges = [
  0n,
  1n,
  -1n,
  63n,
  -64n,
  64n,
  8191n,
  -8192n,
  2n ** 48n - 1n,
  -(2n ** 48n),
  2n ** 48n,
  -(2n ** 48n) - 1n,
];
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });

describe("kafkajs varlong reader", () => {
  it("is the one kafkajs' Decoder uses once common/kafka.ts is loaded", async () => {
    await import("../../services/common/kafka.ts");
    expect(Decoder.prototype.readVarLong).toBe(readVarLong);
  });

  it("given the edges of the number path (2^48 on either side), when read, then value and offset are kafkajs' own", () => {
    for (const value of [...edges, 2n ** 63n - 1n, -(2n ** 63n)]) {
      const buffer = encoded(value, 3, 8);
      const ours = readWith(readVarLong, buffer, 3);
      expect(ours).toEqual(readWith(kafkajsReadVarLong, buffer, 3));
      expect(ours).toEqual({ value: value.toString(), offset: buffer.length - 8 });
    }
  });

  it("given any 64-bit value anywhere in a buffer, near its end too, when read, then value and offset are kafkajs' own", () => {
    const small = fc.bigInt({ min: -(2n ** 57n), max: 2n ** 57n }); // up to 9 bytes, past 2^53
    fc.assert(
      fc.property(
        fc.oneof(int64, small, fc.constantFrom(...edges)),
        fc.nat(4),
        fc.nat(9),
        (value, before, after) => {
          const buffer = encoded(value, before, after);
          expect(readWith(readVarLong, buffer, before)).toEqual(readWith(kafkajsReadVarLong, buffer, before));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("given bytes that never end a varlong (a truncated buffer), when read, then it fails or reads as kafkajs does", () => {
    for (const length of [1, 6, 7, 8, 9, 12]) {
      const buffer = Buffer.alloc(length, 0x80);
      expect(readWith(readVarLong, buffer, 0)).toEqual(readWith(kafkajsReadVarLong, buffer, 0));
    }
  });
});
