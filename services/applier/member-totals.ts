// What a member has done, for `apply --json`, the logs and the metrics: one place that counts a chunk.
import type { Logger } from "../common/log.ts";
import type { ChunkResult } from "./apply-chunk.ts";
import { applierPhaseSeconds, chunkEvents, recordsTotal } from "./metrics.ts";

export type MemberTotals = {
  applied: number;
  duplicates: number;
  rejected: number;
  chunks: number;
  phaseMs: Record<string, number>;
};

export const emptyTotals = (): MemberTotals => ({
  applied: 0,
  duplicates: 0,
  rejected: 0,
  chunks: 0,
  phaseMs: { decode: 0, validate: 0, write: 0, commit: 0 },
});

export function countChunk(
  totals: MemberTotals,
  logger: Logger,
  partition: number,
  events: number,
  { plan, phaseMs }: ChunkResult,
): void {
  totals.applied += plan.ledger.length;
  totals.duplicates += plan.duplicates;
  totals.rejected += plan.rejections.length;
  totals.chunks++;
  for (const [phase, ms] of Object.entries(phaseMs)) {
    totals.phaseMs[phase] = (totals.phaseMs[phase] ?? 0) + ms;
    applierPhaseSeconds.observe({ phase }, ms / 1000);
  }
  chunkEvents.observe(events);
  recordsTotal.inc({ outcome: "applied" }, plan.ledger.length);
  recordsTotal.inc({ outcome: "duplicate" }, plan.duplicates);
  for (const r of plan.rejections) recordsTotal.inc({ outcome: "rejected", reason: r.reason });
  const rounded = Object.fromEntries(
    Object.entries(phaseMs).map(([k, v]) => [`${k}_ms`, Math.round(v * 10) / 10]),
  );
  logger.info(
    {
      partition,
      events,
      applied: plan.ledger.length,
      duplicates: plan.duplicates,
      rejected: plan.rejections.length,
      next_offset: String(plan.nextOffset),
      ...rounded,
    },
    // The text predates the name "chunk"; docs/operations.md, the benchmark and tests read it.
    "batch committed",
  );
}
