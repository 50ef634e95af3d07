// Which rejections of one page a re-drive sends and which it holds back. Pure. A key (the token's)
// whose earlier rejection is held back holds back its later ones too, in this run and page after
// page: a move re-driven before its mint would only be rejected again (unknown_token).
import type { RejectionReason } from "./reasons.ts";

export type Candidate = {
  partition: number;
  offset: bigint;
  reason: RejectionReason;
  key: Buffer | null;
  value: Buffer | null;
};

/** What decoding the bytes now says, for the reasons a decode decides; null: not asked (the rules decide). */
export type Precheck = { decodes: true } | { decodes: false; reason: string; detail: string } | null;

export type Planned =
  | { candidate: Candidate; action: "redrive" }
  | { candidate: Candidate; action: "hold"; why: string };

/** One token's records, on the partition they were rejected on; a record without a key is a group of its own. */
export function keyGroupOf(candidate: Candidate): string | null {
  return candidate.key === null ? null : `${candidate.partition}:${candidate.key.toString("hex")}`;
}

/**
 * `candidates` in (partition, offset) order; `heldKeys` carries the held groups from page to page
 * (updated here). At most `budget` records are planned for a re-drive; the rest of the page is left.
 */
export function planRedrive(
  candidates: readonly Candidate[],
  precheckOf: (candidate: Candidate) => Precheck,
  heldKeys: Set<string>,
  budget: number,
): { planned: Planned[]; budgetLeft: number } {
  const planned: Planned[] = [];
  let left = budget;
  for (const candidate of candidates) {
    if (left <= 0) break;
    const group = keyGroupOf(candidate);
    if (group !== null && heldKeys.has(group)) {
      planned.push({ candidate, action: "hold", why: "an earlier rejection of its key is held back" });
      continue;
    }
    const check = precheckOf(candidate);
    if (check !== null && !check.decodes) {
      if (group !== null) heldKeys.add(group);
      planned.push({
        candidate,
        action: "hold",
        why: `cause not fixed: would be ${check.reason} again (${check.detail})`,
      });
      continue;
    }
    planned.push({ candidate, action: "redrive" });
    left--;
  }
  return { planned, budgetLeft: left };
}
