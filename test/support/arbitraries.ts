// fast-check arbitraries of hostile values for the property tests (test/unit/*.property.unit.spec.ts),
// and the runner that gives them a fixed seed, a number of runs from the environment and a replay line.
//
//   TALLY_TEST_FUZZ_RUNS=N   runs per property (default: each property's own, a few seconds per file)
//   TALLY_TEST_FUZZ_SEED=S   the seed (default: fixed, so `make test` is reproducible)
//   TALLY_TEST_FUZZ_PATH=P   with the seed, replays exactly the failing case fast-check reported
// `make fuzz SEEDS=N [SEED=S]` sets the first two, with a random seed when SEED is not given.
import fc from "fast-check";
import { rejectionReasons, type TokenState } from "../../services/applier/decide.ts";
import type { DecodedRecord, PlanRouting } from "../../services/applier/plan.ts";
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

// ---------------------------------------------------------------------------------------------
// Batches of decoded records, for planChunk

export type BatchInput = {
  records: DecodedRecord[];
  /** token states before the batch (what stateOf answers) */
  initial: Map<string, TokenState>;
  /** transfer ids known as applied before the batch, lower-cased */
  appliedIds: Set<string>;
  window: { pastDays: number; futureDays: number };
  /** where the records must be (wrong_partition) and the archived days (archived_day); none: unchecked */
  routing: PlanRouting | undefined;
};

const dayMs = 86_400_000;
const batchNowMs = Date.UTC(2026, 10, 22, 12, 0, 0);

/** Where occurred_at falls against the record's timestamp and the window: the edges are inclusive. */
const occurredMode = fc.oneof(
  { weight: 12, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((f) => ({ inside: f })) },
  { weight: 1, arbitrary: fc.constantFrom("earliest", "latest", "before", "after") },
  { weight: 1, arbitrary: occurredAt.map((at) => ({ at })) },
);
type OccurredMode = typeof occurredMode extends fc.Arbitrary<infer T> ? T : never;

/** How the record's key relates to the event's token_id. */
const keyMode = fc.oneof(
  { weight: 16, arbitrary: fc.constant("token" as const) },
  { weight: 1, arbitrary: fc.constant("null" as const) },
  // bytes that are not the token's UTF-8 but that a lenient decoder reads as it (U+FFFD for 0xff)
  { weight: 2, arbitrary: fc.constant("lookalike" as const) },
  { weight: 1, arbitrary: hostileText.map((text) => ({ other: text })) },
);
type KeyMode = typeof keyMode extends fc.Arbitrary<infer T> ? T : never;

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

const op = fc.oneof(
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

type Link = { owner: string | null; state: string; asset: string; amount: bigint };

function occurredAtOf(mode: OccurredMode, timestampMs: number, window: BatchInput["window"]): number {
  const earliest = timestampMs - window.pastDays * dayMs;
  const latest = timestampMs + window.futureDays * dayMs;
  if (mode === "earliest") return earliest;
  if (mode === "latest") return latest;
  if (mode === "before") return earliest - 1;
  if (mode === "after") return latest + 1;
  if ("at" in mode) return mode.at;
  return earliest + Math.round(mode.inside * (latest - earliest));
}

function keyOf(mode: KeyMode, tokenId: string): Buffer | null {
  if (mode === "token") return Buffer.from(tokenId, "utf8");
  if (mode === "null") return null;
  if (mode === "lookalike") {
    const utf8 = Buffer.from(tokenId, "utf8");
    const replacement = Buffer.from("\uFFFD", "utf8");
    const at = utf8.indexOf(replacement);
    // 0xff is not UTF-8; a lenient decoder reads it as U+FFFD, which the token's bytes EF BF BD are
    if (at >= 0) return Buffer.concat([utf8.subarray(0, at), Buffer.from([0xff]), utf8.subarray(at + 3)]);
    return Buffer.concat([utf8, Buffer.from([0xc3])]); // a truncated sequence at the end
  }
  return Buffer.from(mode.other, "utf8");
}

const withCasing = (id: string, casing: string) =>
  casing === "lower"
    ? id.toLowerCase()
    : casing === "upper"
      ? id.toUpperCase()
      : [...id].map((c, k) => (k % 2 === 1 ? c.toUpperCase() : c.toLowerCase())).join("");

/**
 * A batch of one partition: mints, chains of moves and burns of a few tokens (so that many apply),
 * double spends, replays under the same or another id, duplicate ids in other casings, ill-formed
 * events, wrong keys, events outside the window, records that did not decode; offsets strictly
 * increasing with random gaps; token states and applied ids from before the batch.
 */
export const batchInput: fc.Arbitrary<BatchInput> = fc
  .record({
    window: fc.record({
      pastDays: fc.integer({ min: 0, max: 500 }),
      futureDays: fc.integer({ min: 0, max: 5 }),
    }),
    initial: fc.array(fc.tuple(tokenId, reachableTokenState), { maxLength: 4 }),
    pool: fc.uniqueArray(fc.uuid(), { minLength: 8, maxLength: 8 }),
    appliedMask: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    ops: fc.array(op, { minLength: 1, maxLength: 40 }),
    firstOffset: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 62n })),
    routing: fc.option(
      fc.record({
        partition: fc.nat(5),
        // tokens whose key the partitioner sends to another partition
        elsewhereKeys: fc.uniqueArray(tokenId, { maxLength: 2 }),
        // tokens that already live on a partition (this one or another)
        homes: fc.array(fc.tuple(tokenId, fc.boolean()), { maxLength: 3 }),
        // detached days: the days of some of the batch's events
        archived: fc.uniqueArray(fc.nat(39), { maxLength: 2 }),
      }),
      { freq: 3 },
    ),
    gaps: fc.array(
      fc.oneof(
        { weight: 8, arbitrary: fc.constant(1n) },
        { weight: 1, arbitrary: fc.bigInt({ min: 2n, max: 1_000n }) },
      ),
      {
        minLength: 40,
        maxLength: 40,
      },
    ),
  })
  .map(({ window, initial, pool, appliedMask, ops, firstOffset, gaps, routing }): BatchInput => {
    const initialStates = new Map(initial);
    const history = new Map<string, Link[]>();
    for (const [token, state] of initialStates) history.set(token, [state]);
    const sent: TransferEvent[] = [];
    const records: DecodedRecord[] = [];
    let lastToken: string | undefined;
    let offset = firstOffset;
    ops.forEach((o, k) => {
      offset += k === 0 ? 0n : gaps[k]!;
      const c = o.c;
      const id = withCasing("pooled" in c.id ? pool[c.id.pooled]! : c.id.fresh, c.casing);
      const base = {
        offset,
        timestampMs: c.timestamp,
        value: c.value === null ? null : Buffer.from(c.value),
      };
      if (o.t === "failure") {
        records.push({
          ...base,
          key: keyOf(c.key, "tok-1"),
          decoded: { ok: false, reason: o.reason, detail: o.detail, schemaId: o.schemaIdOrNull },
        });
        return;
      }
      const occurred_at = occurredAtOf(c.occurred, c.timestamp, window);
      let event: TransferEvent;
      if (o.t === "hostile") {
        event = o.event;
      } else if (o.t === "replay") {
        const earlier = sent[sent.length - 1 - (o.back % Math.max(1, sent.length))];
        if (earlier === undefined) {
          event = mintOfPool(id, occurred_at);
        } else {
          event = o.sameId ? { ...earlier } : { ...earlier, transfer_id: id };
        }
      } else {
        const next = o.next ?? `n${k}`;
        if (o.t === "mint") {
          event = {
            transfer_id: id,
            batch_id: c.batchId,
            token_id: o.token,
            asset: o.asset,
            amount: o.amount,
            from_wallet: null,
            to_wallet: o.to,
            prev_state: null,
            next_state: next,
            occurred_at,
          };
        } else {
          // a token with no history yet: follow the latest token that has one
          const token = history.has(o.token) ? o.token : (lastToken ?? o.token);
          const links = history.get(token) ?? [];
          const from = links[links.length - 1 - (o.back % Math.max(1, links.length))] ?? {
            owner: "alice",
            state: "s0",
            asset: "USD",
            amount: 1_000n,
          };
          const owner = o.thief ?? from.owner ?? "alice";
          const to = o.to === owner ? (owner === "bob" ? "carol" : "bob") : o.to;
          event = {
            transfer_id: id,
            batch_id: c.batchId,
            token_id: token,
            asset: from.asset,
            amount: o.forged ?? from.amount,
            from_wallet: owner,
            to_wallet: to,
            prev_state: from.state,
            next_state: next,
            occurred_at,
          };
        }
        const links = history.get(event.token_id) ?? [];
        links.push({
          owner: event.to_wallet,
          state: event.next_state,
          asset: event.asset,
          amount: event.amount,
        });
        history.set(event.token_id, links);
        lastToken = event.token_id;
      }
      sent.push(event);
      records.push({
        ...base,
        key: keyOf(c.key, typeof event.token_id === "string" ? event.token_id : ""),
        decoded: { ok: true, event, schemaId: c.schemaId },
      });
    });
    const appliedIds = new Set(pool.filter((_, k) => appliedMask[k]).map((id) => id.toLowerCase()));
    return { records, initial: initialStates, appliedIds, window, routing: routingOf(routing, records) };
  });

/** A replay with nothing to replay yet: a mint of tok-1. */
function mintOfPool(id: string, occurred_at: number): TransferEvent {
  return {
    transfer_id: id,
    batch_id: null,
    token_id: "tok-1",
    asset: "USD",
    amount: 1_000n,
    from_wallet: null,
    to_wallet: "alice",
    prev_state: null,
    next_state: "s0",
    occurred_at,
  };
}

type RoutingChoice = {
  partition: number;
  elsewhereKeys: string[];
  homes: [string, boolean][];
  archived: number[];
} | null;

/** A partitioner stub that is right for every key but the chosen ones; homes; the days of some records archived. */
function routingOf(choice: RoutingChoice, records: readonly DecodedRecord[]): PlanRouting | undefined {
  if (choice === null) return undefined;
  const { partition } = choice;
  const other = (partition + 1) % 6;
  const elsewhere = new Set(choice.elsewhereKeys.map((token) => Buffer.from(token, "utf8").toString("hex")));
  const homes = new Map(choice.homes.map(([token, here]) => [token, here ? partition : other]));
  const archivedDays = new Set<number>();
  for (const index of choice.archived) {
    const decoded = records[index % records.length]!.decoded;
    if (decoded.ok && Number.isFinite(decoded.event.occurred_at))
      archivedDays.add(Math.floor(decoded.event.occurred_at / dayMs));
  }
  return {
    partition,
    partitionOfKey: (key) => (elsewhere.has(key.toString("hex")) ? other : partition),
    homeOf: (token) => homes.get(token),
    archivedDays,
  };
}
