import { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../services/common/log.ts";
import { runProjector } from "../../services/projector/projector.ts";
import { registerVerifyCommand } from "../../services/verify/command.ts";
import { type CheckKey, formatReport, type VerifyReport } from "../../services/verify/report.ts";
import { verify } from "../../services/verify/verify.ts";
import {
  createTestDatabases,
  dropTestDatabases,
  LedgerModel,
  type TestDatabases,
  testEnv,
  writeWorkload,
} from "../support/projector-fixture.ts";

const logger = createLogger("silent", "test");
const opened: TestDatabases[] = [];

/** Two shards, a projected workload: every invariant holds. */
async function consistentState(seed: number) {
  const dbs = await createTestDatabases(testEnv("v", 2));
  opened.push(dbs);
  const model = new LedgerModel(dbs);
  await writeWorkload(model, 4, 40, seed);
  await runProjector(dbs.config, { untilCaughtUp: true, logger });
  return { dbs, model };
}

afterEach(async () => {
  for (const dbs of opened.splice(0)) await dropTestDatabases(dbs);
});

const breached = (report: VerifyReport) => report.checks.filter((c) => !c.ok).map((c) => c.key);
const checkOf = (report: VerifyReport, key: CheckKey) => report.checks.find((c) => c.key === key)!;

/** A transfer id of a move (a row with a ledger row before and, maybe, after it). */
async function aMove(dbs: TestDatabases, shard = 0): Promise<string> {
  const result = await dbs.shardPools[shard]!.query<{ id: string }>(
    `SELECT transfer_id::text AS id FROM transfers
      WHERE from_wallet IS NOT NULL AND to_wallet IS NOT NULL ORDER BY kafka_offset LIMIT 1`,
  );
  return result.rows[0]!.id;
}

describe("verify", () => {
  it("given a consistent ledger and caught-up views, when verified, then every check holds", async () => {
    const { dbs } = await consistentState(11);

    const report = await verify(dbs.config, { logger });

    expect(breached(report)).toEqual([]);
    expect(formatReport(report)).toMatch(/all 11 checks hold/);
  });

  it("given a missing ledger row, when verified, then the offset counters and the chain disagree with the ledger", async () => {
    const { dbs } = await consistentState(12);
    await dbs.shardPools[0]!.query("DELETE FROM transfers WHERE transfer_id = $1", [await aMove(dbs)]);

    const report = await verify(dbs.config, { logger });

    expect(breached(report)).toContain("counts");
    expect(checkOf(report, "counts").examples[0]).toMatch(/applied_count \d+, \d+ ledger rows/);
    expect(breached(report)).toContain("chains");
  });

  it("given a transfer id applied twice, across shards and within one, when verified, then both are reported", async () => {
    const { dbs } = await consistentState(13);
    const id = await aMove(dbs, 0);
    await dbs.shardPools[1]!.query("UPDATE transfers SET transfer_id = $1 WHERE transfer_id = $2", [
      id,
      await aMove(dbs, 1),
    ]);
    const other = await dbs.shardPools[0]!.query<{ id: string }>(
      "SELECT transfer_id::text AS id FROM transfers WHERE transfer_id <> $1 LIMIT 1",
      [id],
    );
    await dbs.shardPools[0]!.query("UPDATE transfers SET transfer_id = $1 WHERE transfer_id = $2", [
      other.rows[0]!.id,
      (
        await dbs.shardPools[0]!.query<{ id: string }>(
          "SELECT transfer_id::text AS id FROM transfers WHERE transfer_id NOT IN ($1, $2) LIMIT 1",
          [id, other.rows[0]!.id],
        )
      ).rows[0]!.id,
    ]);

    const report = await verify(dbs.config, { logger });

    expect(breached(report)).toEqual(["transferIds"]);
    expect(checkOf(report, "transferIds").examples.sort()).toEqual(
      [`${id} ×2 on shards 0, 1`, `${other.rows[0]!.id} ×2 on shards 0, 0`].sort(),
    );
  });

  it("given a broken chain, when verified, then the token's link is named", async () => {
    const { dbs } = await consistentState(14);
    await dbs.shardPools[0]!.query("UPDATE transfers SET prev_state = 'forged' WHERE transfer_id = $1", [
      await aMove(dbs),
    ]);

    const report = await verify(dbs.config, { logger });

    expect(breached(report)).toEqual(["chains"]);
    expect(checkOf(report, "chains").examples[0]).toMatch(/prev_state 'forged', previous next_state/);
  });

  it("given a token state that is not its chain's end, when verified, then token state is breached", async () => {
    const { dbs } = await consistentState(15);
    await dbs.shardPools[1]!.query(
      "UPDATE token_state SET owner = 'mallory' WHERE token_id = (SELECT min(token_id) FROM token_state WHERE NOT retired)",
    );

    const report = await verify(dbs.config, { logger });

    expect(breached(report)).toEqual(["tokenState"]);
    expect(checkOf(report, "tokenState").examples[0]).toMatch(/owner 'mallory'/);
  });

  it("given a wrong balance in the views, when verified, then the wallet and both amounts are shown", async () => {
    const { dbs } = await consistentState(16);
    await dbs.viewsPool.query(
      "UPDATE wallet_balances SET balance = balance + 1 WHERE (wallet, asset) = (SELECT wallet, asset FROM wallet_balances ORDER BY 1, 2 LIMIT 1)",
    );

    const report = await verify(dbs.config, { logger });

    expect(breached(report)).toEqual(["balances", "supplySum"]);
    expect(checkOf(report, "balances").examples[0]).toMatch(/^wallet \S+ \S+: view \d+, ledger \d+$/);
  });

  it("given a negative balance, when verified, then it is reported as negative", async () => {
    const { dbs } = await consistentState(17);
    await dbs.viewsPool.query(
      "INSERT INTO wallet_balances (wallet, asset, balance) VALUES ('overdrawn', 'USD', -5)",
    );

    const report = await verify(dbs.config, { logger });

    expect(breached(report)).toContain("negative");
    expect(checkOf(report, "negative").examples).toEqual(["wallet overdrawn USD: -5 in the view"]);
  });

  it("given a batch the projector has not seen, when verified, then only the projector's lag is a breach", async () => {
    const { dbs, model } = await consistentState(18);
    await model.batch(3, [{ kind: "mint", token: "late", asset: "USD", amount: 5n, to: "w1" }], {
      rejected: 1,
    });

    const report = await verify(dbs.config, { logger });

    expect(breached(report)).toEqual(["projector"]);
    expect(checkOf(report, "projector").note).toBe("projector behind by 2 records");
  });

  it("given a breach, when `tally verify` runs, then it prints the report and sets exit code 1", async () => {
    const { dbs } = await consistentState(19);
    await dbs.viewsPool.query("DELETE FROM asset_supply WHERE asset = 'USD'");
    const saved = { ...process.env };
    const printed: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((line: string) => void printed.push(line));
    try {
      for (const name of Object.keys(process.env)) if (name.startsWith("TALLY_")) delete process.env[name];
      Object.assign(process.env, dbs.env);
      const program = registerVerifyCommand(new Command("tally").exitOverride()).parent!;
      await program.parseAsync(["node", "tally", "verify"]);
      expect(process.exitCode).toBe(1);
      expect(printed.join("\n")).toMatch(/BREACH supply: asset_supply = minted and burned/);
    } finally {
      log.mockRestore();
      process.env = saved;
      process.exitCode = 0;
    }
  });
});
