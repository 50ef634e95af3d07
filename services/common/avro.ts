// The event's Avro types and the Confluent wire framing (magic byte 0, 4-byte schema id, Avro body).
import { isUtf8 } from "node:buffer";
import { readFileSync } from "node:fs";
import avro from "avsc";
import { avroLogicalTypes } from "./decimal.ts";
import type { TransferEvent } from "./event.ts";

export const transferEventSchemaText = readFileSync(
  new URL("../../schemas/transfer-event.avsc", import.meta.url),
  "utf8",
);

/**
 * Fresh each time: avsc records every named type in `opts.registry`, and a shared registry would
 * refuse a second version of tally.TransferEvent as a duplicate name. assertLogicalTypes: by
 * default avsc quietly reads a decimal it refuses (scale 2, no precision) as plain bytes, and the
 * reader would then take 12.34 for 1234 minor units; such a schema must fail to parse instead.
 */
export const avroForSchemaOptions = () => ({ logicalTypes: avroLogicalTypes, assertLogicalTypes: true });

export function avroTypeOf(schema: string | object): avro.Type {
  const parsed = typeof schema === "string" ? JSON.parse(schema) : schema;
  return avro.Type.forSchema(parsed, avroForSchemaOptions());
}

/** The reader type the applier decodes every writer version into. */
export const transferEventType = avroTypeOf(transferEventSchemaText);

const magicByte = 0;
export const frameHeaderBytes = 5;

export function frame(schemaId: number, body: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(frameHeaderBytes + body.length);
  framed.writeUInt8(magicByte, 0);
  framed.writeUInt32BE(schemaId, 1);
  body.copy(framed, frameHeaderBytes);
  return framed;
}

export type Unframed = { schemaId: number; body: Buffer };

/** The schema id of Confluent-framed bytes, null when they are not framed; allocates nothing. */
export function framedSchemaId(value: Buffer | null): number | null {
  if (value === null || value.length < frameHeaderBytes || value[0] !== magicByte) return null;
  return value.readUInt32BE(1);
}

/** null when the bytes are not Confluent-framed at all. */
export function unframe(value: Buffer | null): Unframed | null {
  const schemaId = framedSchemaId(value);
  if (schemaId === null) return null;
  return { schemaId, body: value!.subarray(frameHeaderBytes) };
}

/** Decoded records are class instances; the rest of Tally wants plain data. */
export function toPlainEvent(record: Record<string, unknown>): TransferEvent {
  return {
    transfer_id: record.transfer_id as string,
    batch_id: (record.batch_id ?? null) as string | null,
    token_id: record.token_id as string,
    asset: record.asset as string,
    amount: record.amount as bigint,
    from_wallet: (record.from_wallet ?? null) as string | null,
    to_wallet: (record.to_wallet ?? null) as string | null,
    prev_state: (record.prev_state ?? null) as string | null,
    next_state: record.next_state as string,
    occurred_at: Number(record.occurred_at),
  };
}

/** Names the first of `fields` whose bytes are not valid UTF-8; null when all are. */
export type Utf8Check = (body: Buffer) => string | null;

/**
 * avsc reads a string's invalid UTF-8 as U+FFFD without a word, so `w-\xff…` and `w-\xfe…` would
 * be one wallet. Checking every string strictly would cost every record; callers run this only
 * when a decoded string holds U+FFFD (a real U+FFFD is valid UTF-8 and passes). It decodes the body
 * again with the writer's top-level strings read as bytes (the same wire form) and checks those
 * bytes. Throws when the writer schema does not allow it (e.g. a union of string and bytes).
 */
export function utf8CheckOf(writer: avro.Type, fields: readonly string[]): Utf8Check {
  const schema = writer.schema() as { fields?: { name: string; type: unknown }[] };
  const bytesSchema = {
    ...schema,
    fields: (schema.fields ?? []).map((field) => ({ ...field, type: stringsAsBytes(field.type) })),
  };
  const bytesType = avro.Type.forSchema(bytesSchema as avro.Schema);
  const checked = fields.filter((name) => schema.fields?.some((field) => field.name === name));
  return (body) => {
    const record = bytesType.fromBuffer(body) as Record<string, unknown>;
    for (const name of checked) {
      const bytes = unwrapped(record[name]);
      if (Buffer.isBuffer(bytes) && !isUtf8(bytes)) return name;
    }
    return null;
  };
}

function stringsAsBytes(type: unknown): unknown {
  if (type === "string") return "bytes";
  if (Array.isArray(type)) return type.map(stringsAsBytes);
  if (typeof type === "object" && type !== null && (type as { type?: unknown }).type === "string")
    return "bytes";
  return type;
}

/** A union value avsc kept wrapped ({ bytes: <Buffer> }) as the plain value. */
function unwrapped(value: unknown): unknown {
  if (value === null || Buffer.isBuffer(value) || typeof value !== "object") return value;
  const values = Object.values(value);
  return values.length === 1 ? values[0] : value;
}
