// fast-check arbitraries of hostile values for the property tests (test/unit/*.property.unit.spec.ts),
// and the runner that gives them a fixed seed, a number of runs from the environment and a replay line.
// Batches of decoded records for planChunk: test/support/batch-input.ts.
//
//   TALLY_TEST_FUZZ_RUNS=N   runs per property (default: each property's own, a few seconds per file)
//   TALLY_TEST_FUZZ_SEED=S   the seed (default: fixed, so `make test` is reproducible)
//   TALLY_TEST_FUZZ_PATH=P   with the seed, replays exactly the failing case fast-check reported
// `make fuzz SEEDS=N [SEED=S]` sets the first two, with a random seed when SEED is not given.
import fc from "fast-check";
import type { TokenState } from "../../services/applier/decide.ts";
import { amountMax, eventProblems, type TransferEvent, textLengthMax } from "../../services/common/event.ts";

export { fc };

const defaultSeed = 20_261_122;

function envInteger(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text.trim() === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value))
    throw new Error(`${name} must be an integer, got ${JSON.stringify(text)}`);
  return value;
}

/** The seed every property of this process starts from. */
export const fuzzSeed = envInteger("TALLY_TEST_FUZZ_SEED") ?? defaultSeed;
const fuzzPath = process.env.TALLY_TEST_FUZZ_PATH?.trim() || undefined;
const envRuns = envInteger("TALLY_TEST_FUZZ_RUNS");
if (envRuns !== undefined && envRuns < 1) throw new Error("TALLY_TEST_FUZZ_RUNS must be at least 1");

/**
 * Runs of one property: `TALLY_TEST_FUZZ_RUNS` when set (times `share`, for the few properties whose
 * single run costs a hundred ordinary ones), else the property's default, sized for `make test`.
 */
export function fuzzRuns(defaultRuns: number, share = 1): number {
  return envRuns === undefined ? defaultRuns : Math.max(1, Math.ceil(envRuns * share));
}

/** A vitest timeout that grows with the runs, so `make fuzz SEEDS=100000` is not cut short. */
export function fuzzTimeoutMs(runs: number, msPerRun: number): number {
  return Math.max(30_000, Math.ceil(runs * msPerRun * 4));
}

export type FuzzOptions = {
  runs: number;
  /** the spec file, for the replay line */
  file: string;
  /** the test's name, for `-t` in the replay line */
  name: string;
  /** skip shrinking (for properties whose failing runs are slow, e.g. a time bound) */
  endOnFailure?: boolean;
  examples?: fc.Parameters<unknown>["examples"];
};

/**
 * Checks a property (sync or async) and, when it fails, throws fast-check's report (counterexample,
 * seed, path, the error) followed by the command line that replays exactly that case.
 */
export async function checkProperty<Ts>(property: fc.IRawProperty<Ts>, options: FuzzOptions): Promise<void> {
  const details = await fc.check(property, {
    seed: fuzzSeed,
    numRuns: options.runs,
    ...(fuzzPath !== undefined ? { path: fuzzPath } : {}),
    includeErrorInReport: true,
    ...(options.endOnFailure ? { endOnFailure: true } : {}),
    ...(options.examples ? { examples: options.examples as fc.Parameters<Ts>["examples"] } : {}),
  });
  if (!details.failed) return;
  const report = fc.defaultReportMessage(details) ?? "property failed";
  const replay =
    details.counterexamplePath !== null
      ? `TALLY_TEST_FUZZ_SEED=${details.seed} TALLY_TEST_FUZZ_PATH=${details.counterexamplePath}`
      : `TALLY_TEST_FUZZ_SEED=${details.seed} TALLY_TEST_FUZZ_RUNS=${options.runs}`;
  throw new Error(
    `${report}\n\nreplay this case alone:\n  ${replay} node_modules/.bin/vitest run --project unit ` +
      `${options.file} -t ${JSON.stringify(options.name)}\n`,
    { cause: details.errorInstance },
  );
}

// ---------------------------------------------------------------------------------------------
// Text

const probe: TransferEvent = {
  transfer_id: "00000000-0000-4000-8000-000000000000",
  batch_id: null,
  token_id: "t",
  asset: "USD",
  amount: 1n,
  from_wallet: null,
  to_wallet: "w",
  prev_state: null,
  next_state: "s",
  occurred_at: 0,
};

/** What eventProblems accepts as text (asked of eventProblems itself, so the two never drift apart). */
export function isWellFormedText(value: string): boolean {
  return !eventProblems({ ...probe, token_id: value }).some((problem) => problem.field === "token_id");
}

/** Strings that break naive code: empty, control characters, lone surrogates, U+FFFD, object keys, limits. */
const nastyTexts = [
  "",
  " ",
  "\u0000",
  "a\u001fb",
  "\n",
  "\uFFFD",
  "\uD800",
  "\uDC00x",
  "\u{1F4B8}",
  "__proto__",
  "constructor",
  "toString",
  "null",
  "NaN",
  "-0",
  "x".repeat(textLengthMax),
  "x".repeat(textLengthMax + 1),
  "\u{1F4B8}".repeat(textLengthMax / 2),
  "é",
  "e\u0301",
  "\u202E",
];

/** Any string at all: valid text, and the values a hostile producer would try. */
export const hostileText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...nastyTexts),
  fc.string({ unit: "binary", maxLength: 24 }),
  fc.string({ unit: "binary-ascii", maxLength: 24 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.string({ maxLength: 12 }),
);

/** Text eventProblems accepts, hostile within that: any code point from U+0020, U+FFFD, 200 units. */
export const wellFormedText: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 1, arbitrary: fc.constantFrom(...nastyTexts) },
    { weight: 4, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 16 }) },
    { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 8 }) },
  )
  .filter(isWellFormedText);

/** Mostly one of `pool` (so values collide, as owners and states must), sometimes any `other`. */
export function fromPool<T>(pool: readonly T[], other: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...pool) }, { weight: 1, arbitrary: other });
}

export const walletPool = ["alice", "bob", "carol", "\uFFFD", "__proto__"] as const;
export const statePool = ["s0", "s1", "s2", "s3", "S0"] as const;
export const tokenPool = ["tok-1", "tok-2", "tok-3", "constructor", "tok-\uFFFD"] as const;
export const assetPool = ["USD", "EUR", "RBT", "0", "ZZZZZZZZZZZZZZZZ"] as const;

export const wallet = fromPool(walletPool, wellFormedText);
export const stateName = fromPool(statePool, wellFormedText);
export const tokenId = fromPool(tokenPool, wellFormedText);
export const asset = fromPool(assetPool, fc.stringMatching(/^[A-Z0-9]{1,16}$/));
/** Valid amounts: 1 .. 10^38-1, the edges often. */
export const amount = fromPool([1n, 1_000n, 2n ** 63n, amountMax], fc.bigInt({ min: 1n, max: amountMax }));
/** Any bigint: zero, negatives, beyond 38 digits. */
export const hostileAmount = fc.oneof(
  amount,
  fc.constantFrom(0n, -1n, amountMax + 1n, -(2n ** 127n), 2n ** 128n),
  fc.bigInt(),
);

/** A uuid in either case or mixed: transfer ids are compared case-insensitively. */
export const transferId: fc.Arbitrary<string> = fc
  .tuple(fc.uuid(), fc.constantFrom("lower", "upper", "mixed"))
  .map(([id, casing]) =>
    casing === "lower"
      ? id
      : casing === "upper"
        ? id.toUpperCase()
        : [...id].map((c, k) => (k % 2 === 0 ? c.toUpperCase() : c)).join(""),
  );

/** 0 .. the largest Date (year 275760), the edges often. */
export const occurredAt = fc.oneof(
  fc.constantFrom(0, 1, 8_640_000_000_000_000, Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(2026, 0, 1)),
  fc.integer({ min: 0, max: 8_640_000_000_000_000 }),
);

// ---------------------------------------------------------------------------------------------
// Events and token states

export type EventPools = {
  wallet?: fc.Arbitrary<string>;
  state?: fc.Arbitrary<string>;
  token?: fc.Arbitrary<string>;
  asset?: fc.Arbitrary<string>;
  amount?: fc.Arbitrary<bigint>;
  occurredAt?: fc.Arbitrary<number>;
};

/**
 * A well-formed event (eventProblems finds nothing): a mint, a move or a burn, its values hostile
 * within the rules and drawn from small pools so that they match token states often.
 */
export function wellFormedEvent(
  pools: EventPools = {},
  kinds: readonly ("mint" | "move" | "burn")[] = ["mint", "move", "burn"],
) {
  const w = pools.wallet ?? wallet;
  return fc
    .record({
      kind: fc.constantFrom(...kinds),
      transfer_id: transferId,
      batch_id: fc.option(wellFormedText, { nil: null }),
      token_id: pools.token ?? tokenId,
      asset: pools.asset ?? asset,
      amount: pools.amount ?? amount,
      from: w,
      to: w,
      prev_state: pools.state ?? stateName,
      next_state: pools.state ?? stateName,
      occurred_at: pools.occurredAt ?? occurredAt,
    })
    .filter(({ kind, from, to }) => kind !== "move" || from !== to)
    .map(
      ({ kind, from, to, prev_state, ...rest }): TransferEvent => ({
        ...rest,
        from_wallet: kind === "mint" ? null : from,
        to_wallet: kind === "burn" ? null : to,
        prev_state: kind === "mint" ? null : prev_state,
      }),
    );
}

/** Any token state, including ones no rule could produce (an owner while retired, a zero value). */
export const hostileTokenState: fc.Arbitrary<TokenState> = fc.record({
  asset: fc.oneof(asset, hostileText),
  amount: hostileAmount,
  owner: fc.option(fc.oneof(wallet, hostileText), { nil: null }),
  state: fc.oneof(stateName, hostileText),
  retired: fc.boolean(),
});

/** A token state the rules could have produced: a retired token has no owner. */
export const reachableTokenState: fc.Arbitrary<TokenState> = fc
  .record({ asset, amount, owner: wallet, state: stateName, retired: fc.boolean() })
  .map((s) => (s.retired ? { ...s, owner: null } : s));
