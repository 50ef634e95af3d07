import { describe, expect, it } from "vitest";
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
