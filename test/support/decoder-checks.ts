// The decoder under property test (test/unit/decode.property.unit.spec.ts) and what any outcome of it
// must look like: a registry stub that knows one schema id, chunks decoded as the applier does.
import { expect } from "vitest";
import { rejectionReasons } from "../../services/applier/decide.ts";
import { EventDecoder } from "../../services/applier/decode.ts";
import type { DecodedRecord } from "../../services/applier/plan.ts";
import { avroTypeOf, transferEventSchemaText } from "../../services/common/avro.ts";
import { knownId } from "./hostile-avro.ts";

export type Decoded = DecodedRecord["decoded"];

// ---------------------------------------------------------------------------------------------
// A registry stub that knows one schema id: Tally's own TransferEvent schema (knownId).

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

export const newDecoder = () =>
  new EventDecoder(stubRegistry() as unknown as ConstructorParameters<typeof EventDecoder>[0]);

// ---------------------------------------------------------------------------------------------
// What any outcome must look like

const optionalString = (value: unknown) => value === null || typeof value === "string";

export function expectWellShaped(value: Buffer | null, decoded: Decoded): void {
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
export async function decodeChunk(decoder: EventDecoder, values: (Buffer | null)[]): Promise<Decoded[]> {
  await decoder.prepare(values);
  return values.map((value) => decoder.decode(value));
}

/** Two's complement of any bytes, written independently of decimal.ts. */
export function twosComplement(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  return BigInt.asIntN(bytes.length * 8, BigInt(`0x${Buffer.from(bytes).toString("hex")}`));
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
export const isUtf8 = (bytes: Uint8Array) => {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
};
