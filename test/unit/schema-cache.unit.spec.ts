// The decoder's schema cache against a stub registry: a named bound that never drops an id a chunk
// being decoded still needs (even when one chunk holds more ids than the bound, or two chunks are
// prepared at once), transient answers never remembered, "not found" believed only for a while.
import { describe, expect, it } from "vitest";
import { EventDecoder } from "../../services/applier/decode.ts";
import { frame, transferEventSchemaText, transferEventType } from "../../services/common/avro.ts";
import type { SchemaAnswer, WriterSchemaSource } from "../../services/common/registry.ts";
import { TransientError } from "../../services/common/retry.ts";
import { mintOf } from "../support/events.ts";

/** Every id is Tally's schema, except those scripted otherwise; counts the questions per id. */
class StubRegistry implements WriterSchemaSource {
  readonly asked = new Map<number, number>();
  readonly answers = new Map<number, SchemaAnswer | "transient">();
  /** Answers for these ids wait until the test opens them. */
  readonly gates = new Map<number, Promise<void>>();
  gate: Promise<void> = Promise.resolve();

  async schemaById(schemaId: number): Promise<SchemaAnswer> {
    this.asked.set(schemaId, (this.asked.get(schemaId) ?? 0) + 1);
    await this.gate;
    await this.gates.get(schemaId);
    const answer = this.answers.get(schemaId) ?? {
      found: true,
      schema: transferEventSchemaText,
      schemaType: "AVRO",
    };
    if (answer === "transient") throw new TransientError("registry: 503", "registry");
    return answer;
  }
}

const valueWith = (schemaId: number) => frame(schemaId, transferEventType.toBuffer(mintOf()));
const valuesWith = (schemaIds: number[]) => schemaIds.map(valueWith);

describe("the schema cache bound", () => {
  it("given a bound of 2 and a chunk using 5 ids, when prepared and decoded, then every value decodes", async () => {
    const registry = new StubRegistry();
    const decoder = new EventDecoder(registry, { schemaIdsMax: 2 });
    const values = valuesWith([1, 2, 3, 4, 5, 1, 5]);

    await decoder.prepare(values);
    const decoded = values.map((value) => decoder.decode(value));

    expect(decoded.map((d) => d.ok)).toEqual([true, true, true, true, true, true, true]);
    expect(decoded.map((d) => d.schemaId)).toEqual([1, 2, 3, 4, 5, 1, 5]);
    expect([...registry.asked.values()]).toEqual([1, 1, 1, 1, 1]);
  });

  it("given a bound of 2 and a decoded chunk of 5 ids, when the next chunk is prepared, then the cache is back at 2, its ids kept", async () => {
    const registry = new StubRegistry();
    const decoder = new EventDecoder(registry, { schemaIdsMax: 2 });
    const first = valuesWith([1, 2, 3, 4, 5]);
    await decoder.prepare(first);
    for (const value of first) decoder.decode(value);
    expect(decoder.cachedSchemaIds).toBe(5);

    const second = valuesWith([6, 5]);
    await decoder.prepare(second);

    expect(decoder.cachedSchemaIds).toBe(2);
    expect(second.map((value) => decoder.decode(value).ok)).toEqual([true, true]);
    expect(registry.asked.get(5)).toBe(1); // 5 was used again, so it was kept, not asked twice
  });

  it("given a bound of 1 and two chunks prepared at the same time, when both are decoded, then neither lost an id", async () => {
    const registry = new StubRegistry();
    const decoder = new EventDecoder(registry, { schemaIdsMax: 1 });
    const chunkA = valuesWith([1, 2, 1]);
    const chunkB = valuesWith([3, 4]);
    let open: () => void = () => {};
    registry.gate = new Promise((resolve) => {
      open = resolve;
    });

    const preparing = Promise.all([decoder.prepare(chunkA), decoder.prepare(chunkB)]);
    open();
    await preparing;

    expect(chunkA.map((value) => decoder.decode(value).ok)).toEqual([true, true, true]);
    expect(chunkB.map((value) => decoder.decode(value).ok)).toEqual([true, true]);
  });

  it("given a bound of 1 and a chunk waiting on a new id, when another chunk is prepared meanwhile, then the first keeps its cached id", async () => {
    const registry = new StubRegistry();
    const decoder = new EventDecoder(registry, { schemaIdsMax: 1 });
    const warm = valuesWith([1]);
    await decoder.prepare(warm);
    decoder.decode(warm[0]!);
    let open: () => void = () => {};
    registry.gates.set(
      2,
      new Promise((resolve) => {
        open = resolve;
      }),
    );
    const chunkA = valuesWith([1, 2]);
    const chunkB = valuesWith([3]);

    const preparingA = decoder.prepare(chunkA);
    await decoder.prepare(chunkB); // its eviction runs while chunk A waits for id 2
    open();
    await preparingA;

    expect(chunkA.map((value) => decoder.decode(value).ok)).toEqual([true, true]);
    expect(decoder.decode(chunkB[0]!).ok).toBe(true);
  });

  it("given the default, when constructed, then the bound is a named 10,000 ids", async () => {
    const { schemaIdsMaxDefault } = await import("../../services/applier/decode.ts");
    expect(schemaIdsMaxDefault).toBe(10_000);
  });
});

describe("what the cache remembers", () => {
  it("given a registry that fails transiently, when prepared, then TransientError, nothing kept, and the next try asks again", async () => {
    const registry = new StubRegistry();
    registry.answers.set(7, "transient");
    const decoder = new EventDecoder(registry, { schemaIdsMax: 1 });

    await expect(decoder.prepare(valuesWith([7]))).rejects.toBeInstanceOf(TransientError);
    expect(decoder.cachedSchemaIds).toBe(0);

    registry.answers.delete(7);
    const values = valuesWith([7]);
    await decoder.prepare(values);
    expect(decoder.decode(values[0]!)).toMatchObject({ ok: true, schemaId: 7 });
    expect(registry.asked.get(7)).toBe(2);
  });

  it("given an id not in the registry, when asked within a minute and after, then it is believed 60 s only", async () => {
    const registry = new StubRegistry();
    registry.answers.set(8, { found: false });
    let nowMs = 1_000_000;
    const decoder = new EventDecoder(registry, { nowMs: () => nowMs });
    const values = valuesWith([8]);

    await decoder.prepare(values);
    expect(decoder.decode(values[0]!)).toMatchObject({ ok: false, reason: "unknown_schema", schemaId: 8 });
    nowMs += 59_000;
    await decoder.prepare(values);
    decoder.decode(values[0]!);
    expect(registry.asked.get(8)).toBe(1);

    registry.answers.delete(8); // registered meanwhile
    nowMs += 2_000;
    await decoder.prepare(values);
    expect(decoder.decode(values[0]!)).toMatchObject({ ok: true, schemaId: 8 });
    expect(registry.asked.get(8)).toBe(2);
  });

  it("given two chunks needing the same new id at once, when prepared, then the registry is asked once", async () => {
    const registry = new StubRegistry();
    const decoder = new EventDecoder(registry);
    await Promise.all([decoder.prepare(valuesWith([9, 9])), decoder.prepare(valuesWith([9]))]);
    expect(registry.asked.get(9)).toBe(1);
  });
});
