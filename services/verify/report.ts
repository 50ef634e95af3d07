// The verify report: every invariant of docs/design.md as a named check, OK or BREACH, with a count
// and at most `examplesMax` examples. Pure: the checks feed findings in, the CLI prints the text.
import { assert } from "../common/assert.ts";

export const examplesMax = 10;

/** The checks, in the order the report lists them. */
export const checkNames = {
  consumed: "offsets: applied + duplicates + rejected = records consumed, per partition",
  counts: "offsets: applied_count = ledger rows, rejected_count = rejection rows",
  placement: "ledger: rows within their partition's consumed offsets, on their shard",
  transferIds: "transfer ids: none applied twice, within or across shards",
  chains: "token chains: unbroken from the mint to the last move",
  tokenState: "token state: equals the end of its chain; every token has its ledger",
  balances: "balances: view = Σ credits − Σ debits over the ledger, per (wallet, asset)",
  negative: "balances: none negative",
  supplySum: "supply: Σ balances per asset = minted − burned",
  supplyView: "supply: asset_supply = minted and burned over the ledger",
  projector: "projector: checkpoints equal the applier offsets",
} as const;

export type CheckKey = keyof typeof checkNames;

export type CheckResult = {
  key: CheckKey;
  name: string;
  ok: boolean;
  breaches: number;
  examples: string[];
  /** a one-line summary, e.g. "behind by 12 records" */
  note?: string;
};

export type VerifyReport = { ok: boolean; checks: CheckResult[]; verifyMs: number };

/** Collects breaches per check, from any number of shards, keeping the first examples. */
export class Findings {
  private readonly results = new Map<CheckKey, CheckResult>();

  constructor() {
    for (const [key, name] of Object.entries(checkNames) as [CheckKey, string][]) {
      this.results.set(key, { key, name, ok: true, breaches: 0, examples: [] });
    }
  }

  /** `count` breaches of `key` (at least as many as `examples`), with some of them described. */
  add(key: CheckKey, count: number, examples: string[] = []): void {
    assert(Number.isInteger(count) && count >= 0, `breach count ${count} is a whole number`);
    assert(count >= examples.length, `${key}: ${examples.length} examples of ${count} breaches`);
    if (count === 0) return;
    const result = this.results.get(key)!;
    result.ok = false;
    result.breaches += count;
    for (const example of examples) if (result.examples.length < examplesMax) result.examples.push(example);
  }

  /** One breach with its example: the common case of checks evaluated row by row in TypeScript. */
  breach(key: CheckKey, example: string): void {
    this.add(key, 1, [example]);
  }

  note(key: CheckKey, note: string): void {
    this.results.get(key)!.note = note;
  }

  report(verifyMs: number): VerifyReport {
    const checks = [...this.results.values()];
    return { ok: checks.every((c) => c.ok), checks, verifyMs };
  }
}

/** The text `tally verify` prints. */
export function formatReport(report: VerifyReport): string {
  const lines: string[] = [];
  for (const check of report.checks) {
    const status = check.ok ? "OK    " : "BREACH";
    const count = check.ok ? "" : ` (${check.breaches})`;
    const note = check.note ? `: ${check.note}` : "";
    lines.push(`${status} ${check.name}${count}${note}`);
    for (const example of check.examples) lines.push(`         - ${example}`);
    const more = check.breaches - check.examples.length;
    if (more > 0) lines.push(`         … and ${more} more`);
  }
  const breached = report.checks.filter((c) => !c.ok).length;
  lines.push(
    breached === 0
      ? `verify: all ${report.checks.length} checks hold (${report.verifyMs} ms)`
      : `verify: ${breached} of ${report.checks.length} checks BREACHED (${report.verifyMs} ms)`,
  );
  return lines.join("\n");
}
