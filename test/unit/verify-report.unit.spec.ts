import { describe, expect, it } from "vitest";
import { judgeAsset } from "../../services/verify/balance-checks.ts";
import { compareCodePoints, findRepeats, type PageSource } from "../../services/verify/id-merge.ts";
import { checkNames, examplesMax, Findings, formatReport } from "../../services/verify/report.ts";
import { judgeTally, type PartitionTally } from "../../services/verify/shard-checks.ts";
import { judgeProjector } from "../../services/verify/verify.ts";

const pagesOf = (...pages: string[][]): PageSource => {
  const queue = [...pages];
  return async () => queue.shift() ?? [];
};
const checkOf = (findings: Findings, key: keyof typeof checkNames) =>
  findings.report(0).checks.find((c) => c.key === key)!;

describe("report", () => {
  it("given no findings, when formatted, then every check reads OK and the summary says all hold", () => {
    const text = formatReport(new Findings().report(12));
    expect(text.split("\n").filter((l) => l.startsWith("OK"))).toHaveLength(Object.keys(checkNames).length);
    expect(text).toMatch(/all 11 checks hold \(12 ms\)$/);
  });

  it("given many breaches of one check, when formatted, then it shows the count, ten examples and the rest", () => {
    const findings = new Findings();
    for (let i = 0; i < 14; i++) findings.breach("balances", `wallet w${i}`);
    findings.add("negative", 100, ["wallet x USD: -1 in the view"]);
    const report = findings.report(5);
    const text = formatReport(report);

    expect(report.ok).toBe(false);
    expect(text).toContain(`BREACH ${checkNames.balances} (14)`);
    expect(text.match(/- wallet w/g)).toHaveLength(examplesMax);
    expect(text).toContain("… and 4 more");
    expect(text).toContain("… and 99 more");
    expect(text).toMatch(/2 of 11 checks BREACHED/);
  });

  it("given a note, when formatted, then it follows the check's name", () => {
    const findings = new Findings();
    findings.breach("projector", "partition 1: checkpoint 3, applier at 9");
    findings.note("projector", "projector behind by 6 records");
    expect(formatReport(findings.report(0))).toContain(
      `${checkNames.projector} (1): projector behind by 6 records`,
    );
  });
});

describe("findRepeats", () => {
  it("given sorted ids over pages of several shards, when merged, then repeats within and across shards are found", async () => {
    const shard0 = pagesOf(["a", "b"], ["b", "d"]);
    const shard1 = pagesOf(["c"], ["d", "e"]);
    const repeats = await findRepeats([shard0, shard1]);
    expect(repeats).toEqual({ count: 2, examples: ["b ×2 on shards 0, 0", "d ×2 on shards 0, 1"] });
  });

  it("given distinct ids, when merged, then nothing is reported", async () => {
    expect((await findRepeats([pagesOf(["a", "c"]), pagesOf(["b"]), pagesOf()])).count).toBe(0);
  });

  it("given a source out of order, when merged, then it fails rather than miss a repeat", async () => {
    await expect(findRepeats([pagesOf(["b", "a"])])).rejects.toThrow(/not sorted/);
  });

  it("given text beyond the basic plane, when compared, then the order is PostgreSQL's C collation", () => {
    expect(compareCodePoints("\u{1F600}", "\uFFFD")).toBeGreaterThan(0);
    expect(compareCodePoints("ab", "abc")).toBeLessThan(0);
  });
});

describe("judgeTally", () => {
  const scope = { shard: 1, shardCount: 2, partitionCount: 4, group: "g", topic: "t" };
  const tally = (overrides: Partial<PartitionTally> = {}): PartitionTally => ({
    partition: 1,
    offsets: { first: 0n, next: 10n, applied: 7n, duplicates: 1n, rejected: 2n, skipped: 0n },
    ledger: { rows: 7n, distinctOffsets: 7n, low: 0n, high: 9n },
    rejections: { rows: 2n, low: 3n, high: 5n },
    ...overrides,
  });

  it("given counters that add up, when judged, then no check is breached", () => {
    const findings = new Findings();
    judgeTally(tally(), scope, findings);
    expect(findings.report(0).ok).toBe(true);
  });

  it("given a ledger row missing, when judged, then applied_count differs from the ledger rows", () => {
    const findings = new Findings();
    judgeTally(tally({ ledger: { rows: 6n, distinctOffsets: 6n, low: 0n, high: 9n } }), scope, findings);
    expect(checkOf(findings, "counts").examples).toEqual(["partition 1: applied_count 7, 6 ledger rows"]);
  });

  it("given counters that do not add up to the offsets consumed, when judged, then the consumed check fails", () => {
    const findings = new Findings();
    judgeTally(
      tally({ offsets: { first: 0n, next: 11n, applied: 7n, duplicates: 1n, rejected: 2n, skipped: 0n } }),
      scope,
      findings,
    );
    expect(checkOf(findings, "consumed").ok).toBe(false);
  });

  it("given records an operator skipped, when judged, then they complete the consumed count", () => {
    const findings = new Findings();
    const offsets = { first: 0n, next: 13n, applied: 7n, duplicates: 1n, rejected: 2n, skipped: 3n };
    judgeTally(tally({ offsets }), scope, findings);
    expect(checkOf(findings, "consumed").ok).toBe(true);
    const without = new Findings();
    judgeTally(tally({ offsets: { ...offsets, skipped: 0n } }), scope, without);
    expect(checkOf(without, "consumed").examples[0]).toContain("≠ 13 consumed");
  });

  it("given rows of a partition on the wrong shard or past its offsets, when judged, then placement fails", () => {
    const findings = new Findings();
    judgeTally(
      tally({ partition: 2, ledger: { rows: 7n, distinctOffsets: 7n, low: 0n, high: 10n } }),
      scope,
      findings,
    );
    expect(checkOf(findings, "placement").breaches).toBe(2);
  });
});

describe("judgeProjector", () => {
  it("given checkpoints behind the applier, when judged, then it reports how many records behind", () => {
    const findings = new Findings();
    const applied = new Map([
      [0, { first: 0n, next: 10n }],
      [1, { first: 5n, next: 8n }],
      [2, { first: 0n, next: 0n }],
    ]);
    judgeProjector(
      new Map([
        [0, 4n],
        [1, -1n],
        [2, -1n],
        [3, -1n],
      ]),
      applied,
      findings,
    );
    const check = checkOf(findings, "projector");
    expect(check.breaches).toBe(2);
    expect(check.note).toBe("projector behind by 9 records");
  });

  it("given a checkpoint past the applier, when judged, then it is a breach too", () => {
    const findings = new Findings();
    judgeProjector(new Map([[0, 12n]]), new Map([[0, { first: 0n, next: 10n }]]), findings);
    expect(checkOf(findings, "projector").examples[0]).toMatch(/past the applier/);
  });
});

describe("judgeAsset", () => {
  const totals = { minted: 10n, burned: 3n, coveredMinted: 10n, coveredBurned: 3n };

  it("given matching supply, when judged, then it holds", () => {
    const findings = new Findings();
    judgeAsset({ asset: "USD", minted: "10", burned: "3", supply: "7" }, 7n, 7n, totals, findings);
    expect(findings.report(0).ok).toBe(true);
  });

  it("given a view balance off by one, when judged, then Σ balances ≠ supply is a breach", () => {
    const findings = new Findings();
    judgeAsset({ asset: "USD", minted: "10", burned: "3", supply: "7" }, 7n, 8n, totals, findings);
    expect(checkOf(findings, "supplySum").ok).toBe(false);
    expect(checkOf(findings, "supplyView").ok).toBe(true);
  });
});
