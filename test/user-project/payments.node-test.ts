// payments.node-test.ts: the same check with Node's own test runner (node --test payments.node-test.ts).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { type StartedTally, startTally, type TransferEvent } from "@tally/testing";

let tally: StartedTally;
before(async () => {
  tally = await startTally({ shards: 2, partitions: 6, appliers: 2 });
});
after(() => tally?.stop());

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

test("credits bob, debits alice, and refuses to spend the same token twice", async () => {
  const sent = await tally.producer.send([
    move("coin-1", null, "alice", null, "s1"), // mint to alice
    move("coin-2", null, "alice", null, "s1"), // mint to alice
    move("coin-1", "alice", "bob", "s1", "s2"), // alice pays bob
    move("coin-1", "alice", "carol", "s1", "s3"), // the same coin again: a double spend
  ]);
  assert.ok(sent.every((result) => result.ok));

  await tally.waitUntilCaughtUp();

  assert.deepEqual(await tally.balance("alice"), { USD: 2_500n });
  assert.deepEqual(await tally.balance("bob"), { USD: 2_500n });
  assert.deepEqual(await tally.balance("carol"), {});
  assert.ok((await tally.verify()).ok);
});
