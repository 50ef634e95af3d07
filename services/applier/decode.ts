// Decodes Confluent-framed Avro values into events. Writer schemas are fetched once per schema id
// and resolved into Tally's reader schema, so a BACKWARD-compatible v2 writer is read without a deploy.
import type { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import type avro from "avsc";
import { toPlainEvent, transferEventType, unframe } from "../common/avro.ts";
import { UnknownSchemaError, writerTypeOf } from "../common/registry.ts";
import type { DecodedRecord } from "./plan.ts";

type Reader = { resolver: avro.Resolver | null } | { unknown: string };

export class EventDecoder {
  private readonly readers = new Map<number, Reader>();
  private readonly registry: SchemaRegistry;
  /** Schema ids are few; the bound guards against a stream of garbage ids filling memory. */
  private readonly schemaIdsMax = 10_000;

  constructor(registry: SchemaRegistry) {
    this.registry = registry;
  }

  /**
   * Fetches the writer schemas of these values that are not cached yet. Throws TransientError when
   * the registry cannot be reached: the caller retries and does not move past the record.
   */
  async prepare(values: readonly (Buffer | null)[]): Promise<void> {
    const missing = new Set<number>();
    for (const value of values) {
      const framed = unframe(value);
      if (framed !== null && !this.readers.has(framed.schemaId)) missing.add(framed.schemaId);
    }
    for (const schemaId of missing) {
      if (this.readers.size >= this.schemaIdsMax) this.readers.clear();
      this.readers.set(schemaId, await this.readerOf(schemaId));
    }
  }

  private async readerOf(schemaId: number): Promise<Reader> {
    try {
      const writer = await writerTypeOf(this.registry, schemaId);
      // Equal schemas decode directly; any other writer goes through a resolver. createResolver
      // throws when the writer cannot be read as a TransferEvent at all.
      if (writer.equals(transferEventType)) return { resolver: null };
      return { resolver: transferEventType.createResolver(writer) };
    } catch (error) {
      if (error instanceof UnknownSchemaError) return { unknown: error.message };
      if ((error as Error).name === "TransientError") throw error;
      return {
        unknown: `schema id ${schemaId} cannot be read as a TransferEvent: ${(error as Error).message}`,
      };
    }
  }

  /** Decodes one value; `prepare` must have seen it. Never throws for bad bytes: they are outcomes. */
  decode(value: Buffer | null): DecodedRecord["decoded"] {
    const framed = unframe(value);
    if (framed === null)
      return { ok: false, reason: "undecodable", detail: "not Confluent-framed Avro", schemaId: null };
    const reader = this.readers.get(framed.schemaId);
    if (reader === undefined) throw new Error(`schema id ${framed.schemaId} was not prepared`);
    if ("unknown" in reader) {
      return { ok: false, reason: "unknown_schema", detail: reader.unknown, schemaId: framed.schemaId };
    }
    try {
      const record = transferEventType.fromBuffer(framed.body, reader.resolver ?? undefined);
      return { ok: true, event: toPlainEvent(record), schemaId: framed.schemaId };
    } catch (error) {
      return {
        ok: false,
        reason: "undecodable",
        detail: `Avro body: ${(error as Error).message}`,
        schemaId: framed.schemaId,
      };
    }
  }
}
