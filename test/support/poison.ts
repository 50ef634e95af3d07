// What the poison-record integration tests (test/int/poison-*.int.spec.ts) share: a fresh topic and
// shards per case, processes ended after each, and the rejections, ledger and token state they read.
import { expect } from "vitest";
import type { TransferEvent } from "../../services/common/event.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import { endedAfterEach, offsetsRows, shardRows } from "./applier-process.ts";
import { expectExactCounts, storedPartitions } from "./offsets.ts";
import type { TallyProcess } from "./process.ts";
import { type TestStack, tally, testStack } from "./stack.ts";
import { waitUntil } from "./wait.ts";

export const dayMs = 86_400_000;

/**
 * Registers (in the calling spec file) the end of each case: its processes killed, its stack dropped.
 * Returns freshStack, a fresh topic and shards for one case, and track, for a process to be ended.
 */
export function poisonCases() {
  const { track, use } = endedAfterEach();

  /** A fresh topic and shards for one case. */
  async function freshStack(label: string, overrides: Record<string, string> = {}): Promise<TestStack> {
    const stack = use(testStack(label, overrides));
    await migrate(stack.config);
    await ensureTopic(stack.config);
    return stack;
  }

  return { track, freshStack };
}

/** Waits until the stored offsets add up to `target` records; fails at once if the applier exits first. */
export async function appliedOrExited(s: TestStack, applier: TallyProcess, target: bigint): Promise<void> {
  await waitUntil(`${target} records applied`, async () => {
    if (applier.child.exitCode !== null || applier.child.signalCode !== null)
      throw new Error(
        `the applier exited ${applier.child.exitCode} before ${target} records:\n${applier.stderrTail()}`,
      );
    const rows = await offsetsRows(s);
    return rows.reduce((sum, r) => sum + BigInt(r.next_offset), 0n) >= target;
  });
}

export async function applyUntilCaughtUp(s: TestStack, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const run = await tally(["apply", "--until-caught-up"], { ...s.env, ...env });
  expect(run.code, run.stderr).toBe(0);
}

export type RejectedRow = {
  kafka_partition: number;
  kafka_offset: string;
  reason: string;
  detail: string;
  transfer_id: string | null;
  token_id: string | null;
  raw_key: Buffer | null;
  raw_value: Buffer | null;
};

export async function rejectedRows(s: TestStack): Promise<RejectedRow[]> {
  return shardRows<RejectedRow>(
    s,
    `SELECT kafka_partition, kafka_offset::text, reason, detail, transfer_id, token_id, raw_key, raw_value
       FROM rejected_transfers WHERE topic = $1 ORDER BY kafka_partition, kafka_offset`,
    [s.config.TALLY_TOPIC],
  );
}

export type LedgerRow = {
  transfer_id: string;
  token_id: string;
  prev_state: string | null;
  next_state: string;
  kafka_partition: number;
  kafka_offset: string;
};

export async function ledgerRows(s: TestStack): Promise<LedgerRow[]> {
  return shardRows<LedgerRow>(
    s,
    `SELECT transfer_id::text, token_id, prev_state, next_state, kafka_partition, kafka_offset::text
       FROM transfers ORDER BY kafka_partition, kafka_offset`,
  );
}

export async function tokenState(s: TestStack, tokenId: string) {
  return shardRows<{ token_id: string; owner: string | null; state: string; kafka_partition: number }>(
    s,
    "SELECT token_id, owner, state, kafka_partition FROM token_state WHERE token_id = $1",
    [tokenId],
  );
}

/** The row of `event` as the ledger holds it, placed at (partition, offset). */
export const ledgerRowOf = (event: TransferEvent, partition: number, offset: bigint): LedgerRow => ({
  transfer_id: event.transfer_id,
  token_id: event.token_id,
  prev_state: event.prev_state,
  next_state: event.next_state,
  kafka_partition: partition,
  kafka_offset: String(offset),
});

/** applied + duplicates + rejected = consumed on every partition, each count backed by its rows. */
export async function expectExact(s: TestStack): Promise<void> {
  expectExactCounts(await storedPartitions(s));
}
