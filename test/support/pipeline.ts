// Drives the real pipeline for fault tests: a generated load with known outcome, applier processes
// started and killed like a supervisor would, and the checks of an exact end state.
import { expect } from "vitest";
import { createPool } from "../../services/common/pg.ts";
import { TransferProducer } from "../../services/producer/producer.ts";
import { runProjector } from "../../services/projector/index.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { createProgressProbe } from "../../services/storage/progress.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import { verify } from "../../services/verify/index.ts";
import { createLoad, type LoadRun } from "../../tools/load/load.ts";
import { type LogLine, startTallyProcess, type TallyProcess } from "./process.ts";
import type { TestStack } from "./stack.ts";
import { waitUntil } from "./wait.ts";

/** The fault tests' load: ten events a token, four tokens a wallet, 2 % duplicates, 1 % double spends. */
export function faultLoad(events: number, seed: number): LoadRun {
  const tokens = Math.max(1, Math.floor(events / 10));
  return createLoad({
    events,
    tokens,
    wallets: Math.max(2, Math.floor(tokens / 4)),
    duplicateRate: 0.02,
    doubleSpendRate: 0.01,
    seed,
    nowMs: Date.now(),
  });
}

export async function produceLoad(stack: TestStack, events: number, seed: number): Promise<LoadRun> {
  await migrate(stack.config);
  await ensureTopic(stack.config);
  const load = faultLoad(events, seed);
  const producer = new TransferProducer(stack.config);
  await producer.connect();
  for (const chunk of load.chunks(5_000)) {
    const results = await producer.send(chunk);
    expect(results.every((r) => r.ok)).toBe(true);
  }
  await producer.disconnect();
  return load;
}

/**
 * The same load as produceLoad, sent in parts: `sendUpTo(n)` sends the load's events until n are
 * out. A fault test sends the next part after a fault landed, so work is pending then whatever the
 * appliers' speed: a test that waited on progress alone could find everything applied already.
 */
export async function produceLoadStaged(
  stack: TestStack,
  events: number,
  seed: number,
): Promise<{ load: LoadRun; sendUpTo(eventCount: number): Promise<void>; close(): Promise<void> }> {
  await migrate(stack.config);
  await ensureTopic(stack.config);
  const load = faultLoad(events, seed);
  const producer = new TransferProducer(stack.config);
  await producer.connect();
  const chunks = load.chunks(1_000)[Symbol.iterator]();
  let sent = 0;
  return {
    load,
    async sendUpTo(eventCount: number) {
      while (sent < eventCount) {
        const next = chunks.next();
        if (next.done) break;
        const results = await producer.send(next.value);
        expect(results.every((r) => r.ok)).toBe(true);
        sent += next.value.length;
      }
    },
    close: () => producer.disconnect(),
  };
}

export type ApplierProcess = TallyProcess;

/**
 * `bin/tally apply` on the test's stack, logging at info (the "batch committed" lines are the
 * signals fault tests act on) unless `env` says otherwise.
 */
export function startApplier(
  stack: TestStack,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): TallyProcess {
  return startTallyProcess(stack.env, "apply", args, { env: { TALLY_LOG_LEVEL: "info", ...env } });
}

/** `bin/tally project` on the test's stack, logging at info (a line per round that moved rows). */
export function startProjector(
  stack: TestStack,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): TallyProcess {
  return startTallyProcess(stack.env, "project", args, { env: { TALLY_LOG_LEVEL: "info", ...env } });
}

/** Waits until the group has applied at least `offsets` records in all (the stored offsets: a signal in the database). */
export async function waitForApplied(stack: TestStack, offsets: bigint): Promise<bigint> {
  const probe = await createProgressProbe(stack.config);
  try {
    return await waitUntil(`${offsets} records applied`, async () => {
      const progress = await probe.read();
      return progress.appliedOffsets >= offsets ? progress.appliedOffsets : false;
    });
  } finally {
    await probe.close();
  }
}

/**
 * Calls `act` synchronously on the first "batch committed" line (of any of `appliers`) that brings
 * the group's stored offsets to `target` records in all. `stored`: each partition's next offset
 * before the processes started; their lines move them on. Resolves with that line once `act` has
 * run; fails if every process exits first.
 */
export async function onAppliedLine(
  appliers: TallyProcess | TallyProcess[],
  stored: Map<number, bigint>,
  target: bigint,
  act: (line: LogLine) => void,
): Promise<LogLine> {
  const processes = Array.isArray(appliers) ? appliers : [appliers];
  const next = new Map(stored);
  let acted: LogLine | null = null;
  const reached = (line: LogLine) => {
    if (acted !== null || line.msg !== "batch committed") return;
    const partition = Number(line.partition);
    const offset = BigInt(String(line.next_offset));
    if (offset > (next.get(partition) ?? 0n)) next.set(partition, offset);
    if ([...next.values()].reduce((a, b) => a + b, 0n) < target) return;
    acted = line;
    act(line);
  };
  for (const applier of processes) for (const line of applier.lines) reached(line);
  for (const applier of processes) applier.onLine(reached);
  const exitCodes = processes.map(() => undefined as number | null | undefined);
  processes.forEach((a, k) => {
    a.exited.then((code) => {
      exitCodes[k] = code;
    });
  });
  return waitUntil(
    `a batch committed with ${target} records applied in all`,
    () => {
      if (acted !== null) return acted;
      if (exitCodes.every((code) => code !== undefined))
        throw new Error(
          `every applier exited (${exitCodes.join(", ")}) before ${target} records were applied:\n` +
            processes.map((a) => a.stderrTail()).join("\n"),
        );
      return false;
    },
    { intervalMs: 20 },
  );
}

/** Runs one applier to the end of the topic and the projector after it. */
export async function finishPipeline(stack: TestStack): Promise<void> {
  const last = startApplier(stack, ["--until-caught-up"]);
  expect(await last.exited).toBe(0);
  await runProjector(stack.config, { untilCaughtUp: true });
}

/**
 * The end state is the generator's, computed without Tally: counts, balances, and verify.
 * extra: copies the topic holds beyond the generated events (resent by a test's producer, counted
 * by reading the topic back): a copy of an applied event ends as a duplicate, a copy of a double
 * spend is rejected again (its id was never applied).
 */
export async function expectExactState(
  stack: TestStack,
  load: LoadRun,
  extra: { duplicates: number; rejected: number } = { duplicates: 0, rejected: 0 },
): Promise<void> {
  const outcome = load.outcome;
  let applied = 0n;
  let duplicates = 0n;
  let rejected = 0n;
  for (const url of stack.config.TALLY_PG_SHARDS) {
    const pool = createPool(stack.config, url, "test", 1);
    const row = (
      await pool.query(
        "SELECT sum(applied_count)::text a, sum(duplicate_count)::text d, sum(rejected_count)::text r FROM applier_offsets",
      )
    ).rows[0];
    const ledger = (await pool.query("SELECT count(*)::text n FROM transfers")).rows[0];
    expect(ledger.n).toBe(row.a);
    applied += BigInt(row.a);
    duplicates += BigInt(row.d);
    rejected += BigInt(row.r);
    await pool.end();
  }
  expect({ applied, duplicates, rejected }).toEqual({
    applied: BigInt(outcome.applied),
    duplicates: BigInt(outcome.duplicates + extra.duplicates),
    rejected: BigInt(outcome.rejected.state_conflict + extra.rejected),
  });
  const views = createPool(stack.config, stack.config.TALLY_PG_VIEWS, "test", 1);
  const rows = (
    await views.query("SELECT wallet, asset, balance::text FROM wallet_balances WHERE balance <> 0")
  ).rows;
  await views.end();
  const actual = new Map<string, bigint>(rows.map((r) => [`${r.wallet}|${r.asset}`, BigInt(r.balance)]));
  const expected = new Map<string, bigint>();
  for (const [wallet, perAsset] of load.balances())
    for (const [asset, b] of perAsset) if (b !== 0n) expected.set(`${wallet}|${asset}`, b);
  expect(actual).toEqual(expected);
  const report = await verify(stack.config);
  expect(report.checks.filter((c) => !c.ok)).toEqual([]);
}
