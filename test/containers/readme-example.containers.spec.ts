// payments.int.spec.ts: our producer's events end up as the right balances.
import { randomUUID } from "node:crypto";
import { type StartedTally, startTally, type TransferEvent } from "@tally/testing";
import { afterAll, beforeAll, expect, it } from "vitest";

let tally: StartedTally;
beforeAll(async () => {
  tally = await startTally({ shards: 2, partitions: 6, appliers: 2 });
}, 300_000); // the start takes about a minute on 2 cores
afterAll(() => tally?.stop(), 120_000);

/** One move of a 25.00 USD token (amounts are minor units, as bigint). */
function move(
  token: string,
  from: string | null,
  to: string,
  prev: string | null,
  next: string,
): TransferEvent {
  return {
    transfer_id: randomUUID(),
    batch_id: null,
    token_id: token,
    asset: "USD",
    amount: 2_500n,
    from_wallet: from,
    to_wallet: to,
    prev_state: prev,
    next_state: next,
    occurred_at: Date.now(),
  };
}

it("credits bob, debits alice, and refuses to spend the same token twice", async () => {
  const sent = await tally.producer.send([
    move("coin-1", null, "alice", null, "s1"), // mint to alice
    move("coin-2", null, "alice", null, "s1"), // mint to alice
    move("coin-1", "alice", "bob", "s1", "s2"), // alice pays bob
    move("coin-1", "alice", "carol", "s1", "s3"), // the same coin again: a double spend
  ]);
  expect(sent.every((result) => result.ok)).toBe(true);

  await tally.waitUntilCaughtUp();

  expect(await tally.balance("alice")).toEqual({ USD: 2_500n });
  expect(await tally.balance("bob")).toEqual({ USD: 2_500n });
  expect(await tally.balance("carol")).toEqual({});
  expect((await tally.verify()).ok).toBe(true);
}, 120_000);
