// `tally bench`: the command line over runBench. The CLI's main wires it with registerBenchCommand.
import { type Command, InvalidArgumentError } from "commander";
import { loadConfig } from "../../services/common/config.ts";
import {
  type BenchOptions,
  defaultBenchOptions,
  hugeScalingEvents,
  quickBenchOptions,
  runBench,
  writeResults,
} from "./bench.ts";
import { formatRatio } from "./report.ts";
import { parseSizes } from "./stats.ts";

export const benchOutDirDefault = new URL("../../docs/bench/", import.meta.url).pathname;

type BenchFlags = {
  events?: number;
  naiveEvents?: number;
  scaling?: number[];
  huge?: boolean;
  quick?: boolean;
  latencySeconds?: number;
  rate?: number;
  seed?: number;
  repeat?: number;
  keep?: boolean;
  out: string;
};

/** A commander parser for a flag that takes a positive integer. */
export function positive(flag: string) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < 1)
      throw new InvalidArgumentError(`${flag} must be a positive integer`);
    return value;
  };
}

function sizes(text: string): number[] {
  try {
    return parseSizes(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** The options of a run from the flags: --quick sizes first, then what was given explicitly. */
export function benchOptionsOf(
  flags: BenchFlags,
  argv: readonly string[],
  log: (line: string) => void,
): BenchOptions {
  const base = { ...defaultBenchOptions, ...(flags.quick ? quickBenchOptions : {}) };
  const scaling = [...(flags.scaling ?? base.scaling), ...(flags.huge ? [hugeScalingEvents] : [])];
  return {
    ...base,
    events: flags.events ?? base.events,
    naiveEvents: flags.naiveEvents ?? base.naiveEvents,
    scaling,
    latencySeconds: flags.latencySeconds ?? base.latencySeconds,
    userTransferMoves: [...base.userTransferMoves],
    ...(flags.rate ? { rateEventsPerSecond: flags.rate } : {}),
    seed: flags.seed ?? base.seed,
    repeat: flags.repeat ?? base.repeat,
    keep: flags.keep ?? false,
    outDir: flags.out,
    command: ["tally", "bench", ...argv].join(" "),
    log,
  };
}

export function registerBenchCommand(program: Command): Command {
  return program
    .command("bench")
    .description(
      "benchmark in one run: the COPY ceiling, the naive path, Tally end to end, replay, hot wallet, " +
        "latency, user-level transfers and a scaling series; writes docs/bench/latest.{json,md,svg}",
    )
    .option("--events <n>", "events of the main load", positive("--events"))
    .option("--naive-events <n>", "events of the naive sample", positive("--naive-events"))
    .option("--scaling <sizes>", "sizes of the scaling series, e.g. 1e4,1e5,1e6", sizes)
    .option("--huge", `add ${hugeScalingEvents.toExponential()} events to the scaling series`)
    .option("--quick", "tiny sizes: a smoke run in well under a minute")
    .option(
      "--latency-seconds <s>",
      "duration of the steady-rate latency case",
      positive("--latency-seconds"),
    )
    .option(
      "--rate <events/s>",
      "rate of the latency case (default: half of Tally's measured rate)",
      positive("--rate"),
    )
    .option("--seed <n>", "seed of the generated load", positive("--seed"))
    .option(
      "--repeat <n>",
      "runs of each headline case; the median is reported (default 3)",
      positive("--repeat"),
    )
    .option("--keep", "keep the topics and databases of every case")
    .option("--out <dir>", "where latest.json, latest.md and latest.svg go", benchOutDirDefault)
    .action(async (flags: BenchFlags, command: Command) => {
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const options = benchOptionsOf(flags, argvOf(command), log);
      const results = await runBench(loadConfig(), options);
      for (const path of await writeResults(results, options.outDir)) log(`bench: wrote ${path}`);
      const r = results.ratios;
      console.log(
        `bench: Tally ${results.cases.tally.eventsPerSecond} events/s; ` +
          `÷ ceiling ${formatRatio(r.tallyOverCeiling)}, ÷ limit ${formatRatio(r.tallyOverLimit)}, ÷ naive ${formatRatio(r.tallyOverNaive)}, ` +
          `replay ÷ fresh ${formatRatio(r.replayOverFresh)}, hot ÷ uniform ${formatRatio(r.hotOverUniform)}; ` +
          `latency p99 ${results.cases.latency.latencyMsP99} ms; memory ${results.memoryFlat ? "flat" : "not flat"}`,
      );
    });
}

/** The flags as given, for the report's "command" line. */
function argvOf(command: Command): string[] {
  const index = process.argv.indexOf(command.name());
  return index >= 0 ? process.argv.slice(index + 1) : [];
}
