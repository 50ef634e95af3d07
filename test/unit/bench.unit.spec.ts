import { describe, expect, it } from "vitest";
import { cpuSecondsOf } from "../../tools/bench/cpu.ts";
import { absorbLogLine, type ChildReport, emptyReport } from "../../tools/bench/processes.ts";
import {
  cpuRows,
  formatRatio,
  markdownTable,
  memoryFlatOf,
  ratioRows,
  runsNote,
  type ScalingPoint,
  type TallyCase,
} from "../../tools/bench/report.ts";
import {
  distributionOf,
  eventsPerSecondOf,
  isFlat,
  medianIndex,
  parseSizes,
  percentile,
  ratioOf,
} from "../../tools/bench/stats.ts";

describe("bench arithmetic", () => {
  it("given values, when percentiles are taken, then the nearest rank is returned", () => {
    const values = Array.from({ length: 100 }, (_, k) => 100 - k); // 1..100, unsorted
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile(values, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile(values, 101)).toThrow(RangeError);
  });

  it("given a few values, when p99 is taken, then it is the largest, not an interpolation", () => {
    expect(percentile([10, 20, 30], 99)).toBe(30);
    expect(distributionOf([10, 20, 30, 40.04])).toEqual({ count: 4, p50: 20, p99: 40, max: 40, mean: 25 });
    expect(distributionOf([])).toEqual({ count: 0, p50: 0, p99: 0, max: 0, mean: 0 });
  });

  it("given counts and times, when rates and ratios are computed, then they are rounded and missing sides give null", () => {
    expect(eventsPerSecondOf(200_000, 4_000)).toBe(50_000);
    expect(eventsPerSecondOf(10, 0)).toBe(0);
    expect(ratioOf(30_000, 90_000)).toBe(0.333);
    expect(ratioOf(1, 0)).toBeNull();
    expect(ratioOf(null, 5)).toBeNull();
  });

  it("given runs, when the median is picked, then it is the middle one (the lower of two) by value", () => {
    expect(medianIndex([30, 10, 20])).toBe(2);
    expect(medianIndex([40, 10])).toBe(1);
    expect(medianIndex([5])).toBe(0);
    expect(medianIndex([])).toBe(-1);
  });

  it("given size lists, when parsed, then exponent notation works and junk is refused", () => {
    expect(parseSizes("1e4,1e5, 1000000")).toEqual([10_000, 100_000, 1_000_000]);
    expect(() => parseSizes("1e4,abc")).toThrow(RangeError);
    expect(() => parseSizes("0")).toThrow(RangeError);
    expect(() => parseSizes("1.5")).toThrow(RangeError);
  });

  it("given peak RSS series, when judged, then growth beyond 1.5× the smallest size's is not flat", () => {
    expect(isFlat([100, 120, 140])).toBe(true);
    expect(isFlat([100, 200])).toBe(false);
    const point = (events: number, applier: number): ScalingPoint =>
      ({ events, peakRssBytes: { "applier-1": applier, projector: 100 } }) as unknown as ScalingPoint;
    expect(memoryFlatOf([point(1e4, 100), point(1e6, 140)])).toBe(true);
    expect(memoryFlatOf([point(1e4, 100), point(1e6, 400)])).toBe(false);
  });
});

describe("bench report formatting", () => {
  it("given ratios, when formatted, then small ones keep two decimals and large ones are whole", () => {
    expect(formatRatio(0.4567)).toBe("0.46×");
    expect(formatRatio(57.4)).toBe("57×");
    expect(formatRatio(null)).toBe("n/a");
  });

  it("given ratios, when tabled, then each row names the ratio, its value, the target and the verdict", () => {
    const rows = ratioRows({
      tallyOverCeiling: 0.62,
      tallyOverLimit: 0.45,
      tallyOverNaive: 41,
      replayOverFresh: null,
      hotOverUniform: 0.95,
      applyOverCeiling: 0.8,
      applyOverLimit: 0.6,
      tallyOverCopyOnly: 0.3,
      tallyOverPeer: 0.9,
      applyOverPeerSteady: null,
      tallyOverPeerLedger: 1.2,
      applyOverPeerLedgerSteady: 1.1,
      tallyOverPeerKeyed: 0.9,
      applyOverPeerKeyedSteady: null,
    });
    expect(rows).toEqual([
      ["Tally ÷ ceiling", "0.62×", "≥ 0.7", "missed"],
      ["Tally ÷ limit (its own writes alone)", "0.45×", "(for reference)", ""],
      ["Tally ÷ naive", "41×", "≥ 50", "missed"],
      ["replay ÷ fresh", "n/a", "≥ 0.8", ""],
      ["hot wallet ÷ uniform", "0.95×", "≥ 0.9", "met"],
      ["Tally apply-only ÷ ceiling", "0.80×", "(for reference)", ""],
      ["Tally apply-only ÷ limit", "0.60×", "(for reference)", ""],
      ["Tally ÷ COPY alone (rows pre-encoded)", "0.30×", "(for reference)", ""],
      ["Tally ÷ peer at its best (Connect + JDBC sink, from connector start)", "0.90×", "≥ 1.0", "missed"],
      ["Tally apply-only ÷ peer at its best, steady state", "n/a", "≥ 1.0", ""],
      ["Tally ÷ peer into the ledger's shape, from connector start", "1.20×", "(for reference)", ""],
      ["Tally apply-only ÷ peer into the ledger's shape, steady state", "1.10×", "≥ 2.0", "missed"],
      ["Tally ÷ peer into a keyed table (upsert), from connector start", "0.90×", "(for reference)", ""],
      ["Tally apply-only ÷ peer into a keyed table (upsert), steady state", "n/a", "(for reference)", ""],
    ]);
  });

  it("given several runs, when noted, then each run's rate is listed; one run gives no note", () => {
    expect(runsNote([21_000, 23_500, 25_000])).toBe("; runs 21,000 / 23,500 / 25,000");
    expect(runsNote([21_000])).toBe("");
  });

  it("given rows, when a Markdown table is made, then it has a header rule and pipes in cells are escaped", () => {
    expect(markdownTable(["a", "b"], [["1", "x|y"]])).toBe("| a | b |\n| --- | --- |\n| 1 | x\\|y |");
  });
});

describe("child log lines", () => {
  const empty = (): ChildReport => emptyReport("applier-1", 1);

  it("given batch and projector lines, when absorbed, then batch times, the span and project time add up", () => {
    const report = empty();
    const batch = (time: number, write: number) =>
      JSON.stringify({
        level: 30,
        time,
        msg: "batch committed",
        events: 5000,
        decode_ms: 5,
        validate_ms: 10,
        write_ms: write,
        commit_ms: 2,
      });
    absorbLogLine(report, batch(10_000, 83));
    absorbLogLine(report, batch(10_500, 183));
    absorbLogLine(report, JSON.stringify({ level: 30, msg: "projector: round", project_ms: 12 }));
    absorbLogLine(report, JSON.stringify({ level: 30, msg: "partitions assigned" }));
    absorbLogLine(report, "tally: something plain");
    expect(report.batchMs).toEqual([100, 200]);
    expect(report.batchEvents).toEqual([5000, 5000]);
    expect(report.batchSpan).toEqual({ firstStartMs: 9_900, lastEndMs: 10_500 });
    expect(report.projectMs).toBe(12);
    expect(report.stderrTail).toEqual(["tally: something plain"]);
  });
});

describe("CPU accounting", () => {
  it("given CPU seconds per process, when tabled, then each gets µs per event and a total row follows", () => {
    const run = { events: 200_000, cpuSeconds: { "applier-1": 4.5, projector: 1.1, postgres: 2.4 } };
    expect(cpuRows(run as unknown as TallyCase)).toEqual([
      ["applier-1", "4.50", "22.5", "-", "-"],
      ["projector", "1.10", "5.5", "-", "-"],
      ["postgres", "2.40", "12.0", "-", "-"],
      ["all of the above", "8.00", "40.0", "-", "-"],
    ]);
  });

  it("given the same processes' CPU on the caught-up topic, when tabled, then it is shown and taken off per event", () => {
    const run = {
      events: 200_000,
      cpuSeconds: { "applier-1": 4.5, projector: 1.1, postgres: 2.4 },
      startupCpuSeconds: { "applier-1": 0.6, projector: 0.7, postgres: 0.3 },
    };
    expect(cpuRows(run as unknown as TallyCase)).toEqual([
      ["applier-1", "4.50", "22.5", "0.60", "19.5"],
      ["projector", "1.10", "5.5", "0.70", "2.0"],
      ["postgres", "2.40", "12.0", "0.30", "10.5"],
      ["all of the above", "8.00", "40.0", "1.60", "32.0"],
    ]);
  });

  it("given start-up CPU missing for one process, when tabled, then the total row does not take any off", () => {
    const run = {
      events: 100,
      cpuSeconds: { "applier-1": 1, postgres: 1 },
      startupCpuSeconds: { "applier-1": 0.5 },
    };
    expect(cpuRows(run as unknown as TallyCase).at(-1)).toEqual([
      "all of the above",
      "2.00",
      "20000.0",
      "-",
      "-",
    ]);
  });

  it("given a result from before CPU was measured, when tabled, then there are no rows", () => {
    expect(cpuRows({ events: 10 } as unknown as TallyCase)).toEqual([]);
  });

  it("given this process after 0.3 s of its own CPU, when its CPU is read from /proc, then it moved by that and is what Node itself reports", () => {
    // The spin ends on the process's own CPU clock, not the wall clock: on a loaded machine a
    // 300 ms wall-clock spin may get far less than 0.3 s of CPU. The bound on rounds only stops a
    // clock that never moves (each round is a cpuUsage() call, a few µs of CPU at most).
    const spinSeconds = 0.3;
    const roundsMax = 50_000_000;
    const cpuSecondsSince = (start: NodeJS.CpuUsage) => {
      const used = process.cpuUsage(start);
      return (used.user + used.system) / 1e6;
    };
    const procBefore = cpuSecondsOf(process.pid);
    const start = process.cpuUsage();
    let rounds = 0;
    while (cpuSecondsSince(start) < spinSeconds && rounds < roundsMax) rounds++;
    const own = process.cpuUsage();
    const procAfter = cpuSecondsOf(process.pid);
    expect(cpuSecondsSince(start)).toBeGreaterThanOrEqual(spinSeconds);
    // /proc counts in 10 ms ticks, its split into user and system is sampled: a few ticks of slack.
    expect(procAfter - procBefore).toBeGreaterThan(spinSeconds - 0.05);
    // Read a moment after cpuUsage(), in ticks: they agree within 0.1 s.
    expect(Math.abs(procAfter - (own.user + own.system) / 1e6)).toBeLessThan(0.1);
    expect(cpuSecondsOf(2 ** 22 + 12_345)).toBe(0); // no such process
  }, 60_000); // 0.3 s of CPU can take seconds of wall time on a loaded machine: not what is tested
});
