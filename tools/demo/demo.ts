// `tally demo`, the main job: on a fresh identity of its own (topic, consumer group, shard and views
// databases named <prefix>_<UTC time>), migrate, topic, a realistic load, two applier processes and
// the projector until caught up with live progress, then a summary table, the outcomes checked
// against what the generator predicted, and verify. Leftovers of earlier runs cannot change its
// outcome, and only the last few runs are kept.
import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import Table from "cli-table3";
import type { ApplierSummary as ApplierJson } from "../../services/applier/applier.ts";
import { type Config, ConfigError, databaseNameOf, maskUrlPassword } from "../../services/common/config.ts";
import { createPool } from "../../services/common/pg.ts";
import { runProjector } from "../../services/projector/index.ts";
import { outcomeTotals } from "../../services/storage/applier-offsets.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { topics } from "../../services/topics/topics.ts";
import { formatReport, verify } from "../../services/verify/index.ts";
import { createLoad, type LoadOptions, type LoadOutcome } from "../load/load.ts";
import { defaultTokensFor, defaultWalletsFor, produceCommand } from "../load/produce-command.ts";
import { balanceCount, type DemoOutcome, outcomeDifferences } from "./demo-check.ts";
import { configOf, demoIdentity, demoRunId, identityEnv, removeDemoRuns } from "./runs.ts";

export { demoRunId, listDemoRuns, newestFirst, removeDemoRuns } from "./runs.ts";

import { showCatchUpProgress } from "./progress.ts";

export type DemoOptions = {
  events: number;
  appliers: number;
  duplicateRate: number;
  doubleSpendRate: number;
  /** names of the run's topic, group and databases start with `<prefix>_` */
  prefix?: string;
};

export const demoPrefixDefault = "tally_demo";
/** Runs of one prefix kept: this one and the one before; older ones are removed when a run starts. */
export const demoRunsKept = 2;
// Room for `_<yyyymmddhhmmss>_<n>_shard_<k>` within PostgreSQL's 63 characters.
const prefixPattern = /^[a-z_][a-z0-9_]{0,29}$/;

const binTally = new URL("../../bin/tally", import.meta.url).pathname;
const plain = { head: [], border: [] }; // no colour codes: the summary often lands in a log file

// ---- the run

export async function demo(baseConfig: Config, options: DemoOptions): Promise<boolean> {
  const prefix = options.prefix ?? demoPrefixDefault;
  if (!prefixPattern.test(prefix))
    throw new ConfigError(
      `--prefix ${JSON.stringify(prefix)} must match ${prefixPattern} (a database name prefix)`,
    );
  const { kept } = await removeDemoRuns(baseConfig, prefix, demoRunsKept - 1);
  const identity = demoIdentity(baseConfig, prefix, demoRunId(Date.now(), kept));
  const config = configOf(baseConfig, identity);
  console.log(
    `demo: this run's identity: topic ${identity.topic}, group ${identity.group}, databases ` +
      `${[...identity.shards, identity.views].map(databaseNameOf).join(", ")}`,
  );

  await migrate(config);
  const topic = await topics(config);
  console.log(
    `demo: topic ${topic.topic} (${topic.partitions} partitions), ${config.TALLY_PG_SHARDS.length} shards, schema id ${topic.schemaId}`,
  );
  const tokens = defaultTokensFor(options.events);
  const load: LoadOptions = {
    events: options.events,
    tokens,
    wallets: defaultWalletsFor(tokens),
    duplicateRate: options.duplicateRate,
    doubleSpendRate: options.doubleSpendRate,
    seed: randomInt(0, 2 ** 32),
    nowMs: Date.now(),
  };
  const produced = await produceCommand(config, { ...load, progress: "auto" });
  console.log(
    `demo: produced ${produced.sent} events in ${(produced.elapsedMs / 1000).toFixed(1)} s (${Math.round(produced.eventsPerSecond)}/s), seed ${produced.seed}` +
      (produced.resent > 0 ? `, ${produced.resent} resent after failed sends` : ""),
  );

  const startedMs = performance.now();
  const env = identityEnv(identity);
  const appliers = Array.from({ length: options.appliers }, () => runApplierProcess(env));
  // The demo ends with its appliers: one that failed stops the others (no partner left waiting for
  // its partitions), and so does a failure of the demo itself.
  const stopAppliers = () => {
    for (const { child } of appliers)
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  let appliersDone = false;
  // Settled promptly either way, so a failed applier stops the projector's wait instead of crashing.
  const appliersFinished = Promise.allSettled(
    appliers.map(({ done }) =>
      done.catch((error: unknown) => {
        stopAppliers();
        throw error;
      }),
    ),
  ).finally(() => {
    appliersDone = true;
  });
  const progress = await showCatchUpProgress(config);
  let projectedMs = 0;
  let applierSummaries: ApplierJson[] = [];
  try {
    await runProjector(config, { untilCaughtUp: true, applierCaughtUp: () => appliersDone });
    projectedMs = performance.now() - startedMs;
    const settled = await appliersFinished;
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    applierSummaries = settled.map((s) => (s as PromiseFulfilledResult<ApplierJson>).value);
  } finally {
    stopAppliers();
    await progress.stop();
  }

  const actual = await outcomes(config);
  const expected = expectedOutcome(load, produced.expected);
  printSummary(expected, actual, applierSummaries, projectedMs);
  const differences = outcomeDifferences(expected, actual, produced.resent);
  const report = await verify(config);
  console.log(formatReport(report));
  // URL by URL: a masking that allows "," and "@" in a password would run across a joined list.
  const look = Object.entries(
    identityEnv({
      ...identity,
      shards: identity.shards.map(maskUrlPassword),
      views: maskUrlPassword(identity.views),
    }),
  )
    .map(([name, value]) => `${name}=${value}`)
    .join(" ");
  console.log(
    `demo: run ${identity.topic} stays until the ${ordinal(demoRunsKept)} demo run after it starts; look at it with\n` +
      `  ${look} bin/tally verify`,
  );
  if (differences.length === 0) {
    console.log(
      `demo: outcomes as the generator expected: applied ${actual.applied}, duplicates ${actual.duplicates}, ` +
        `rejected ${actual.rejected}, ${balanceCount(actual.balances)} wallet balances and ` +
        `${Object.keys(actual.supply).length} asset supplies exact`,
    );
  } else {
    console.log("demo: FAILED: this run's outcomes differ from what the generator expected:");
    for (const line of differences) console.log(`  ${line}`);
  }
  return report.ok && differences.length === 0;
}

const ordinal = (n: number) => (n === 1 ? "first" : n === 2 ? "second" : n === 3 ? "third" : `${n}th`);

function runApplierProcess(identity: Record<string, string>): {
  child: ChildProcess;
  done: Promise<ApplierJson>;
} {
  // Several appliers share this environment: a metrics port would be taken by the first.
  const child = spawn(binTally, ["apply", "--until-caught-up", "--json"], {
    env: { ...process.env, ...identity, TALLY_METRICS_PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const done = new Promise<ApplierJson>((resolve, reject) => {
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code !== 0) return reject(new Error(`an applier exited with ${signal ?? `code ${code}`}`));
      resolve(JSON.parse(stdout.trim().split("\n").at(-1)!) as ApplierJson);
    });
  });
  return { child, done };
}

/** What the load must produce: its counts, and the balances of the same load generated again. */
function expectedOutcome(options: LoadOptions, sent: LoadOutcome): DemoOutcome {
  const again = createLoad(options);
  for (const _ of again.events());
  const supply: Record<string, bigint> = {};
  for (const asset of new Set([...Object.keys(sent.mintedByAsset), ...Object.keys(sent.burnedByAsset)])) {
    const s = (sent.mintedByAsset[asset] ?? 0n) - (sent.burnedByAsset[asset] ?? 0n);
    if (s !== 0n) supply[asset] = s;
  }
  const rejectedByReason = Object.fromEntries(
    Object.entries(sent.rejected).map(([reason, n]) => [reason, BigInt(n)]),
  );
  return {
    applied: BigInt(sent.applied),
    duplicates: BigInt(sent.duplicates),
    rejected: Object.values(rejectedByReason).reduce((a, b) => a + b, 0n),
    rejectedByReason,
    balances: again.balances(),
    supply,
  };
}

/** What the run's shards and views hold: every record of them is this run's. */
async function outcomes(config: Config): Promise<DemoOutcome> {
  const totals: DemoOutcome = {
    applied: 0n,
    duplicates: 0n,
    rejected: 0n,
    rejectedByReason: {},
    balances: new Map(),
    supply: {},
  };
  for (const url of config.TALLY_PG_SHARDS) {
    const pool = createPool(config, url, "tally-demo", 1);
    try {
      const o = await outcomeTotals(pool, config.TALLY_GROUP, config.TALLY_TOPIC);
      totals.applied += o.applied;
      totals.duplicates += o.duplicates;
      totals.rejected += o.rejected;
      const reasons = await pool.query<{ reason: string; n: string }>(
        "SELECT reason, count(*)::text n FROM rejected_transfers WHERE topic = $1 GROUP BY reason",
        [config.TALLY_TOPIC],
      );
      for (const { reason, n } of reasons.rows)
        totals.rejectedByReason[reason] = (totals.rejectedByReason[reason] ?? 0n) + BigInt(n);
    } finally {
      await pool.end();
    }
  }
  const views = createPool(config, config.TALLY_PG_VIEWS, "tally-demo", 1);
  try {
    const balances = await views.query<{ wallet: string; asset: string; balance: string }>(
      "SELECT wallet, asset, balance::text FROM wallet_balances WHERE balance <> 0",
    );
    for (const { wallet, asset, balance } of balances.rows) {
      const perAsset = totals.balances.get(wallet) ?? new Map<string, bigint>();
      perAsset.set(asset, BigInt(balance));
      totals.balances.set(wallet, perAsset);
    }
    const supply = await views.query<{ asset: string; supply: string }>(
      "SELECT asset, supply::text FROM asset_supply WHERE supply <> 0",
    );
    for (const { asset, supply: s } of supply.rows) totals.supply[asset] = BigInt(s);
  } finally {
    await views.end();
  }
  return totals;
}

function printSummary(
  expected: DemoOutcome,
  actual: DemoOutcome,
  appliers: ApplierJson[],
  endToEndMs: number,
): void {
  const outcomesTable = new Table({
    head: ["outcome (this run)", "records", "expected by the generator"],
    style: plain,
  });
  outcomesTable.push(
    ["applied", String(actual.applied), String(expected.applied)],
    ["duplicates", String(actual.duplicates), String(expected.duplicates)],
    ["rejected", String(actual.rejected), String(expected.rejected)],
  );
  const reasons = new Set([
    ...Object.keys(actual.rejectedByReason),
    ...Object.keys(expected.rejectedByReason),
  ]);
  for (const reason of [...reasons].sort())
    outcomesTable.push([
      `  rejected: ${reason}`,
      String(actual.rejectedByReason[reason] ?? 0n),
      String(expected.rejectedByReason[reason] ?? 0n),
    ]);
  outcomesTable.push([
    "wallet balances (not zero)",
    String(balanceCount(actual.balances)),
    String(balanceCount(expected.balances)),
  ]);
  console.log(outcomesTable.toString());
  const records = appliers.reduce((sum, a) => sum + a.applied + a.duplicates + a.rejected, 0);
  const phaseTable = new Table({
    head: ["phase", "seconds (summed over appliers)", "events/s if alone"],
    style: plain,
  });
  for (const phase of ["decode", "validate", "write", "commit"]) {
    const ms = appliers.reduce((sum, a) => sum + (a.phaseMs[phase] ?? 0), 0);
    phaseTable.push([
      phase,
      (ms / 1000).toFixed(2),
      ms > 0 ? String(Math.round(records / (ms / 1000))) : "-",
    ]);
  }
  phaseTable.push([
    "end to end (apply + project)",
    (endToEndMs / 1000).toFixed(2),
    String(Math.round(records / (endToEndMs / 1000))),
  ]);
  console.log(phaseTable.toString());
}
