// The decimal codec on fixed byte vectors (Java's BigInteger.toByteArray is the reference), on
// hostile sizes, and through the Avro types the applier decodes with.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { avroTypeOf, transferEventSchemaText, transferEventType } from "../../services/common/avro.ts";
import {
  bigintToTwosComplement,
  DecimalRangeError,
  decimalBytesMaxOf,
  twosComplementToBigint,
} from "../../services/common/decimal.ts";
import { mintOf } from "../support/events.ts";

const hex = (text: string) => Buffer.from(text, "hex");

describe("encoding a bigint", () => {
  it.each([
    [0n, "00"],
    [1n, "01"],
    [127n, "7f"],
    [128n, "0080"],
    [255n, "00ff"],
    [-1n, "ff"],
    [-128n, "80"],
    [-129n, "ff7f"],
    [2n ** 63n, "008000000000000000"],
  ])("given %s, when encoded, then the bytes are Java's minimal %s", (value, expected) => {
    expect(bigintToTwosComplement(value).toString("hex")).toBe(expected);
  });
});

describe("decoding two's complement bytes", () => {
  it.each([
    ["00", 0n],
    ["0080", 128n],
    ["80", -128n],
    ["ff7f", -129n],
    ["7f", 127n],
    ["ff", -1n],
    // non-minimal encodings: sign extension adds no value
    ["0000ff", 255n],
    ["ffff80", -128n],
    ["00000000", 0n],
    ["ffffffff", -1n],
  ])("given %s, when decoded, then %s", (bytes, expected) => {
    expect(twosComplementToBigint(hex(bytes))).toBe(expected);
  });

  it("given any value, around the 6-byte read in place too, with sign-extension bytes before it, when decoded, then the value", () => {
    const edges = [2n ** 47n - 1n, -(2n ** 47n), 2n ** 47n, -(2n ** 47n) - 1n, 2n ** 39n, -(2n ** 39n) - 1n];
    const value = fc.oneof(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), fc.constantFrom(...edges));
    fc.assert(
      fc.property(value, fc.nat(3), (v, extension) => {
        const minimal = bigintToTwosComplement(v);
        const sign = v < 0n ? 0xff : 0x00;
        const bytes = Buffer.concat([Buffer.alloc(extension, sign), minimal]);
        expect(twosComplementToBigint(bytes)).toBe(v);
      }),
      { numRuns: 3000 },
    );
  });

  it("given no bytes at all, when decoded, then a DecimalRangeError (Java's BigInteger refuses them too)", () => {
    expect(() => twosComplementToBigint(Buffer.alloc(0))).toThrow(DecimalRangeError);
  });

  it.each([0n, 1n, -1n, 2n ** 64n + 7n, 10n ** 38n - 1n, -(10n ** 38n - 1n)])(
    "given %s, when encoded and decoded, then it is exactly the same",
    (value) => {
      expect(twosComplementToBigint(bigintToTwosComplement(value))).toBe(value);
    },
  );

  it("given 900 KiB of bytes, when decoded without a bound, then the time is linear (well under a second)", () => {
    const bytes = Buffer.alloc(900 * 1024, 0x5a);
    const startedMs = performance.now();
    const value = twosComplementToBigint(bytes);
    expect(performance.now() - startedMs).toBeLessThan(1_000);
    expect(value > 0n).toBe(true);
    expect(value.toString(16).length).toBe(900 * 1024 * 2);
  });
});

describe("the bound a decimal's precision sets", () => {
  it("given precision 38, when asked, then 16 bytes hold every value up to 10^38-1 and no more are needed", () => {
    expect(decimalBytesMaxOf(38)).toBe(16);
    expect(bigintToTwosComplement(10n ** 38n - 1n).length).toBe(16);
    expect(bigintToTwosComplement(-(10n ** 38n - 1n)).length).toBe(16);
  });

  it("given 17 bytes that are a sign extension of 10^38-1, when decoded under the bound, then the exact value", () => {
    const padded = Buffer.concat([hex("00"), bigintToTwosComplement(10n ** 38n - 1n)]);
    expect(twosComplementToBigint(padded, 16)).toBe(10n ** 38n - 1n);
  });

  it("given 17 significant bytes, when decoded under a bound of 16, then a DecimalRangeError naming the size", () => {
    expect(() => twosComplementToBigint(bigintToTwosComplement(2n ** 128n), 16)).toThrow(
      /17 significant bytes/,
    );
  });

  it("given 900 KiB of significant bytes, when decoded under the bound, then refused in milliseconds", () => {
    const bytes = Buffer.alloc(900 * 1024, 0x5a);
    const startedMs = performance.now();
    expect(() => twosComplementToBigint(bytes, 16)).toThrow(DecimalRangeError);
    expect(performance.now() - startedMs).toBeLessThan(100);
  });

  it("given 900 KiB of zeros then 5, when decoded under the bound, then 5 (sign extension is not size)", () => {
    const bytes = Buffer.concat([Buffer.alloc(900 * 1024), hex("05")]);
    expect(twosComplementToBigint(bytes, 16)).toBe(5n);
  });
});

describe("the decimal through Avro", () => {
  /** A v1 body whose amount is these bytes: the same wire form as any `bytes` value. */
  function bodyWithAmountBytes(amount: Buffer): Buffer {
    const bytesWriter = JSON.parse(transferEventSchemaText);
    for (const field of bytesWriter.fields) if (field.name === "amount") field.type = "bytes";
    const event = mintOf();
    return avroTypeOf(bytesWriter).toBuffer({ ...event, amount });
  }

  it("given an amount of 900 KiB, when the reader decodes the body, then a DecimalRangeError in milliseconds", () => {
    const body = bodyWithAmountBytes(Buffer.alloc(900 * 1024, 0x11));
    const startedMs = performance.now();
    expect(() => transferEventType.fromBuffer(body)).toThrow(DecimalRangeError);
    expect(performance.now() - startedMs).toBeLessThan(100);
  });

  it("given a writer whose amount is plain bytes, when resolved into the reader, then the amount is a bigint", () => {
    const bytesWriter = JSON.parse(transferEventSchemaText);
    for (const field of bytesWriter.fields) if (field.name === "amount") field.type = "bytes";
    const writer = avroTypeOf(bytesWriter);
    const body = writer.toBuffer({ ...mintOf(), amount: hex("0080") });
    const record = transferEventType.fromBuffer(body, transferEventType.createResolver(writer));
    expect(record.amount).toBe(128n);
  });

  it("given a writer decimal of scale 2, when its schema is parsed, then it is refused", () => {
    const scaled = JSON.parse(transferEventSchemaText);
    for (const field of scaled.fields) if (field.name === "amount") field.type.scale = 2;
    expect(() => avroTypeOf(scaled)).toThrow(/scale/);
  });
});
