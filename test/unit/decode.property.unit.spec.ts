// Property tests of the decoder (services/applier/decode.ts EventDecoder) over hostile bytes: any
// value in, an event or a rejection out, never a throw; strings only from valid UTF-8; time linear
// in the size; the schema cache never drops an id a chunk still needs.
// The values: test/support/hostile-avro.ts; the registry stub and the outcome checks: decoder-checks.ts.
// Runs and seed: test/support/arbitraries.ts (TALLY_TEST_FUZZ_RUNS, TALLY_TEST_FUZZ_SEED, make fuzz).
import { describe, expect, it } from "vitest";
import type { TransferEvent } from "../../services/common/event.ts";
import { checkProperty, fc, fuzzRuns, fuzzTimeoutMs } from "../support/arbitraries.ts";
import {
  type Decoded,
  decodeChunk,
  expectWellShaped,
  isUtf8,
  newDecoder,
  twosComplement,
} from "../support/decoder-checks.ts";
import { mintOf } from "../support/events.ts";
import {
  encodableEvent,
  encodeEvent,
  encodeStructured,
  frameOf,
  hostileValue,
  isExact,
  knownId,
  structuredBody,
} from "../support/hostile-avro.ts";

const file = "test/unit/decode.property.unit.spec.ts";
const runs = fuzzRuns(150);
const timeout = fuzzTimeoutMs(runs, 10);

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
      const event = mintOf({ transfer_id: "00000000-0000-4000-8000-000000000000", occurred_at: 1_000 });
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
