// Poison records of routing (wrong_partition): a mint on a partition other than its key's, and a token
// that already lives on another partition; each rejected with its bytes, the valid event behind it applied.
import { describe, expect, it } from "vitest";
import {
  encodeEvent,
  homePartitionOf,
  onShard,
  sendEvents,
  sendToPartition,
  shardOfPartition,
  tokensOn,
} from "../support/applier-process.ts";
import { mintOf } from "../support/events.ts";
import {
  applyUntilCaughtUp,
  expectExact,
  ledgerRowOf,
  ledgerRows,
  poisonCases,
  rejectedRows,
  tokenState,
} from "../support/poison.ts";

const { freshStack } = poisonCases();

describe("poison records become rejections and the partition moves on", () => {
  it("given a mint sent to a partition other than its key's, then it is rejected wrong_partition with its bytes and the valid event behind it applies", async () => {
    const s = await freshStack("pwrong");
    const poisonToken = "stray-token";
    const home = homePartitionOf(s, poisonToken);
    const partition = (home + 1) % s.config.TALLY_PARTITIONS;
    const poison = mintOf({ token_id: poisonToken, to_wallet: "mallory", occurred_at: Date.now() });
    const poisonBytes = await encodeEvent(s, poison);
    const poisonOffset = await sendToPartition(s, {
      partition,
      key: Buffer.from(poisonToken),
      value: poisonBytes,
    });
    const valid = mintOf({ token_id: tokensOn(s, partition, 1, "ok")[0]!, occurred_at: Date.now() });
    const [placed] = await sendEvents(s, [valid]);
    expect(placed).toEqual({ partition, offset: poisonOffset + 1n });

    await applyUntilCaughtUp(s);

    expect(await rejectedRows(s)).toEqual([
      {
        kafka_partition: partition,
        kafka_offset: String(poisonOffset),
        reason: "wrong_partition",
        detail: `key "${poisonToken}" belongs on partition ${home}, not ${partition}`,
        transfer_id: poison.transfer_id,
        token_id: poisonToken,
        raw_key: Buffer.from(poisonToken),
        raw_value: poisonBytes,
      },
    ]);
    expect(await ledgerRows(s)).toEqual([ledgerRowOf(valid, partition, placed!.offset)]);
    expect(await tokenState(s, poisonToken)).toEqual([]); // minted nowhere
    await expectExact(s);
  });

  it("given a token minted on another partition in the old days, when it is minted again on its own, then wrong_partition (no crash loop on token_state_pkey) and the valid event behind it applies", async () => {
    const s = await freshStack("pforeign");
    const token = "old-days-token";
    const home = homePartitionOf(s, token);
    // Another partition of the same shard: the old row shares the token_state table with `home`.
    const elsewhere = (home + 2) % s.config.TALLY_PARTITIONS;
    expect(shardOfPartition(s, elsewhere)).toBe(shardOfPartition(s, home));
    await onShard(s, shardOfPartition(s, home), (pool) =>
      pool.query(
        `INSERT INTO token_state (token_id, asset, amount, owner, state, retired, kafka_partition, last_offset)
         VALUES ($1, 'USD', 1000, 'old-owner', 'old-state', false, $2, 0)`,
        [token, elsewhere],
      ),
    );
    const poison = mintOf({ token_id: token, to_wallet: "newcomer", occurred_at: Date.now() });
    const valid = mintOf({ token_id: tokensOn(s, home, 1, "ok")[0]!, occurred_at: Date.now() });
    const [poisonAt, validAt] = await sendEvents(s, [poison, valid]);
    expect([poisonAt!.partition, validAt!.partition]).toEqual([home, home]);

    await applyUntilCaughtUp(s);

    expect(await rejectedRows(s)).toEqual([
      {
        kafka_partition: home,
        kafka_offset: String(poisonAt!.offset),
        reason: "wrong_partition",
        detail: `token "${token}" lives on partition ${elsewhere}`,
        transfer_id: poison.transfer_id,
        token_id: token,
        raw_key: Buffer.from(token),
        raw_value: await encodeEvent(s, poison),
      },
    ]);
    expect(await ledgerRows(s)).toEqual([ledgerRowOf(valid, home, validAt!.offset)]);
    // The old row is left as it was: one token, one partition's view.
    expect(await tokenState(s, token)).toEqual([
      { token_id: token, owner: "old-owner", state: "old-state", kafka_partition: elsewhere },
    ]);
    await expectExact(s);
  });
});
