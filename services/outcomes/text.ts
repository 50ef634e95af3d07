// The lines the outcome commands print for people (scripts take --json). Pure.

import { whyNotByDefault } from "./reasons.ts";
import type { RejectedRecord } from "./records.ts";
import type { ReasonCount, RejectionPage } from "./rejections.ts";
import type { ReprocessReport } from "./reprocess.ts";
import type { AppliedRecord, FoundRejection, RedriveFate, TransferOutcome } from "./transfer.ts";

const where = (r: { shard: number; coordinates: { partition: number; offset: bigint } }) =>
  `shard ${r.shard}, partition ${r.coordinates.partition}, offset ${r.coordinates.offset}`;

function appliedLines(a: AppliedRecord): string[] {
  const move = `${a.fromWallet ?? "(mint)"} → ${a.toWallet ?? "(burn)"}, ${a.amount} ${a.asset}`;
  return [
    `  applied    ${where(a)}, day ${a.day}`,
    `             token ${a.tokenId}: ${a.prevState ?? "(none)"} → ${a.nextState} (${move})`,
    `             occurred ${a.occurredAt}; schema id ${a.schemaId}; the ledger keeps no time of application`,
  ];
}

function fateText(fate: RedriveFate): string {
  switch (fate.kind) {
    case "applied":
      return "applied (the row above)";
    case "rejected":
      return `rejected again: ${fate.reason}`;
    case "duplicate":
      return fate.certain
        ? "counted as a duplicate of the applied record"
        : "consumed with neither a ledger row nor a rejection: a duplicate, or passed over by tally offsets reset";
    case "not_consumed_yet":
      return "not consumed by the applier yet";
  }
}

function rejectionLines(r: FoundRejection): string[] {
  const lines = [
    `  rejected   ${where(r)}: ${r.reason}`,
    `             ${r.detail}`,
    `             rejected ${r.rejectedAt}${r.foundBy === "raw_bytes" ? "; found by the id's bytes in its raw value (the record did not decode)" : ""}`,
  ];
  if (r.redriven !== null) {
    const to = `partition ${r.redriven.to.partition}, offset ${r.redriven.to.offset}`;
    lines.push(
      `             re-driven ${r.redriven.at} to ${to}: ${r.redriveFate ? fateText(r.redriveFate) : "?"}`,
    );
  }
  return lines;
}

export function transferLines(o: TransferOutcome): string[] {
  const lines = [`transfer ${o.transferId}: ${o.status}`];
  if (o.status === "unknown") {
    lines.push(
      "  no ledger row and no rejection holds this id on any shard: not produced, not consumed yet, or a copy counted as a duplicate of nothing here",
    );
    return lines;
  }
  for (const a of o.applied) lines.push(...appliedLines(a));
  if (o.applied.length > 1)
    lines.push(`  BREACH: applied ${o.applied.length} times (tally verify reports it)`);
  for (const shard of o.appliedWithoutRow)
    lines.push(
      `  applied    shard ${shard}: its id is in transfer_ids, its row in no attached day (an archived day)`,
    );
  for (const r of o.rejections) lines.push(...rejectionLines(r));
  for (const d of o.duplicateCounts) {
    lines.push(
      `  duplicates copies that arrive after a transfer is applied are counted per partition, not stored per record: partition ${d.partition} has counted ${d.counted} in all; whether any was a copy of this transfer is not recorded`,
    );
  }
  return lines;
}

function rejectionRowLine(r: RejectedRecord): string {
  const id = r.transferId ?? "(not decoded)";
  const token = r.tokenId ?? "-";
  const redriven = r.redriven ? `  re-driven → ${r.redriven.to.partition}/${r.redriven.to.offset}` : "";
  return `  ${r.rejectedAt}  p${r.coordinates.partition}/${r.coordinates.offset}  ${r.reason}  transfer ${id}  token ${token}${redriven}\n      ${r.detail}`;
}

function countLine(c: ReasonCount): string {
  return `  ${c.reason.padEnd(20)} ${c.rejected.toString().padStart(8)}${c.redriven > 0n ? `  (${c.redriven} re-driven)` : ""}`;
}

export function rejectionPageLines(page: RejectionPage): string[] {
  const lines = [`rejections: ${page.total} in all under these filters`, ...page.counts.map(countLine)];
  lines.push(
    page.rows.length === 0 ? "no rejections on this page" : `newest first (${page.rows.length} shown):`,
  );
  lines.push(...page.rows.map(rejectionRowLine));
  if (page.next !== null) lines.push(`next page: --before ${page.next}`);
  return lines;
}

export function reprocessLines(report: ReprocessReport): string[] {
  const verb = report.dryRun ? "would re-drive" : "re-driven";
  const lines = [
    `reprocess${report.dryRun ? " (dry run)" : ""}: ${report.redriven} ${verb}, ${report.held} held back; reasons ${report.reasons.join(", ")}`,
  ];
  for (const e of report.redrivenList) {
    const to = e.to ? ` → partition ${e.to.partition}, offset ${e.to.offset}` : "";
    lines.push(
      `  ${verb} shard ${e.shard}, partition ${e.from.partition}, offset ${e.from.offset} (${e.reason})${to}`,
    );
  }
  for (const h of report.heldList)
    lines.push(
      `  held back shard ${h.shard}, partition ${h.from.partition}, offset ${h.from.offset} (${h.reason}): ${h.why}`,
    );
  if (report.redriven > report.redrivenList.length || report.held > report.heldList.length)
    lines.push(`  (lists cut at ${report.redrivenList.length} and ${report.heldList.length} entries)`);
  if (report.limitReached) lines.push("  limit reached: more may remain; run again to go on");
  return lines;
}

/** The reasons table of `tally reprocess --help`. */
export function reasonsHelp(): string {
  return Object.entries(whyNotByDefault)
    .map(([reason, why]) => `  ${reason}: ${why}`)
    .join("\n");
}
