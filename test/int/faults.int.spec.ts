// Crashes, rebalances and outages mid-stream end in exactly the state the generator predicts.

import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { createPool } from "../../services/common/pg.ts";
import { sleep } from "../../services/common/retry.ts";
import { rebuildViews, runProjector } from "../../services/projector/index.ts";
import {
  expectExactState,
  finishPipeline,
  produceLoad,
  startApplier,
  waitForApplied,
} from "../support/pipeline.ts";
import { dropTestStack, repoRoot, stackCtl, type TestStack, testStack } from "../support/stack.ts";

const eventsPerTest = 40_000;
// Small transactions make many commits, so that kills and rebalances land mid-stream.
const smallBatches = { TALLY_BATCH_EVENTS_MAX: "500" };
let stack: TestStack | null = null;
afterEach(async () => {
  if (stack) await dropTestStack(stack);
  stack = null;
});

describe("faults mid-stream", () => {
  it("given an applier killed with SIGKILL three times, when restarted, then the state is exact", async () => {
    stack = testStack("kill", smallBatches);
    const load = await produceLoad(stack, eventsPerTest, 11);
    for (let kill = 1; kill <= 3; kill++) {
      const applier = startApplier(stack);
      await waitForApplied(stack, BigInt((kill * eventsPerTest) / 5));
      applier.child.kill("SIGKILL");
      expect(await applier.exited).toBe(-1);
    }
    await finishPipeline(stack);
    await expectExactState(stack, load);
  });

  it("given two then three appliers with members joining and leaving, then nothing is lost or doubled", async () => {
    stack = testStack("rebal", { ...smallBatches, TALLY_PARTITIONS: "6" });
    const load = await produceLoad(stack, eventsPerTest, 12);
    const first = startApplier(stack);
    const second = startApplier(stack);
    await waitForApplied(stack, BigInt(eventsPerTest / 5));
    const third = startApplier(stack); // a third member: rebalance
    await waitForApplied(stack, BigInt(eventsPerTest / 2));
    first.child.kill("SIGTERM"); // a member leaves cleanly: rebalance
    expect(await first.exited).toBe(0);
    await waitForApplied(stack, BigInt((eventsPerTest * 7) / 10));
    second.child.kill("SIGKILL"); // a member vanishes: its partitions move after the session timeout
    await finishPipeline(stack);
    third.child.kill("SIGTERM");
    expect(await third.exited).toBe(0);
    await expectExactState(stack, load);
  });

  it("given the registry stopped, when the applier starts, then it waits without rejecting and catches up after", async () => {
    stack = testStack("reg");
    const load = await produceLoad(stack, eventsPerTest / 4, 13);
    await stackCtl("stop", "registry");
    try {
      const applier = startApplier(stack, ["--until-caught-up"]);
      await sleep(5_000);
      expect(applier.child.exitCode).toBeNull(); // still retrying, not failed, not done
    } finally {
      await stackCtl("start", "registry");
    }
    await finishPipeline(stack);
    await expectExactState(stack, load);
  });

  it("given the database restarted mid-stream, then the applier retries and the state is exact", async () => {
    stack = testStack("pgr", smallBatches);
    const load = await produceLoad(stack, eventsPerTest, 14);
    const applier = startApplier(stack, ["--until-caught-up"]);
    await waitForApplied(stack, BigInt(eventsPerTest / 4));
    await stackCtl("restart", "postgres");
    expect(await applier.exited).toBe(0);
    await finishPipeline(stack);
    await expectExactState(stack, load);
  });

  it("given the projector killed with SIGKILL mid-run, when restarted, then its views equal --rebuild's and the generator's", async () => {
    stack = testStack("proj", { TALLY_PROJECT_DELTAS_MAX: "100" }); // many small rounds to land in
    const load = await produceLoad(stack, eventsPerTest / 2, 15);
    const applier = startApplier(stack, ["--until-caught-up"]);
    expect(await applier.exited).toBe(0);
    const projector = spawn(`${repoRoot}bin/tally`, ["project"], {
      env: { PATH: process.env.PATH, ...stack.env },
      stdio: "ignore",
    });
    const views = createPool(stack.config, stack.config.TALLY_PG_VIEWS, "test", 1);
    const snapshot = async () =>
      (await views.query("SELECT wallet, asset, balance::text FROM wallet_balances ORDER BY wallet, asset"))
        .rows;
    for (
      let rows = 0;
      rows === 0;
      rows = (await views.query("SELECT count(*)::int n FROM wallet_balances")).rows[0].n
    )
      await sleep(50);
    projector.kill("SIGKILL");
    await sleep(200); // let the killed process's connections go
    const partial = await snapshot();
    await runProjector(stack.config, { untilCaughtUp: true });
    const incremental = await snapshot();
    expect(partial).not.toEqual(incremental); // the kill did land mid-run
    await rebuildViews(stack.config);
    expect(await snapshot()).toEqual(incremental);
    await views.end();
    await expectExactState(stack, load);
  });
});
