// Group-wide progress: the stored offsets of every partition (whoever applied them) against the
// topic's high watermarks. It is what the applier's --until-caught-up and lag metric, the
// projector's --until-caught-up, the demo and tally/testing read: here, below all of them.
import type { Admin } from "kafkajs";
import type { Config } from "../common/config.ts";
import { createKafka } from "../common/kafka.ts";
import { createPool, type Pool } from "../common/pg.ts";
import { nextOffsets } from "./applier-offsets.ts";

export type GroupProgress = {
  appliedOffsets: bigint;
  highWatermarks: bigint;
  lagRecords: bigint;
  /** per partition: high watermark minus the stored next offset (what the applier's lag gauge shows) */
  lagByPartition: Map<number, bigint>;
};

/** Group-wide: the stored offsets of every partition (all members) against the high watermarks. */
export async function groupProgress(config: Config, admin: Admin, pools: Pool[]): Promise<GroupProgress> {
  const offsets = await admin.fetchTopicOffsets(config.TALLY_TOPIC);
  const stored = new Map<number, bigint>();
  for (const pool of pools) {
    for (const [partition, next] of await nextOffsets(pool, config.TALLY_GROUP, config.TALLY_TOPIC))
      stored.set(partition, next);
  }
  const progress: GroupProgress = {
    appliedOffsets: 0n,
    highWatermarks: 0n,
    lagRecords: 0n,
    lagByPartition: new Map(),
  };
  for (const o of offsets) {
    const high = BigInt(o.high);
    const next = stored.get(o.partition) ?? BigInt(o.low);
    const lag = high > next ? high - next : 0n;
    progress.lagByPartition.set(o.partition, lag);
    progress.appliedOffsets += next;
    progress.highWatermarks += high;
    progress.lagRecords += lag;
  }
  return progress;
}

/** A standing probe, for processes that watch the applier from outside (projector, demo). */
export async function createProgressProbe(
  config: Config,
): Promise<{ read: () => Promise<GroupProgress>; close: () => Promise<void> }> {
  const admin = createKafka(config, "progress").admin();
  await admin.connect();
  const pools = config.TALLY_PG_SHARDS.map((url) => createPool(config, url, "tally-progress", 1));
  return {
    read: () => groupProgress(config, admin, pools),
    close: async () => {
      await admin.disconnect();
      await Promise.all(pools.map((p) => p.end()));
    },
  };
}
