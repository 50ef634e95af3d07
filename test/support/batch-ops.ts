// What one record of a generated batch may be (test/support/batch-input.ts builds the batch): a mint,
// the next move of a token, a replay, a hostile event or a decoding failure, each with its key mode,
// id casing, timestamp and where occurred_at falls against the window.
import fc from "fast-check";
import { rejectionReasons } from "../../services/applier/decide.ts";
import {
  amount,
  asset,
  hostileAmount,
  hostileText,
  occurredAt,
  stateName,
  tokenId,
  transferId,
  wallet,
  wellFormedText,
} from "./arbitraries.ts";

const batchNowMs = Date.UTC(2026, 10, 22, 12, 0, 0);

/** Where occurred_at falls against the record's timestamp and the window: the edges are inclusive. */
const occurredMode = fc.oneof(
  { weight: 12, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((f) => ({ inside: f })) },
  { weight: 1, arbitrary: fc.constantFrom("earliest", "latest", "before", "after") },
  { weight: 1, arbitrary: occurredAt.map((at) => ({ at })) },
);
export type OccurredMode = typeof occurredMode extends fc.Arbitrary<infer T> ? T : never;

/** How the record's key relates to the event's token_id. */
const keyMode = fc.oneof(
  { weight: 16, arbitrary: fc.constant("token" as const) },
  { weight: 1, arbitrary: fc.constant("null" as const) },
  // bytes that are not the token's UTF-8 but that a lenient decoder reads as it (U+FFFD for 0xff)
  { weight: 2, arbitrary: fc.constant("lookalike" as const) },
  { weight: 1, arbitrary: hostileText.map((text) => ({ other: text })) },
);
export type KeyMode = typeof keyMode extends fc.Arbitrary<infer T> ? T : never;

const common = fc.record({
  id: fc.oneof(
    { weight: 2, arbitrary: fc.nat(7).map((pooled) => ({ pooled })) },
    { weight: 3, arbitrary: transferId.map((fresh) => ({ fresh })) },
  ),
  casing: fc.constantFrom("lower", "upper", "mixed"),
  key: keyMode,
  occurred: occurredMode,
  // Kafka's "no timestamp" is -1
  timestamp: fc.oneof(
    { weight: 20, arbitrary: fc.integer({ min: 0, max: 3_600_000 }).map((jitter) => batchNowMs + jitter) },
    { weight: 1, arbitrary: fc.constantFrom(-1, 0, 8_640_000_000_000_000) },
  ),
  schemaId: fc.oneof(fc.constant(1), fc.nat()),
  value: fc.option(fc.uint8Array({ maxLength: 24 }), { freq: 10 }),
  batchId: fc.option(wellFormedText, { nil: null }),
});

/** A fresh state name unique in the batch, or one of the pool (which may repeat earlier states). */
const nextStateOf = fc.option(stateName, { freq: 2 });
const toWallet = fc.option(wallet, { nil: null, freq: 6 }); // null: a burn

export const op = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("mint" as const),
      token: tokenId,
      to: wallet,
      next: nextStateOf,
      asset,
      amount,
      c: common,
    }),
  },
  {
    // the next move of a token from its latest generated event (back 0), or from an older one (a
    // double spend or a replay); the latest generated event may itself have been rejected
    weight: 8,
    arbitrary: fc.record({
      t: fc.constant("follow" as const),
      token: tokenId,
      back: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(4) }),
      // someone other than the owner spends it
      thief: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: wallet }),
      // or spends it at another value
      forged: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: amount }),
      to: toWallet,
      next: nextStateOf,
      c: common,
    }),
  },
  {
    // an earlier event again, under its own transfer id (a duplicate) or another one
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("replay" as const),
      back: fc.nat(),
      sameId: fc.boolean(),
      c: common,
    }),
  },
  {
    // a decoded event with any values at all: mostly invalid_field
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("hostile" as const),
      event: fc.record({
        transfer_id: fc.oneof(transferId, hostileText),
        batch_id: fc.option(hostileText, { nil: null }),
        token_id: fc.oneof(tokenId, hostileText),
        asset: fc.oneof(asset, hostileText),
        amount: hostileAmount,
        from_wallet: fc.option(fc.oneof(wallet, hostileText), { nil: null }),
        to_wallet: fc.option(fc.oneof(wallet, hostileText), { nil: null }),
        prev_state: fc.option(fc.oneof(stateName, hostileText), { nil: null }),
        next_state: fc.oneof(stateName, hostileText),
        occurred_at: fc.oneof(
          occurredAt,
          fc.constantFrom(-1, Number.NaN, 1.5, 2 ** 53, -(2 ** 53), Number.POSITIVE_INFINITY),
        ),
      }),
      c: common,
    }),
  },
  {
    // a record that did not decode
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("failure" as const),
      reason: fc.constantFrom(...rejectionReasons),
      detail: hostileText,
      schemaIdOrNull: fc.option(fc.nat(), { nil: null }),
      c: common,
    }),
  },
);
