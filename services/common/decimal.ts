// Avro `bytes` with logicalType decimal (scale 0) as an exact bigint: the big-endian two's-complement
// unscaled value, as Java and Confluent write it. A JS number would lose digits past 2^53.
import avro from "avsc";

/** A decimal's bytes that cannot be a value of its type: empty, or more digits than its precision. */
export class DecimalRangeError extends RangeError {
  override name = "DecimalRangeError";
}

export function bigintToTwosComplement(value: bigint): Buffer {
  if (value === 0n) return Buffer.from([0]);
  const bytes: number[] = [];
  let rest = value;
  // Emit bytes until what is left is pure sign extension of the last byte's top bit.
  for (;;) {
    const byte = Number(rest & 0xffn);
    bytes.push(byte);
    rest >>= 8n;
    const signBit = (byte & 0x80) !== 0;
    if ((rest === 0n && !signBit) || (rest === -1n && signBit)) break;
  }
  return Buffer.from(bytes.reverse());
}

/** The bytes Java's minimal form of 10^precision - 1 takes: 16 for precision 38. */
export function decimalBytesMaxOf(precision: number): number {
  return bigintToTwosComplement(10n ** BigInt(precision) - 1n).length;
}

/**
 * The value of big-endian two's-complement bytes, in time linear in their length (one hex string,
 * one BigInt parse; shifting a bigint byte by byte was quadratic: minutes for 900 KiB). Leading
 * sign-extension bytes (00 before a clear top bit, ff before a set one) carry no value and are
 * skipped first, so a non-minimal encoding is read as Java reads it; `significantBytesMax` then
 * refuses anything longer before a bigint is built.
 */
export function twosComplementToBigint(buffer: Buffer, significantBytesMax = Infinity): bigint {
  if (buffer.length === 0) throw new DecimalRangeError("a decimal needs at least one byte");
  const start = firstSignificantByte(buffer);
  const significantBytes = buffer.length - start;
  if (significantBytes > significantBytesMax) {
    throw new DecimalRangeError(
      `a decimal of ${significantBytes} significant bytes is beyond its precision (at most ${significantBytesMax})`,
    );
  }
  // Up to 6 bytes (amounts below 2^47) a signed integer read in place is exact: no hex string, no
  // parse (issue #13: this was an allocation per record).
  if (significantBytes <= 6) return BigInt(buffer.readIntBE(start, significantBytes));
  const significant = buffer.subarray(start);
  const unsigned = BigInt(`0x${significant.toString("hex")}`);
  const negative = (significant[0]! & 0x80) !== 0;
  return negative ? unsigned - (1n << BigInt(significantBytes * 8)) : unsigned;
}

/** Index of the first byte that is not a redundant sign extension of the byte after it. */
function firstSignificantByte(buffer: Buffer): number {
  let start = 0;
  while (start + 1 < buffer.length) {
    const byte = buffer[start]!;
    const nextSignBit = buffer[start + 1]! & 0x80;
    if (!((byte === 0x00 && nextSignBit === 0) || (byte === 0xff && nextSignBit !== 0))) break;
    start++;
  }
  return start;
}

export class DecimalBigintType extends avro.types.LogicalType {
  private readonly scale: number;
  /** Bytes a value of this precision can need; decoding refuses longer ones before building them. */
  private readonly bytesMax: number;

  constructor(schema: avro.Schema, opts?: unknown) {
    super(schema, opts);
    const { scale, precision } = schema as { scale?: number; precision?: number };
    this.scale = scale ?? 0;
    if (this.scale !== 0) throw new Error("only decimals of scale 0 are supported as bigint");
    if (!(Number.isSafeInteger(precision) && precision! >= 1 && precision! <= 1000))
      throw new Error("a decimal needs a precision from 1 to 1000");
    this.bytesMax = decimalBytesMaxOf(precision!);
  }

  protected override _fromValue(value: Buffer): bigint {
    return twosComplementToBigint(value, this.bytesMax);
  }

  protected override _toValue(value: unknown): Buffer {
    if (typeof value !== "bigint") throw new TypeError(`decimal expects a bigint, got ${typeof value}`);
    return bigintToTwosComplement(value);
  }

  protected override _resolve(type: avro.Type): unknown {
    // A writer of the same logical type has decoded (and bounded) the value already; plain bytes
    // are read as their unscaled value, under this reader's bound.
    if (type instanceof DecimalBigintType && type.scale === this.scale) return (value: unknown) => value;
    if (avro.Type.isType(type, "bytes")) return (value: Buffer) => this._fromValue(value);
    return undefined;
  }
}

export const avroLogicalTypes = { decimal: DecimalBigintType };
