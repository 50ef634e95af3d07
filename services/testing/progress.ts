// How far Tally is behind what was produced: the applier's stored offsets against the topic's
// high watermarks, and the projector's checkpoints against the applier's offsets.
import type { Config } from "../common/config.ts";
import { createPool } from "../common/pg.ts";
import { nextOffsets as appliedOffsets } from "../storage/applier-offsets.ts";
import { createProgressProbe } from "../storage/progress.ts";
import { loadCheckpoints } from "../storage/projector-checkpoints.ts";

export type CatchUp = { applierLag: bigint; projectorLag: bigint };

export async function readCatchUp(config: Config): Promise<CatchUp> {
  const probe = await createProgressProbe(config);
  const views = createPool(config, config.TALLY_PG_VIEWS, "tally-testing", 1);
  try {
    const applierLag = (await probe.read()).lagRecords;
    let projectorLag = 0n;
    for (const url of config.TALLY_PG_SHARDS) {
      const shard = createPool(config, url, "tally-testing", 1);
      try {
        const applied = await appliedOffsets(shard, config.TALLY_GROUP, config.TALLY_TOPIC);
        const checkpoints = await loadCheckpoints(views, config.TALLY_TOPIC, [...applied.keys()]);
        for (const [partition, next] of applied) {
          const projected = checkpoints.get(partition) ?? -1n;
          if (next > 0n && projected < next) projectorLag += next - (projected < 0n ? 0n : projected);
        }
      } finally {
        await shard.end();
      }
    }
    return { applierLag, projectorLag };
  } finally {
    await probe.close();
    await views.end();
  }
}
