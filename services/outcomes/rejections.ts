// `tally rejections` as a library call: the rejections of every shard, newest first, a page at a
// time, and how many there are per reason under the same filters.
import type { Config } from "../common/config.ts";
import { type Cursor, encodeCursor, newestFirst } from "./cursor.ts";
import { filterConditions, type RejectionFilter } from "./filters.ts";
import { type RejectedRecord, type RejectedRow, rejectedColumns, rejectedRecordOf } from "./records.ts";
import { type OutcomeSource, withSource } from "./sources.ts";

export type ReasonCount = { reason: string; rejected: bigint; redriven: bigint };

export type RejectionPage = {
  rows: RejectedRecord[];
  /** every rejection under the filters (not only this page), per reason, most first */
  counts: ReasonCount[];
  total: bigint;
  /** pass as `before` for the next page; null on the last */
  next: string | null;
};

export const pageLimitMax = 10_000;

export async function listRejections(
  from: Config | OutcomeSource,
  filter: RejectionFilter,
  page: { limit: number; before: Cursor | null },
): Promise<RejectionPage> {
  if (!(Number.isSafeInteger(page.limit) && page.limit >= 1 && page.limit <= pageLimitMax))
    throw new RangeError(`limit must be a whole number from 1 to ${pageLimitMax}`);
  return withSource(from, async (source) => {
    const merged: { row: RejectedRecord; cursor: Cursor }[] = [];
    const perReason = new Map<string, { rejected: bigint; redriven: bigint }>();
    for (const [shard, pool] of source.shards.entries()) {
      const params: unknown[] = [];
      const conditions = filterConditions(filter, params);
      const counted = await pool.query<{ reason: string; rejected: string; redriven: string }>(
        `SELECT reason, count(*)::text AS rejected, count(redriven_at)::text AS redriven
           FROM rejected_transfers WHERE ${conditions.join(" AND ")} GROUP BY reason`,
        params,
      );
      for (const c of counted.rows) {
        const sum = perReason.get(c.reason) ?? { rejected: 0n, redriven: 0n };
        perReason.set(c.reason, {
          rejected: sum.rejected + BigInt(c.rejected),
          redriven: sum.redriven + BigInt(c.redriven),
        });
      }
      if (page.before !== null) {
        const micros = params.push(page.before.rejectedAtMicros.toString());
        const partition = params.push(page.before.partition);
        const offset = params.push(page.before.offset.toString());
        conditions.push(
          `(rejected_at, kafka_partition, kafka_offset) < (timestamptz 'epoch' + $${micros}::bigint * interval '1 microsecond', $${partition}::int, $${offset}::bigint)`,
        );
      }
      // One more than a page from each shard: more than `limit` in all means a next page exists.
      params.push(page.limit + 1);
      const result = await pool.query<RejectedRow>(
        `SELECT ${rejectedColumns} FROM rejected_transfers WHERE ${conditions.join(" AND ")}
          ORDER BY rejected_at DESC, kafka_partition DESC, kafka_offset DESC LIMIT $${params.length}`,
        params,
      );
      for (const row of result.rows) {
        const record = rejectedRecordOf(row, shard);
        merged.push({
          row: record,
          cursor: {
            rejectedAtMicros: BigInt(row.rejected_at_micros),
            partition: record.coordinates.partition,
            offset: record.coordinates.offset,
          },
        });
      }
    }
    merged.sort((a, b) => newestFirst(a.cursor, b.cursor));
    const shown = merged.slice(0, page.limit);
    const last = shown[shown.length - 1];
    const counts = [...perReason]
      .map(([reason, c]) => ({ reason, ...c }))
      .sort((a, b) =>
        a.rejected === b.rejected ? a.reason.localeCompare(b.reason) : a.rejected > b.rejected ? -1 : 1,
      );
    return {
      rows: shown.map((m) => m.row),
      counts,
      total: counts.reduce((sum, c) => sum + c.rejected, 0n),
      next: merged.length > page.limit && last ? encodeCursor(last.cursor) : null,
    };
  });
}
