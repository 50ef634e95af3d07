import { describe, expect, it } from "vitest";
import {
  avroTypeOf,
  toPlainEvent,
  transferEventSchemaText,
  transferEventType,
  unframe,
} from "../../services/common/avro.ts";
import { loadConfig } from "../../services/common/config.ts";
import { isUuid, type TransferEvent } from "../../services/common/event.ts";
import { batchesOf, problemsText, sendProblems, TransferProducer } from "../../services/producer/producer.ts";
import { burnOf, mintOf, moveOf } from "../support/events.ts";

// No broker is contacted: the field checks run before anything is sent, and kafkajs connects lazily.
const config = loadConfig({ TALLY_TOPIC: "unit-producer" });
const producerOf = (options = {}) => new TransferProducer(config, options);

const v2SchemaText = (() => {
  const schema = JSON.parse(transferEventSchemaText);
  schema.fields.push({ name: "channel", type: ["null", "string"], default: null });
  return JSON.stringify(schema);
})();

describe("TransferProducer: checks before sending", () => {
  it.each<[string, TransferEvent, string, string]>([
    ["a transfer_id that is not a uuid", mintOf({ transfer_id: "t-1" }), "transfer_id", "must be a uuid"],
    [
      "an empty token_id",
      mintOf({ token_id: "" }),
      "token_id",
      "must be 1..200 characters with no control characters",
    ],
    ["a token_id of 201 characters", mintOf({ token_id: "x".repeat(201) }), "token_id", "must be 1..200"],
    ["a lower-case asset", mintOf({ asset: "usd" }), "asset", "must be 1..16 characters of A-Z and 0-9"],
    [
      "a zero amount",
      mintOf({ amount: 0n }),
      "amount",
      "must be a whole number of minor units from 1 to 10^38-1",
    ],
    ["an amount of 10^38", mintOf({ amount: 10n ** 38n }), "amount", "from 1 to 10^38-1"],
    ["an amount as a JS number", mintOf({ amount: 5 as unknown as bigint }), "amount", "from 1 to 10^38-1"],
    ["a tab in to_wallet", mintOf({ to_wallet: "a\tb" }), "to_wallet", "must be null or 1..200 characters"],
    ["a newline in batch_id", mintOf({ batch_id: "b\n1" }), "batch_id", "must be null or 1..200 characters"],
    ["an empty next_state", mintOf({ next_state: "" }), "next_state", "must be 1..200 characters"],
    // UTF-8 has no form for a lone surrogate: it would go out as U+FFFD and merge with other ids
    [
      "a lone surrogate in to_wallet",
      mintOf({ to_wallet: "w-\ud800" }),
      "to_wallet",
      "must be null or 1..200",
    ],
    ["a lone low surrogate in token_id", mintOf({ token_id: "t-\udc00x" }), "token_id", "must be 1..200"],
    [
      "a negative occurred_at",
      mintOf({ occurred_at: -1 }),
      "occurred_at",
      "must be a timestamp in milliseconds",
    ],
    [
      "a fractional occurred_at",
      mintOf({ occurred_at: 1.5 }),
      "occurred_at",
      "must be a timestamp in milliseconds",
    ],
    ["a mint with a prev_state", mintOf({ prev_state: "s0" }), "prev_state", "must be null for a mint"],
    [
      "a move without a prev_state",
      moveOf({ prev_state: null }),
      "prev_state",
      "is needed for a move or burn",
    ],
    ["a move to its own wallet", moveOf({ to_wallet: "alice" }), "to_wallet", "equals from_wallet"],
    [
      "no wallet at all",
      burnOf({ from_wallet: null, prev_state: null }),
      "event",
      "a mint and a burn at once",
    ],
  ])(
    "given %s, when sent, then it is refused with that field's problem and not sent",
    async (_, event, field, problem) => {
      const [result] = await producerOf().send([event]);
      expect(result?.ok).toBe(false);
      const problems = result?.ok === false ? result.problems : [];
      expect(problems).toContainEqual({ field, problem: expect.stringContaining(problem) });
    },
  );

  it("given a real U+FFFD or a surrogate pair (an emoji) in a wallet, when checked, then no problem", () => {
    expect(sendProblems(mintOf({ to_wallet: "w-\uFFFD" }))).toEqual([]);
    expect(sendProblems(mintOf({ to_wallet: "w-\u{1F600}" }))).toEqual([]);
  });

  it("given several bad fields in one event, when checked, then each is named once", () => {
    const problems = sendProblems(mintOf({ transfer_id: "x", asset: "", amount: -3n }));
    expect(problems.map((p) => p.field)).toEqual(["transfer_id", "asset", "amount"]);
    expect(problemsText(problems)).toBe(
      "transfer_id must be a uuid; asset must be 1..16 characters of A-Z and 0-9; " +
        "amount must be a whole number of minor units from 1 to 10^38-1",
    );
  });

  it("given something that is not an object, when checked, then the event as a whole is refused", () => {
    expect(sendProblems(null)).toEqual([{ field: "event", problem: "must be an object" }]);
  });

  it("given only bad events, when sent before connect(), then each gets its result in order and nothing needs Kafka", async () => {
    const results = await producerOf().send([mintOf({ asset: "€" }), moveOf({ prev_state: null })]);
    expect(results.map((r) => r.ok)).toEqual([false, false]);
    expect(results.map((r) => (r.ok ? [] : r.problems.map((p) => p.field)))).toEqual([
      ["asset"],
      ["prev_state"],
    ]);
  });

  it("given a good event, when sent before connect(), then the send is refused rather than queued", async () => {
    await expect(producerOf().send([mintOf()])).rejects.toThrow("connect() before sending");
  });

  it("given a v2 writer, when an added field has the wrong type, then that field is named", () => {
    const v2 = avroTypeOf(v2SchemaText);
    const event = { ...mintOf(), channel: 7 } as TransferEvent;
    expect(sendProblems(event, v2)).toEqual([
      { field: "channel", problem: expect.stringContaining("does not fit the writer schema") },
    ]);
    expect(sendProblems({ ...mintOf(), channel: "web" } as TransferEvent, v2)).toEqual([]);
  });

  it("given a schema id, when an event is encoded, then it is Confluent-framed Avro that decodes to the same event", () => {
    const event = mintOf({ amount: 10n ** 38n - 1n, to_wallet: 'кошелёк "7"' });
    const unframed = unframe(producerOf({ schemaId: 77 }).encode(event));
    expect(unframed?.schemaId).toBe(77);
    expect(toPlainEvent(transferEventType.fromBuffer(unframed!.body))).toEqual(event);
  });

  it.each([
    [{ batchMessagesMax: 0 }, "batchMessagesMax must be a whole number from 1 to 100000"],
    [{ batchBytesMax: 10 }, "batchBytesMax must be a whole number from 1024 to 1000000"],
    [{ schemaId: -1 }, "schemaId must be a whole number from 0 to 2^32-1"],
  ])("given options %o, when constructed, then refused with a clear message", (options, message) => {
    expect(() => producerOf(options)).toThrow(message);
  });
});

describe("batchesOf", () => {
  const items = (sizes: number[]) => sizes.map((bytes, id) => ({ id, bytes }));
  it("given more messages than the bound, when batched, then every batch holds at most the bound, in order", () => {
    const batches = [...batchesOf(items(Array(7).fill(1)), 3, 1_000)];
    expect(batches.map((b) => b.map((i) => i.id))).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
  });
  it("given a byte bound, when batched, then no batch exceeds it unless one message alone does", () => {
    const batches = [...batchesOf(items([400, 400, 400, 2_000, 100]), 100, 1_000)];
    expect(batches.map((b) => b.map((i) => i.bytes))).toEqual([[400, 400], [400], [2_000], [100]]);
  });
});

describe("isUuid: the hand-written check every consumed record passes through", () => {
  const good = "0189a6f2-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
  it.each<[string, string, boolean]>([
    ["the canonical lower-case form", good, true],
    ["the upper-case form", good.toUpperCase(), true],
    ["a 'g' among the digits", `${good.slice(0, 35)}g`, false],
    ["a dash moved by one place", `${good.slice(0, 8)}${good[9]}-${good.slice(10)}`, false],
    ["no dashes (32 digits)", good.replaceAll("-", ""), false],
    ["one digit short", good.slice(0, 35), false],
    ["braces around it", `{${good.slice(1, 35)}}`, false],
    ["a character just past 'f' ('g' - 0x20 = 'G')", `${good.slice(0, 35)}G`, false],
    ["a character just before '0' ('/')", `/${good.slice(1)}`, false],
  ])("given %s (%s), when checked, then it is a uuid: %s", (_, value, expected) => {
    expect(isUuid(value)).toBe(expected);
  });
});
