import { describe, expect, it } from "vitest";
import { EventDecoder } from "../../services/applier/decode.ts";
import {
  avroTypeOf,
  frame,
  toPlainEvent,
  transferEventSchemaText,
  transferEventType,
  unframe,
} from "../../services/common/avro.ts";
import { bigintToTwosComplement, twosComplementToBigint } from "../../services/common/decimal.ts";
import { mintOf } from "../support/events.ts";

describe("decimal as bigint", () => {
  it.each([
    0n,
    1n,
    -1n,
    127n,
    128n,
    -128n,
    -129n,
    255n,
    256n,
    2n ** 63n,
    2n ** 63n + 1n,
    -(2n ** 63n),
    10n ** 38n - 1n,
    -(10n ** 38n - 1n),
  ])("given %s, when encoded and decoded, then it is exactly the same", (value) => {
    expect(twosComplementToBigint(bigintToTwosComplement(value))).toBe(value);
  });
  it("given 2^63, when encoded, then the bytes are Java's BigInteger.toByteArray (minimal, sign bit clear)", () => {
    expect(bigintToTwosComplement(2n ** 63n).toString("hex")).toBe("008000000000000000");
    expect(bigintToTwosComplement(-1n).toString("hex")).toBe("ff");
  });
});

describe("the event codec", () => {
  it("given an event with an amount above 2^63, when framed and decoded, then it is equal field by field", () => {
    const event = mintOf({ amount: 2n ** 64n + 5n, batch_id: "b-1", to_wallet: 'кошелёк-7 "q"' });
    const framed = frame(42, transferEventType.toBuffer(event));
    const unframed = unframe(framed);
    expect(unframed?.schemaId).toBe(42);
    expect(toPlainEvent(transferEventType.fromBuffer(unframed!.body))).toEqual(event);
  });
  it("given 10^38 - 1, when round-tripped, then exact", () => {
    const event = mintOf({ amount: 10n ** 38n - 1n });
    expect(toPlainEvent(transferEventType.fromBuffer(transferEventType.toBuffer(event))).amount).toBe(
      10n ** 38n - 1n,
    );
  });
  it("given a v2 writer with an added optional field, when read by the v1 reader, then the v1 fields come back exactly", () => {
    const v2 = JSON.parse(transferEventSchemaText);
    v2.fields.push({ name: "memo", type: ["null", "string"], default: null });
    const writer = avroTypeOf(v2);
    const event = mintOf({ amount: 10n ** 30n });
    const body = writer.toBuffer({ ...event, memo: "rent" });
    const decoded = toPlainEvent(
      transferEventType.fromBuffer(body, transferEventType.createResolver(writer)),
    );
    expect(decoded).toEqual(event);
  });
  it("given bytes without the magic byte or too short, when unframed, then null", () => {
    expect(unframe(Buffer.from([1, 0, 0, 0, 1, 2]))).toBeNull();
    expect(unframe(Buffer.from([0, 0, 0]))).toBeNull();
    expect(unframe(null)).toBeNull();
  });
});

/** A stub registry holding these schema texts by id; anything else is not found (40403). */
function registryOf(schemas: Record<number, string | { schema: string; schemaType: string }>) {
  return {
    async schemaById(schemaId: number) {
      const held = schemas[schemaId];
      if (held === undefined) return { found: false as const };
      return typeof held === "string"
        ? { found: true as const, schema: held, schemaType: "AVRO" }
        : { found: true as const, ...held };
    },
  };
}

/** Tally's schema with some fields' types replaced (e.g. a string written as bytes, same wire form). */
function schemaWith(types: Record<string, unknown>, drop: string[] = []): string {
  const schema = JSON.parse(transferEventSchemaText);
  schema.fields = schema.fields
    .filter((field: { name: string }) => !drop.includes(field.name))
    .map((field: { name: string; type: unknown }) =>
      field.name in types ? { ...field, type: types[field.name] } : field,
    );
  return JSON.stringify(schema);
}

async function decodeOne(schemas: Parameters<typeof registryOf>[0], value: Buffer) {
  const decoder = new EventDecoder(registryOf(schemas));
  await decoder.prepare([value]);
  return decoder.decode(value);
}

describe("the decoder's outcomes", () => {
  const rawWallets = schemaWith({ to_wallet: ["null", "bytes"] });
  const withRawWallet = (wallet: Buffer) =>
    frame(2, avroTypeOf(rawWallets).toBuffer({ ...mintOf(), to_wallet: wallet }));

  it.each([
    ["w-\\xffAAAAAAAAAA", Buffer.concat([Buffer.from("w-"), Buffer.from([0xff]), Buffer.from("AAAAAAAAAA")])],
    ["w-\\xfeAAAAAAAAAA", Buffer.concat([Buffer.from("w-"), Buffer.from([0xfe]), Buffer.from("AAAAAAAAAA")])],
    ["an overlong NUL c0 80", Buffer.from([0x77, 0xc0, 0x80])],
    ["a lone surrogate ed a0 80", Buffer.from([0x77, 0xed, 0xa0, 0x80])],
  ])("given a wallet %s, when decoded, then invalid_field naming to_wallet", async (_, wallet) => {
    const bad = await decodeOne({ 2: transferEventSchemaText }, withRawWallet(wallet));
    expect(bad).toMatchObject({ ok: false, reason: "invalid_field", schemaId: 2 });
    expect(bad.ok === false && bad.detail).toMatch(/^to_wallet is not valid UTF-8/);
  });

  it("given a wallet holding a real U+FFFD (valid UTF-8 ef bf bd), when decoded, then the event as is", async () => {
    const decoded = await decodeOne({ 2: transferEventSchemaText }, withRawWallet(Buffer.from("w-\uFFFD")));
    expect(decoded).toMatchObject({ ok: true, event: { to_wallet: "w-\uFFFD" } });
  });

  it("given an amount of 900 KiB, when decoded, then invalid_field for amount within milliseconds", async () => {
    const bytesAmount = schemaWith({ amount: "bytes" });
    const value = frame(
      3,
      avroTypeOf(bytesAmount).toBuffer({ ...mintOf(), amount: Buffer.alloc(921_600, 7) }),
    );
    const startedMs = performance.now();
    const decoded = await decodeOne({ 3: transferEventSchemaText }, value);
    expect(performance.now() - startedMs).toBeLessThan(200);
    expect(decoded).toMatchObject({ ok: false, reason: "invalid_field", schemaId: 3 });
    expect(decoded.ok === false && decoded.detail).toMatch(/^amount: a decimal of 921600 significant bytes/);
  });

  it.each([
    [
      "a decimal of scale 2",
      schemaWith({ amount: { type: "bytes", logicalType: "decimal", precision: 38, scale: 2 } }),
    ],
    ["a required field dropped (next_state)", schemaWith({}, ["next_state"])],
    ["a field retyped (asset as int)", schemaWith({ asset: "int" })],
    ["another record name", transferEventSchemaText.replace('"TransferEvent"', '"Payment"')],
  ])("given a writer with %s, when decoded, then incompatible_schema", async (_, schema) => {
    const decoded = await decodeOne({ 4: schema }, frame(4, transferEventType.toBuffer(mintOf())));
    expect(decoded).toMatchObject({ ok: false, reason: "incompatible_schema", schemaId: 4 });
  });

  it("given a writer that is not Avro, when decoded, then incompatible_schema naming its type", async () => {
    const protobuf = { schema: "syntax = 'proto3';", schemaType: "PROTOBUF" };
    const decoded = await decodeOne({ 5: protobuf }, frame(5, Buffer.from([1, 2])));
    expect(decoded).toMatchObject({ ok: false, reason: "incompatible_schema" });
    expect(decoded.ok === false && decoded.detail).toMatch(/PROTOBUF/);
  });

  it("given a v2 writer adding an optional field with a default, when decoded, then the v1 event", async () => {
    const v2 = JSON.parse(transferEventSchemaText);
    v2.fields.push({ name: "memo", type: ["null", "string"], default: null });
    const event = mintOf({ amount: 10n ** 20n });
    const value = frame(6, avroTypeOf(v2).toBuffer({ ...event, memo: "rent" }));
    expect(await decodeOne({ 6: JSON.stringify(v2) }, value)).toEqual({ ok: true, event, schemaId: 6 });
  });

  it("given an id the registry does not hold, when decoded, then unknown_schema", async () => {
    const decoded = await decodeOne({}, frame(7, transferEventType.toBuffer(mintOf())));
    expect(decoded).toMatchObject({ ok: false, reason: "unknown_schema", schemaId: 7 });
  });

  it("given a truncated body, when decoded, then undecodable", async () => {
    const body = transferEventType.toBuffer(mintOf());
    const decoded = await decodeOne({ 8: transferEventSchemaText }, frame(8, body.subarray(0, 10)));
    expect(decoded).toMatchObject({ ok: false, reason: "undecodable", schemaId: 8 });
  });
});
