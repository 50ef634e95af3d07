// Avro `bytes` with logicalType decimal (scale 0) as an exact bigint: the big-endian two's-complement
// unscaled value, as Java and Confluent write it. A JS number would lose digits past 2^53.
import avro from "avsc";

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

export function twosComplementToBigint(buffer: Buffer): bigint {
  if (buffer.length === 0) return 0n;
  let value = 0n;
  for (const byte of buffer) value = (value << 8n) | BigInt(byte);
  const negative = (buffer[0]! & 0x80) !== 0;
  return negative ? value - (1n << BigInt(buffer.length * 8)) : value;
}

export class DecimalBigintType extends avro.types.LogicalType {
  private readonly scale: number;

  constructor(schema: avro.Schema, opts?: unknown) {
    super(schema, opts);
    this.scale = (schema as { scale?: number }).scale ?? 0;
    if (this.scale !== 0) throw new Error("only decimals of scale 0 are supported as bigint");
  }

  protected override _fromValue(value: Buffer): bigint {
    return twosComplementToBigint(value);
  }

  protected override _toValue(value: unknown): Buffer {
    if (typeof value !== "bigint") throw new TypeError(`decimal expects a bigint, got ${typeof value}`);
    return bigintToTwosComplement(value);
  }

  protected override _resolve(type: avro.Type): unknown {
    // A writer of the same logical type resolves as is; plain bytes are read as their unscaled value.
    const sameLogical = type instanceof DecimalBigintType && type.scale === this.scale;
    return sameLogical || avro.Type.isType(type, "bytes") ? (value: unknown) => value : undefined;
  }
}

export const avroLogicalTypes = { decimal: DecimalBigintType };
