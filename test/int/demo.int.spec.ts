// `tally demo` twice in a row on a reduced load: each run on its own fresh identity (topic, group,
// databases), exit 0 with applied = expected, the printed `bin/tally verify` line works, and an
// older run of the same prefix is removed on a log line while the last two stay.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, loadConfig } from "../../services/common/config.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { ensureDatabase } from "../../services/common/pg.ts";
import { listDemoRuns, removeDemoRuns } from "../../tools/demo/demo.ts";
import { stackEnv, tally, tallyTools } from "../support/stack.ts";

const events = 2_000;
// Its own prefix: the test never touches the runs of `make demo` (prefix tally_demo).
const prefix = `tdemo_${randomBytes(3).toString("hex")}`;
const oldRun = "20000101000000";

type Run = {
  code: number;
  stdout: string;
  stderr: string;
  runId: string;
  outcome: Map<string, [string, string]>;
};

/** `tally demo` on the reduced load, with its run id and the outcome table (name → [records, expected]). */
async function demoRun(env: NodeJS.ProcessEnv): Promise<Run> {
  const result = await tallyTools(["demo", "--events", String(events), "--prefix", prefix], env);
  const runId = new RegExp(`identity: topic ${prefix}_(\\S+),`).exec(result.stdout)?.[1] ?? "";
  const outcome = new Map<string, [string, string]>();
  for (const match of result.stdout.matchAll(/^│ ([a-z_:() ]+?)\s*│ (\d+)\s*│ (\d+)\s*│$/gm))
    outcome.set(match[1]!.trim(), [match[2]!, match[3]!]);
  return { ...result, runId, outcome };
}

function expectExact(run: Run): void {
  expect(run.code, `${run.stdout}\n${run.stderr.slice(-3000)}`).toBe(0);
  const [applied, expectedApplied] = run.outcome.get("applied") ?? [];
  expect(Number(applied)).toBeGreaterThan(events * 0.9);
  expect(applied).toBe(expectedApplied);
  for (const name of ["duplicates", "rejected", "wallet balances (not zero)"]) {
    const [got, want] = run.outcome.get(name) ?? [];
    expect(got, name).toBe(want);
  }
  expect(run.stdout).toMatch(/^verify: all \d+ checks hold/m);
  expect(run.stdout).toMatch(
    new RegExp(`^demo: outcomes as the generator expected: applied ${applied},`, "m"),
  );
  expect(run.stdout).not.toMatch(/FAILED/);
}

describe("tally demo, twice in a row", () => {
  let env: NodeJS.ProcessEnv;
  let config: Config;
  const runs: Run[] = [];

  beforeAll(async () => {
    env = { ...stackEnv(), TALLY_LOG_LEVEL: "warn" };
    config = loadConfig(env);
    // A run of long ago, as a crashed or old demo leaves it: a topic and a views database.
    const admin = createKafka(config, "test-admin").admin();
    await admin.connect();
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic: `${prefix}_${oldRun}`, numPartitions: 1 }],
      });
    } finally {
      await admin.disconnect();
    }
    const views = new URL(config.TALLY_PG_VIEWS);
    views.pathname = `/${prefix}_${oldRun}_views`;
    await ensureDatabase(config, views.toString());
    expect((await listDemoRuns(config, prefix)).map((r) => r.runId)).toEqual([oldRun]);
  });

  afterAll(async () => {
    if (config) await removeDemoRuns(config, prefix, 0, (line) => console.error(line));
  });

  it("given an old run of the prefix, when the demo runs, then it exits 0 with every outcome as the generator expected", async () => {
    runs.push(await demoRun(env));
    expectExact(runs[0]!);
    // The last two runs stay: the old one and this one.
    expect(runs[0]!.stdout).not.toMatch(/removed earlier run/);
  }, 90_000);

  it("given the first run's databases and topic still there, when the demo runs again, then it runs on a new identity, exact, and removes the oldest run", async () => {
    runs.push(await demoRun(env));
    const [first, second] = runs as [Run, Run];
    expectExact(second);
    expect(second.runId).not.toBe(first.runId);
    expect(second.runId > first.runId).toBe(true);
    expect(second.stdout).toContain(
      `demo: removing 1 earlier demo run(s) of ${prefix}, keeping the newest 1`,
    );
    expect(second.stdout).toMatch(
      new RegExp(
        `^demo: removed earlier run ${prefix}_${oldRun}: database ${prefix}_${oldRun}_views, topic ${prefix}_${oldRun}$`,
        "m",
      ),
    );
    const left = await listDemoRuns(config, prefix);
    expect(left.map((r) => r.runId)).toEqual([second.runId, first.runId]);
    for (const run of left) {
      expect(run.topic).toBe(`${prefix}_${run.runId}`);
      expect([...run.databases.values()].flat().sort()).toEqual(
        [
          ...config.TALLY_PG_SHARDS.map((_, k) => `${prefix}_${run.runId}_shard_${k}`),
          `${prefix}_${run.runId}_views`,
        ].sort(),
      );
    }
  }, 90_000);

  it("given the first run kept, when its printed verify line is run, then verify holds on that run's own data", async () => {
    const first = runs[0]!;
    const line = new RegExp(`^ {2}(TALLY_TOPIC=${prefix}_${first.runId} .*) bin/tally verify$`, "m").exec(
      first.stdout,
    )?.[1];
    expect(line).toBeDefined();
    const printed = Object.fromEntries(
      line!.split(" ").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    const result = await tally(["verify"], { ...env, ...printed });
    expect(result.code, result.stdout).toBe(0);
    // The first run's ledger, not the second's: its applied count.
    const shard = new pg.Client({ connectionString: printed.TALLY_PG_SHARDS!.split(",")[0] });
    await shard.connect();
    try {
      const { rows } = await shard.query<{ topic: string }>("SELECT DISTINCT topic FROM applier_offsets");
      expect(rows).toEqual([{ topic: `${prefix}_${first.runId}` }]);
    } finally {
      await shard.end();
    }
  }, 60_000);
});
