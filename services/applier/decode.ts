// Decodes Confluent-framed Avro values into events. Writer schemas are fetched once per schema id
// and resolved into Tally's reader schema, so a FULL_TRANSITIVE v2 writer is read without a deploy.
// Every value ends as an event or as a rejection with its reason; only a registry that cannot be
// asked (TransientError) stops the chunk, and then nothing about that id is remembered.
import type avro from "avsc";
import {
  framedSchemaId,
  toPlainEvent,
  transferEventType,
  type Utf8Check,
  unframe,
  utf8CheckOf,
} from "../common/avro.ts";
import { DecimalRangeError } from "../common/decimal.ts";
import {
  IncompatibleSchemaError,
  UnknownSchemaError,
  type WriterSchemaSource,
  writerTypeOf,
} from "../common/registry.ts";
import type { DecodedRecord } from "./plan.ts";

type Decoded = DecodedRecord["decoded"];

/** How a schema id's values are read: through a resolver (null: the writer is the reader), or not at all. */
type Readable = { resolver: avro.Resolver | null; writer: avro.Type; utf8Check?: Utf8Check | null };
type Reader = Readable | { rejection: "unknown_schema" | "incompatible_schema"; detail: string };

/** pins: values of prepared chunks not decoded yet; such an entry is never evicted. */
type Entry = { reader: Reader; pins: number; expiresAtMs: number };

export type DecoderOptions = {
  /** Writer schemas kept; a chunk may exceed it for as long as it is decoded. */
  schemaIdsMax?: number;
  /** How long "not in the registry" is believed: the id may be registered (or replicated) later. */
  unknownSchemaTtlMs?: number;
  /** Registry requests at once while preparing a chunk with many new ids. */
  fetchesMax?: number;
  nowMs?: () => number;
};

export const schemaIdsMaxDefault = 10_000;
const unknownSchemaTtlMsDefault = 60_000;
const fetchesMaxDefault = 4;
/** The reader's string fields: the ones whose U+FFFD is checked against the raw bytes. */
const stringFields = (transferEventType as avro.types.RecordType).fields.flatMap((field) => {
  const branches = (field.type as { types?: avro.Type[] }).types ?? [field.type];
  return branches.some((branch) => branch.typeName === "string") ? [field.name] : [];
});

export class EventDecoder {
  private readonly source: WriterSchemaSource;
  /** Insertion order is recency: an id used by a chunk moves to the end. */
  private readonly entries = new Map<number, Entry>();
  private readonly fetching = new Map<number, Promise<Reader>>();
  private readonly schemaIdsMax: number;
  private readonly unknownSchemaTtlMs: number;
  private readonly fetchesMax: number;
  private readonly nowMs: () => number;

  constructor(source: WriterSchemaSource, options: DecoderOptions = {}) {
    this.source = source;
    this.schemaIdsMax = options.schemaIdsMax ?? schemaIdsMaxDefault;
    this.unknownSchemaTtlMs = options.unknownSchemaTtlMs ?? unknownSchemaTtlMsDefault;
    this.fetchesMax = options.fetchesMax ?? fetchesMaxDefault;
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** Schema ids held now (for tests and metrics). */
  get cachedSchemaIds(): number {
    return this.entries.size;
  }

  /**
   * Fetches the writer schemas of these values that are not cached yet and pins every id they use
   * until `decode` has seen each value, so no eviction (by this chunk or one prepared at the same
   * time) can drop it. Throws TransientError when the registry cannot be asked: the caller retries
   * and does not move past the record; nothing of this call stays pinned or cached then.
   * Contract: every value given here is then given to `decode` (apply-chunk does both with no
   * await between); a value never decoded leaves its id pinned, which costs memory, never a record.
   */
  async prepare(values: readonly (Buffer | null)[]): Promise<void> {
    const uses = new Map<number, number>();
    for (const value of values) {
      const schemaId = framedSchemaId(value);
      if (schemaId !== null) uses.set(schemaId, (uses.get(schemaId) ?? 0) + 1);
    }
    // Pinned before the first await: a chunk prepared meanwhile must not evict what this one uses.
    const nowMs = this.nowMs();
    const pinned: number[] = [];
    const missing: number[] = [];
    for (const [schemaId, count] of uses) {
      const entry = this.entries.get(schemaId);
      if (entry !== undefined && entry.expiresAtMs > nowMs) {
        entry.pins += count;
        pinned.push(schemaId);
      } else missing.push(schemaId);
    }
    let readers: Map<number, Reader>;
    try {
      readers = await this.fetchAll(missing);
    } catch (error) {
      for (const schemaId of pinned) this.entries.get(schemaId)!.pins -= uses.get(schemaId)!;
      throw error;
    }
    for (const [schemaId, reader] of readers) {
      const pins = (this.entries.get(schemaId)?.pins ?? 0) + uses.get(schemaId)!;
      this.entries.set(schemaId, { reader, pins, expiresAtMs: this.expiryOf(reader, this.nowMs()) });
    }
    this.touch(uses.keys());
    this.evict();
  }

  /** Decodes one value; `prepare` must have seen it. Never throws for bad bytes: they are outcomes. */
  decode(value: Buffer | null): Decoded {
    const framed = unframe(value);
    if (framed === null)
      return { ok: false, reason: "undecodable", detail: "not Confluent-framed Avro", schemaId: null };
    const { schemaId, body } = framed;
    const entry = this.entries.get(schemaId);
    if (entry === undefined) throw new Error(`schema id ${schemaId} was not prepared (a caller bug)`);
    if (entry.pins > 0) entry.pins--;
    const reader = entry.reader;
    if ("rejection" in reader)
      return { ok: false, reason: reader.rejection, detail: reader.detail, schemaId };
    let event: ReturnType<typeof toPlainEvent>;
    try {
      event = toPlainEvent(transferEventType.fromBuffer(body, reader.resolver ?? undefined));
    } catch (error) {
      if (error instanceof DecimalRangeError)
        return { ok: false, reason: "invalid_field", detail: `amount: ${error.message}`, schemaId };
      return { ok: false, reason: "undecodable", detail: `Avro body: ${(error as Error).message}`, schemaId };
    }
    const badField = hasReplacementCharacter(event) ? invalidUtf8Field(reader, body) : null;
    if (badField !== null) {
      const detail = `${badField} is not valid UTF-8 (read leniently it would merge with other ids)`;
      return { ok: false, reason: "invalid_field", detail, schemaId };
    }
    return { ok: true, event, schemaId };
  }

  private expiryOf(reader: Reader, nowMs: number): number {
    return "rejection" in reader && reader.rejection === "unknown_schema"
      ? nowMs + this.unknownSchemaTtlMs
      : Number.POSITIVE_INFINITY;
  }

  /** The readers of these ids, at most `fetchesMax` requests at once; one request per id in flight. */
  private async fetchAll(schemaIds: readonly number[]): Promise<Map<number, Reader>> {
    const readers = new Map<number, Reader>();
    let next = 0;
    const worker = async () => {
      while (next < schemaIds.length) {
        const schemaId = schemaIds[next++]!;
        let fetching = this.fetching.get(schemaId);
        if (fetching === undefined) {
          fetching = readerOf(this.source, schemaId).finally(() => this.fetching.delete(schemaId));
          this.fetching.set(schemaId, fetching);
        }
        readers.set(schemaId, await fetching);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.fetchesMax, schemaIds.length) }, worker));
    return readers;
  }

  /** Moves these ids to the end of the map's order: the most recently used. */
  private touch(schemaIds: Iterable<number>): void {
    for (const schemaId of schemaIds) {
      const entry = this.entries.get(schemaId)!;
      this.entries.delete(schemaId);
      this.entries.set(schemaId, entry);
    }
  }

  /** Oldest first, unpinned only, down to the bound: the ids of chunks being decoded stay. */
  private evict(): void {
    if (this.entries.size <= this.schemaIdsMax) return;
    for (const [schemaId, entry] of this.entries) {
      if (this.entries.size <= this.schemaIdsMax) return;
      if (entry.pins === 0) this.entries.delete(schemaId);
    }
  }
}

/** The reader of one schema id; throws TransientError only (the registry could not be asked). */
async function readerOf(source: WriterSchemaSource, schemaId: number): Promise<Reader> {
  let writer: avro.Type;
  try {
    writer = await writerTypeOf(source, schemaId);
  } catch (error) {
    if (error instanceof UnknownSchemaError) return { rejection: "unknown_schema", detail: error.message };
    if (error instanceof IncompatibleSchemaError)
      return { rejection: "incompatible_schema", detail: error.message };
    throw error;
  }
  // Equal schemas decode directly; any other writer goes through a resolver, which avsc refuses to
  // build when the writer cannot be read as a TransferEvent (a required field dropped, a retype).
  if (writer.equals(transferEventType)) return { resolver: null, writer };
  try {
    return { resolver: transferEventType.createResolver(writer), writer };
  } catch (error) {
    const detail = `schema id ${schemaId} cannot be read as Tally's TransferEvent: ${(error as Error).message}`;
    return { rejection: "incompatible_schema", detail };
  }
}

/** The common path: a handful of short strings scanned; U+FFFD is rare in real ids. */
function hasReplacementCharacter(event: ReturnType<typeof toPlainEvent>): boolean {
  for (const name of stringFields) {
    const value = event[name as keyof typeof event];
    if (typeof value === "string" && value.includes("\uFFFD")) return true;
  }
  return false;
}

/** The field whose raw bytes are not UTF-8, or null when every U+FFFD was a real one. */
function invalidUtf8Field(reader: Readable, body: Buffer): string | null {
  if (reader.utf8Check === undefined) {
    try {
      reader.utf8Check = utf8CheckOf(reader.writer, stringFields);
    } catch {
      reader.utf8Check = null;
    }
  }
  // A writer whose strings cannot be re-read as bytes: a real U+FFFD cannot be told from a
  // replaced byte, so the record is refused rather than risk merging two ids.
  if (reader.utf8Check === null) return "a string field (its writer schema allows no strict check)";
  try {
    return reader.utf8Check(body);
  } catch {
    return "a string field (its bytes could not be re-read)";
  }
}
