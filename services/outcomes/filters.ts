// The filters of `tally rejections` and `tally reprocess`, parsed from the command line and turned
// into a parameterised WHERE clause (values only ever travel as parameters). Pure.
import type { RejectionReason } from "./reasons.ts";

export type RejectionFilter = {
  topic: string;
  /** null: every reason */
  reasons: readonly RejectionReason[] | null;
  /** rejected at or after */
  since: Date | null;
  /** the token's rejections, including undecoded ones whose key is the token id */
  tokenId: string | null;
};

const unitsMs: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30m", "12h", "7d" (before `nowMs`), or an ISO 8601 instant; throws RangeError on anything else. */
export function parseSince(text: string, nowMs: number): Date {
  const relative = /^(\d{1,9})([smhd])$/.exec(text.trim());
  if (relative) return new Date(nowMs - Number(relative[1]) * unitsMs[relative[2]!]!);
  // An instant needs a date and, with a time, a zone: a bare local time would depend on the machine.
  const iso = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$/;
  const parsed = iso.test(text.trim()) ? new Date(text.trim()) : new Date(Number.NaN);
  if (Number.isNaN(parsed.getTime()))
    throw new RangeError(
      `--since ${JSON.stringify(text)}: an ISO 8601 instant (2026-11-30T08:00:00Z) or 30m, 12h, 7d`,
    );
  return parsed;
}

/**
 * The WHERE conditions of `filter` over rejected_transfers; its values are appended to `params`
 * and named by position, so the text holds no value.
 */
export function filterConditions(filter: RejectionFilter, params: unknown[]): string[] {
  const next = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  const conditions = [`topic = ${next(filter.topic)}`];
  if (filter.reasons !== null) conditions.push(`reason = ANY(${next(filter.reasons)}::text[])`);
  if (filter.since !== null) conditions.push(`rejected_at >= ${next(filter.since)}::timestamptz`);
  if (filter.tokenId !== null) {
    // A record that did not decode has no token_id; its key is the token id (the producer's rule).
    const token = next(filter.tokenId);
    conditions.push(`(token_id = ${token} OR (token_id IS NULL AND raw_key = convert_to(${token}, 'UTF8')))`);
  }
  return conditions;
}
