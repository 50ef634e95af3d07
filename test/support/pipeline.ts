// Drives the real pipeline for fault tests: a generated load with known outcome, applier processes
// started and killed like a supervisor would, and the checks of an exact end state.
import { type ChildProcess, spawn } from "node:child_process";
import { expect } from "vitest";
import { createProgressProbe } from "../../services/applier/progress.ts";
import { ensureTopic } from "../../services/cli/topics.ts";
import { createPool } from "../../services/common/pg.ts";
import { sleep } from "../../services/common/retry.ts";
import { createLoad, type LoadRun } from "../../services/producer/load.ts";
import { TransferProducer } from "../../services/producer/producer.ts";
import { runProjector } from "../../services/projector/index.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { verify } from "../../services/verify/index.ts";
import { repoRoot, type TestStack } from "./stack.ts";

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

export type ApplierProcess = { child: ChildProcess; exited: Promise<number | null> };

export function startApplier(stack: TestStack, args: string[] = []): ApplierProcess {
  const child = spawn(`${repoRoot}bin/tally`, ["apply", ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...stack.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))),
  );
  exited.then((code) => {
    if (code !== 0 && code !== -1) process.stderr.write(`applier exited ${code}:\n${stderr}\n`);
  });
  return { child, exited };
}

/** Waits until the group has applied at least `offsets` records in all, within `timeoutMs`. */
export async function waitForApplied(stack: TestStack, offsets: bigint, timeoutMs = 60_000): Promise<bigint> {
  const probe = await createProgressProbe(stack.config);
  try {
    const deadlineMs = Date.now() + timeoutMs;
    for (;;) {
      const progress = await probe.read();
      if (progress.appliedOffsets >= offsets) return progress.appliedOffsets;
      if (Date.now() > deadlineMs)
        throw new Error(`applied ${progress.appliedOffsets} of ${offsets} within ${timeoutMs} ms`);
      await sleep(100);
    }
  } finally {
    await probe.close();
  }
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
