// Record values for the decoder's property tests (test/unit/decode.property.unit.spec.ts): Avro
// written by hand so that every length, union branch and byte can lie, and any value a topic can hold.
import { transferEventType } from "../../services/common/avro.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { fc, transferId } from "./arbitraries.ts";

/** The one schema id the stub registry knows (decoder-checks.ts): Tally's own TransferEvent schema. */
export const knownId = 7;

/** An unsigned varint of any size (7 bits a byte, least significant first). */
function varint(unsigned: bigint): Buffer {
  const out: number[] = [];
  let rest = unsigned;
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return Buffer.from(out);
}

/** Avro's zigzag long. */
const long = (n: bigint) => varint(n >= 0n ? 2n * n : -2n * n - 1n);

/** A string or bytes field: its length (true, or a lie) and its bytes. */
type RawField = { bytes: Uint8Array; length: bigint | null };
const rawFieldBytes = (field: RawField) =>
  Buffer.concat([long(field.length ?? BigInt(field.bytes.length)), field.bytes]);

const validUtf8 = fc
  .string({ unit: "binary", maxLength: 16 })
  .map((text) => new Uint8Array(Buffer.from(text, "utf8")));
const utf8Traps = [
  [0xff], // never UTF-8
  [0xfe],
  [0xef, 0xbf, 0xbd], // a real U+FFFD: valid
  [0xc0, 0x80], // overlong NUL
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate written as UTF-8
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0xe2, 0x82], // truncated sequence
  [0x77, 0x2d, 0xff, 0x41], // w-\xffA
].map((bytes) => new Uint8Array(bytes));
const anyBytes = fc.oneof(
  { weight: 6, arbitrary: validUtf8 },
  { weight: 2, arbitrary: fc.constantFrom(...utf8Traps) },
  {
    weight: 2,
    arbitrary: fc.tuple(validUtf8, fc.constantFrom(...utf8Traps), validUtf8).map((p) => Buffer.concat(p)),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }) },
);
/** Mostly the true length (null); sometimes a lie, a negative one, or one far beyond any buffer. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>, weight = 1) =>
  fc.oneof({ weight: 24, arbitrary: fc.constant(null) }, { weight, arbitrary });
const lengthLie = rarely(
  fc.oneof(
    fc.constantFrom(-1n, -(2n ** 63n), 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 62n, 2n ** 63n - 1n),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.nat(40).map(BigInt),
  ),
);
const rawField = fc.record({ bytes: anyBytes, length: lengthLie });
/** A union of null and string: the branch (0, 1, or a bad one) and the string. */
const rawOptional = fc.record({
  branch: fc.oneof(
    { weight: 30, arbitrary: fc.constantFrom(0n, 1n) },
    { weight: 1, arbitrary: fc.bigInt(-3n, 4n) },
  ),
  field: rawField,
});
const amountBytes = fc.record({
  bytes: fc.oneof(
    { weight: 6, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 15 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 40 }) },
    // redundant sign extension before a small value: Java reads 00 00 01 as 1
    { weight: 1, arbitrary: fc.nat(24).map((pad) => new Uint8Array([...new Array(pad).fill(0), 1])) },
  ),
  length: lengthLie,
});
const occurredLong = fc.oneof(
  { weight: 8, arbitrary: fc.bigInt({ min: -(2n ** 52n), max: 2n ** 52n }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(2n ** 53n - 1n, 2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n)),
  },
);

export const structuredBody = fc.record({
  transfer_id: rawField,
  batch_id: rawOptional,
  token_id: rawField,
  asset: rawField,
  amount: amountBytes,
  from_wallet: rawOptional,
  to_wallet: rawOptional,
  prev_state: rawOptional,
  next_state: rawField,
  occurred_at: occurredLong,
  /** cut the body short at this byte */
  cut: rarely(fc.nat(), 2),
  trailing: rarely(fc.uint8Array({ minLength: 1, maxLength: 8 }), 2),
});
export type StructuredBody = typeof structuredBody extends fc.Arbitrary<infer T> ? T : never;

const optionalBytes = (o: StructuredBody["batch_id"]) =>
  o.branch === 1n ? Buffer.concat([long(1n), rawFieldBytes(o.field)]) : long(o.branch);

export function encodeStructured(body: StructuredBody): Buffer {
  const full = Buffer.concat([
    rawFieldBytes(body.transfer_id),
    optionalBytes(body.batch_id),
    rawFieldBytes(body.token_id),
    rawFieldBytes(body.asset),
    rawFieldBytes(body.amount),
    optionalBytes(body.from_wallet),
    optionalBytes(body.to_wallet),
    optionalBytes(body.prev_state),
    rawFieldBytes(body.next_state),
    long(body.occurred_at),
  ]);
  const cut = body.cut === null ? full : full.subarray(0, body.cut % (full.length + 1));
  return body.trailing === null ? cut : Buffer.concat([cut, body.trailing]);
}

/** Written exactly as Avro says: true lengths, branches 0 or 1, nothing cut or added. */
export function isExact(body: StructuredBody): boolean {
  const optionals = [body.batch_id, body.from_wallet, body.to_wallet, body.prev_state];
  const fields = [body.transfer_id, body.token_id, body.asset, body.amount, body.next_state];
  return (
    body.cut === null &&
    body.trailing === null &&
    optionals.every((o) => o.branch === 0n || (o.branch === 1n && o.field.length === null)) &&
    fields.every((f) => f.length === null)
  );
}

export function frameOf(magic: number, schemaId: number, body: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(magic, 0);
  header.writeUInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}

const schemaId = fc.oneof(
  { weight: 8, arbitrary: fc.constant(knownId) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff) },
  { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) },
);

/** A well-formed event, its strings any Unicode (no lone surrogates: those are not UTF-8). */
export const encodableEvent = fc.record({
  transfer_id: fc.oneof(transferId, fc.string({ unit: "binary", maxLength: 40 })),
  batch_id: fc.option(fc.string({ unit: "binary", maxLength: 12 }), { nil: null }),
  token_id: fc.string({ unit: "binary", maxLength: 20 }),
  asset: fc.string({ unit: "binary", maxLength: 20 }),
  amount: fc.oneof(
    fc.bigInt({ min: -(10n ** 38n - 1n), max: 10n ** 38n - 1n }),
    fc.constantFrom(0n, 1n, -1n, 127n, 128n, -128n, -129n, 255n, 256n, 10n ** 38n - 1n),
  ),
  from_wallet: fc.option(fc.string({ unit: "binary", maxLength: 12 }), { nil: null }),
  to_wallet: fc.option(fc.string({ unit: "binary", maxLength: 12 }), { nil: null }),
  prev_state: fc.option(fc.string({ unit: "binary", maxLength: 12 }), { nil: null }),
  next_state: fc.string({ unit: "binary", maxLength: 12 }),
  occurred_at: fc.integer({ min: -(2 ** 52), max: 2 ** 52 }),
});

export const encodeEvent = (event: TransferEvent) => transferEventType.toBuffer(event);

/** Any value a topic can hold: null, junk, framed junk, framed hand-written Avro, damaged real events. */
export const hostileValue: fc.Arbitrary<Buffer | null> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes)) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        magic: fc.oneof(fc.constant(0), fc.nat(255)),
        id: schemaId,
        body: fc.uint8Array({ maxLength: 96 }),
      })
      .map(({ magic, id, body }) => frameOf(magic, id, body)),
  },
  {
    weight: 5,
    arbitrary: fc
      .record({ id: schemaId, body: structuredBody })
      .map(({ id, body }) => frameOf(0, id, encodeStructured(body))),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        id: schemaId,
        event: encodableEvent,
        damage: fc.oneof(
          fc.constant(null),
          fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
          fc.record({ cutAt: fc.nat() }),
        ),
      })
      .map(({ id, event, damage }) => {
        const body = Buffer.from(encodeEvent(event));
        if (damage !== null && "xor" in damage && body.length > 0)
          body[damage.at % body.length]! ^= damage.xor;
        const damaged =
          damage !== null && "cutAt" in damage ? body.subarray(0, damage.cutAt % (body.length + 1)) : body;
        return frameOf(0, id, damaged);
      }),
  },
);
