// Property tests of the decoder (services/applier/decode.ts EventDecoder) over hostile bytes: any
// value in, an event or a rejection out, never a throw; strings only from valid UTF-8; time linear
// in the size; the schema cache never drops an id a chunk still needs.
// Runs and seed: test/support/arbitraries.ts (TALLY_TEST_FUZZ_RUNS, TALLY_TEST_FUZZ_SEED, make fuzz).
import { describe, expect, it } from "vitest";
import { rejectionReasons } from "../../services/applier/decide.ts";
import { EventDecoder } from "../../services/applier/decode.ts";
import type { DecodedRecord } from "../../services/applier/plan.ts";
import { avroTypeOf, transferEventSchemaText, transferEventType } from "../../services/common/avro.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { checkProperty, fc, fuzzRuns, fuzzTimeoutMs, transferId } from "../support/arbitraries.ts";

const file = "test/unit/decode.property.unit.spec.ts";
const runs = fuzzRuns(150);
const timeout = fuzzTimeoutMs(runs, 10);

type Decoded = DecodedRecord["decoded"];

// ---------------------------------------------------------------------------------------------
// A registry stub that knows one schema id: Tally's own TransferEvent schema.

const knownId = 7;

/**
 * Answers both ways the decoder has asked a registry: the client library's getSchema (a parsed
 * type, or its ResponseError with status 404) and the WriterSchemaSource's schemaById (the answer to
 * GET /schemas/ids/<id>: found, or Confluent's 40403).
 */
function stubRegistry() {
  const type = avroTypeOf(transferEventSchemaText);
  return {
    async getSchema(schemaId: number) {
      if (schemaId === knownId) return type;
      const error = new Error(`Schema Registry - Schema ${schemaId} not found`);
      throw Object.assign(error, { name: "ResponseError", status: 404, error_code: 40403 });
    },
    async schemaById(schemaId: number) {
      return schemaId === knownId
        ? { found: true as const, schema: transferEventSchemaText, schemaType: "AVRO" }
        : { found: false as const };
    },
  };
}

const newDecoder = () =>
  new EventDecoder(stubRegistry() as unknown as ConstructorParameters<typeof EventDecoder>[0]);

// ---------------------------------------------------------------------------------------------
// Avro written by hand, so that every length, union branch and byte can lie.

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

const structuredBody = fc.record({
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
type StructuredBody = typeof structuredBody extends fc.Arbitrary<infer T> ? T : never;

const optionalBytes = (o: StructuredBody["batch_id"]) =>
  o.branch === 1n ? Buffer.concat([long(1n), rawFieldBytes(o.field)]) : long(o.branch);

function encodeStructured(body: StructuredBody): Buffer {
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
function isExact(body: StructuredBody): boolean {
  const optionals = [body.batch_id, body.from_wallet, body.to_wallet, body.prev_state];
  const fields = [body.transfer_id, body.token_id, body.asset, body.amount, body.next_state];
  return (
    body.cut === null &&
    body.trailing === null &&
    optionals.every((o) => o.branch === 0n || (o.branch === 1n && o.field.length === null)) &&
    fields.every((f) => f.length === null)
  );
}

function frameOf(magic: number, schemaId: number, body: Uint8Array): Buffer {
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
const encodableEvent = fc.record({
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

const encodeEvent = (event: TransferEvent) => transferEventType.toBuffer(event);

/** Any value a topic can hold: null, junk, framed junk, framed hand-written Avro, damaged real events. */
const hostileValue: fc.Arbitrary<Buffer | null> = fc.oneof(
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

// ---------------------------------------------------------------------------------------------
// What any outcome must look like

const optionalString = (value: unknown) => value === null || typeof value === "string";

function expectWellShaped(value: Buffer | null, decoded: Decoded): void {
  const framed = value !== null && value.length >= 5 && value[0] === 0;
  if (!framed) {
    expect(decoded).toMatchObject({ ok: false, reason: "undecodable", schemaId: null });
    return;
  }
  const id = value.readUInt32BE(1);
  expect(decoded.schemaId).toBe(id);
  if (id !== knownId) {
    expect(decoded).toMatchObject({ ok: false, reason: "unknown_schema" });
  }
  if (!decoded.ok) {
    expect(rejectionReasons).toContain(decoded.reason);
    expect(typeof decoded.detail).toBe("string");
    return;
  }
  const e = decoded.event;
  expect(Object.keys(e).sort()).toEqual(
    [
      "amount",
      "batch_id",
      "from_wallet",
      "next_state",
      "occurred_at",
      "prev_state",
      "to_wallet",
      "token_id",
      "transfer_id",
      "asset",
    ].sort(),
  );
  for (const name of ["transfer_id", "token_id", "asset", "next_state"] as const)
    expect(typeof e[name]).toBe("string");
  for (const name of ["batch_id", "from_wallet", "to_wallet", "prev_state"] as const)
    expect(optionalString(e[name])).toBe(true);
  expect(typeof e.amount).toBe("bigint");
  expect(typeof e.occurred_at).toBe("number");
}

/** Decodes a chunk as the applier does: prepare all, then decode each. */
async function decodeChunk(decoder: EventDecoder, values: (Buffer | null)[]): Promise<Decoded[]> {
  await decoder.prepare(values);
  return values.map((value) => decoder.decode(value));
}

/** Two's complement of any bytes, written independently of decimal.ts. */
function twosComplement(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  return BigInt.asIntN(bytes.length * 8, BigInt(`0x${Buffer.from(bytes).toString("hex")}`));
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const isUtf8 = (bytes: Uint8Array) => {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
};

// ---------------------------------------------------------------------------------------------

describe("EventDecoder: properties over hostile bytes", () => {
  it(
    "any value in, an event or a rejection with a known reason out, never a throw (null, junk, framed junk, lying lengths, damaged events)",
    async () => {
      await checkProperty(
        fc.asyncProperty(fc.array(hostileValue, { minLength: 1, maxLength: 8 }), async (values) => {
          const decoded = await decodeChunk(newDecoder(), values);
          for (const [k, value] of values.entries()) expectWellShaped(value, decoded[k]!);
        }),
        { runs, file, name: "any value in, an event or a rejection" },
      );
    },
    timeout,
  );

  it(
    "a well-formed event encoded with the known schema decodes to itself exactly (any Unicode, a real U+FFFD, amounts to 38 digits, either sign)",
    async () => {
      await checkProperty(
        fc.asyncProperty(encodableEvent, async (event) => {
          const value = frameOf(0, knownId, encodeEvent(event));
          const [decoded] = await decodeChunk(newDecoder(), [value]);
          expect(decoded).toEqual({ ok: true, event, schemaId: knownId });
        }),
        {
          runs,
          file,
          name: "a well-formed event encoded with the known schema decodes to itself",
          examples: [
            [
              {
                transfer_id: "\uFFFD",
                batch_id: null,
                token_id: "w-\uFFFDA",
                asset: "",
                amount: -(10n ** 38n - 1n),
                from_wallet: null,
                to_wallet: "\u{1F4B8}",
                prev_state: null,
                next_state: "",
                occurred_at: -1,
              },
            ],
          ],
        },
      );
    },
    timeout,
  );

  it(
    "hand-written Avro: what decodes as an event holds exactly the bytes written (strings only from valid UTF-8, the amount's two's complement); exact valid input always decodes",
    async () => {
      const reached = new Set<string>();
      await checkProperty(
        fc.asyncProperty(structuredBody, async (body) => {
          const value = frameOf(0, knownId, encodeStructured(body));
          const [decoded] = await decodeChunk(newDecoder(), [value]);
          expectWellShaped(value, decoded!);
          const exact = isExact(body);
          const strings = {
            transfer_id: body.transfer_id.bytes,
            token_id: body.token_id.bytes,
            asset: body.asset.bytes,
            next_state: body.next_state.bytes,
            ...Object.fromEntries(
              (["batch_id", "from_wallet", "to_wallet", "prev_state"] as const).flatMap((name) =>
                body[name].branch === 1n ? [[name, body[name].field.bytes]] : [],
              ),
            ),
          } as Record<string, Uint8Array>;
          if (exact)
            reached.add(`exact, ${Object.values(strings).every(isUtf8) ? "valid" : "invalid"} UTF-8`);
          if (decoded!.ok && exact) {
            const event = decoded!.event;
            // Two different byte strings must never become one id: a string comes from valid UTF-8 only.
            for (const [name, bytes] of Object.entries(strings)) {
              expect({ field: name, utf8: isUtf8(bytes) }).toEqual({ field: name, utf8: true });
              expect({ field: name, value: event[name as keyof TransferEvent] }).toEqual({
                field: name,
                value: Buffer.from(bytes).toString("utf8"),
              });
            }
            for (const name of ["batch_id", "from_wallet", "to_wallet", "prev_state"] as const) {
              if (body[name].branch === 0n) expect(event[name]).toBeNull();
            }
            expect(event.amount).toBe(twosComplement(body.amount.bytes));
            expect(event.occurred_at).toBe(Number(body.occurred_at));
          }
          const valid =
            exact &&
            Object.values(strings).every(isUtf8) &&
            body.amount.bytes.length >= 1 &&
            body.amount.bytes.length <= 15 &&
            body.occurred_at > -(2n ** 52n) &&
            body.occurred_at < 2n ** 52n;
          if (valid) expect(decoded!.ok).toBe(true);
        }),
        { runs, file, name: "hand-written Avro" },
      );
      // The generator must write exact bodies with and without invalid UTF-8, or the property says little.
      if (runs >= 100 && process.env.TALLY_TEST_FUZZ_PATH === undefined)
        expect([...reached].sort()).toEqual(["exact, invalid UTF-8", "exact, valid UTF-8"]);
    },
    timeout,
  );

  it(
    "one decoder across chunks: the same value always decodes the same, whatever was prepared before",
    async () => {
      const chunks = fc.array(fc.array(hostileValue, { minLength: 1, maxLength: 5 }), {
        minLength: 1,
        maxLength: 4,
      });
      await checkProperty(
        fc.asyncProperty(chunks, fc.boolean(), async (chunkList, overlapped) => {
          const shared = newDecoder();
          const results: Decoded[][] = [];
          if (overlapped) {
            // chunks of several partitions prepared before any is decoded, as concurrent partitions do
            for (const chunk of chunkList) await shared.prepare(chunk);
            for (const chunk of chunkList) results.push(chunk.map((value) => shared.decode(value)));
          } else {
            for (const chunk of chunkList) results.push(await decodeChunk(shared, chunk));
          }
          for (const [k, chunk] of chunkList.entries()) {
            const alone = await decodeChunk(newDecoder(), chunk);
            expect(results[k]).toEqual(alone);
          }
        }),
        { runs: fuzzRuns(Math.ceil(runs / 3)), file, name: "one decoder across chunks" },
      );
    },
    timeout,
  );

  it(
    "the schema cache never drops an id a chunk still needs: a chunk of up to 12,000 distinct schema ids (the bound is 10,000) decodes whole, its known-id events included",
    async () => {
      const event: TransferEvent = {
        transfer_id: "00000000-0000-4000-8000-000000000000",
        batch_id: null,
        token_id: "tok-1",
        asset: "USD",
        amount: 1_000n,
        from_wallet: null,
        to_wallet: "alice",
        prev_state: null,
        next_state: "s0",
        occurred_at: 1_000,
      };
      const good = frameOf(0, knownId, encodeEvent(event));
      await checkProperty(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 12_000 }),
          fc.nat(),
          fc.boolean(),
          async (distinct, firstId, overlapped) => {
            const decoder = newDecoder();
            const ids = Array.from({ length: distinct }, (_, k) => ((firstId + k) % 0x7fffffff) + 100);
            const chunk = [good, ...ids.map((id) => frameOf(0, id, Buffer.alloc(1))), good];
            let decoded: Decoded[];
            if (overlapped) {
              // a small chunk prepared first, then the big one, then both decoded
              const small = [good];
              await decoder.prepare(small);
              await decoder.prepare(chunk);
              decoded = [...small.map((v) => decoder.decode(v)), ...chunk.map((v) => decoder.decode(v))];
            } else {
              decoded = await decodeChunk(decoder, chunk);
            }
            expect(decoded[0]).toEqual({ ok: true, event, schemaId: knownId });
            expect(decoded[decoded.length - 1]).toEqual({ ok: true, event, schemaId: knownId });
            for (const d of decoded.slice(overlapped ? 2 : 1, -1))
              expect(d.ok === false && d.reason === "unknown_schema").toBe(true);
          },
        ),
        {
          runs: fuzzRuns(4, 1 / 40),
          file,
          name: "the schema cache never drops an id",
          // one past the bound, alone and behind another chunk
          examples: [
            [10_001, 0, false],
            [10_001, 0, true],
          ],
        },
      );
    },
    timeout,
  );

  it(
    "decoding is linear in the size: an amount of up to 64 KiB decodes (as an event or a rejection) within 250 ms",
    async () => {
      await checkProperty(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 64 * 1024 }),
          fc.uint8Array({ minLength: 1, maxLength: 64 }),
          async (size, seedBytes) => {
            const amount = Buffer.alloc(size);
            for (let k = 0; k < size; k++) amount[k] = seedBytes[k % seedBytes.length]!;
            if (size > 0) amount[0] = 0x7f; // no sign extension to strip: all of it is significant
            const body = encodeStructured({
              transfer_id: { bytes: Buffer.from("00000000-0000-4000-8000-000000000000"), length: null },
              batch_id: { branch: 0n, field: { bytes: new Uint8Array(), length: null } },
              token_id: { bytes: Buffer.from("tok-1"), length: null },
              asset: { bytes: Buffer.from("USD"), length: null },
              amount: { bytes: amount, length: null },
              from_wallet: { branch: 0n, field: { bytes: new Uint8Array(), length: null } },
              to_wallet: { branch: 1n, field: { bytes: Buffer.from("alice"), length: null } },
              prev_state: { branch: 0n, field: { bytes: new Uint8Array(), length: null } },
              next_state: { bytes: Buffer.from("s0"), length: null },
              occurred_at: 1_000n,
              cut: null,
              trailing: null,
            });
            const value = frameOf(0, knownId, body);
            const decoder = newDecoder();
            await decoder.prepare([value, value, value]);
            // the fastest of three, so that a pause of a busy machine does not fail it (linear: ~1 ms)
            let bestMs = Number.POSITIVE_INFINITY;
            for (let attempt = 0; attempt < 3 && bestMs >= 250; attempt++) {
              const startedMs = performance.now();
              decoder.decode(value);
              bestMs = Math.min(bestMs, performance.now() - startedMs);
            }
            expect({ size, within250ms: bestMs < 250 }).toEqual({ size, within250ms: true });
          },
        ),
        {
          runs: fuzzRuns(20, 1 / 10),
          file,
          name: "decoding is linear in the size",
          endOnFailure: true,
          examples: [[64 * 1024, new Uint8Array([0xab])]],
        },
      );
    },
    timeout,
  );
});
