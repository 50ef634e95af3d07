// What a projector round tells Prometheus: its duration (phase "project"), the rows it moved, and
// the lag per partition it left behind. The same figures go to the "projector: round" log line.
import { phaseSeconds, projectorLag, projectorRoundsTotal, projectorRowsTotal } from "../common/metrics.ts";
import type { RoundProgress } from "./projector.ts";
import type { ShardRound } from "./round.ts";

export function observeRound(progress: RoundProgress, shards: readonly ShardRound[]): void {
  for (const shard of shards) {
    for (const [partition, lag] of shard.lagByPartition)
      projectorLag.set({ partition: String(partition) }, Number(lag));
  }
  const result = progress.rows > 0 ? "rows" : progress.conflicts > 0 ? "conflict" : "idle";
  projectorRoundsTotal.inc({ result });
  if (progress.rows === 0) return; // idle polls would drown the latency of real work
  projectorRowsTotal.inc(progress.rows);
  phaseSeconds.observe({ phase: "project" }, progress.projectMs / 1000);
}
