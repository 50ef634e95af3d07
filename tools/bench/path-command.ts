// `tally-tools bench-path`: the command line over runPath (path.ts).
import type { Command } from "commander";
import { defaultBenchOptions } from "./bench.ts";
import { positive } from "./command.ts";
import { benchLoad } from "./loads.ts";
import { type PathPhases, type PathResult, runPath } from "./path.ts";
import { markdownTable } from "./report.ts";

type PathFlags = { events: number; seed: number; passes: number; chunkEvents: number; json?: boolean };

const phaseNames: Record<keyof PathPhases, string> = {
  records: "kafkajs' strings to records",
  decode: "decode (framing, Avro, checks of the bytes)",
  plan: "plan (shape, routing, window, ids, token rules, deltas)",
  encode: "encode (ledger and ids COPY, deltas, token arrays)",
};

/** The phases' table: ns per event, share, and the rate one core would reach on that phase alone. */
export function pathRows(result: PathResult): string[][] {
  const entries = Object.entries(result.nsPerEvent) as [keyof PathPhases, number][];
  const total = entries.reduce((sum, [, ns]) => sum + ns, 0);
  const rate = (ns: number) => (ns > 0 ? Math.round(1e9 / ns).toLocaleString("en-US") : "-");
  const rows = entries.map(([phase, ns]) => [
    phaseNames[phase],
    String(ns),
    total > 0 ? `${Math.round((ns / total) * 100)} %` : "-",
    rate(ns),
  ]);
  rows.push(["all of the above", String(total), "100 %", rate(total)]);
  return rows;
}

export function registerBenchPathCommand(program: Command): Command {
  return program
    .command("bench-path")
    .description(
      "the applier's own CPU per event, phase by phase, with no Kafka, PostgreSQL or registry: " +
        "the bench's load decoded, planned and encoded in chunks, in this process",
    )
    .option("--events <n>", "events of the load", positive("--events"), defaultBenchOptions.events)
    .option("--seed <n>", "seed of the generated load", positive("--seed"), defaultBenchOptions.seed)
    .option("--passes <n>", "passes over the load; the first only warms up", positive("--passes"), 5)
    .option(
      "--chunk-events <n>",
      "records per chunk (TALLY_BATCH_EVENTS_MAX)",
      positive("--chunk-events"),
      5000,
    )
    .option("--json", "print the result as one JSON line")
    .action(async (flags: PathFlags) => {
      const load = benchLoad(flags.events, flags.seed, Date.now());
      const result = await runPath(load, {
        partitions: 6,
        chunkEventsMax: flags.chunkEvents,
        passes: flags.passes,
      });
      if (flags.json) {
        console.log(JSON.stringify(result));
        return;
      }
      console.log(
        `bench-path: ${result.events} events, ${result.passesTimed} timed passes, chunks of ${flags.chunkEvents}, ` +
          `Node ${process.version}; outcomes ${JSON.stringify(result.counted)}\n`,
      );
      console.log(
        markdownTable(["phase", "CPU ns per event", "share", "events/s on one core"], pathRows(result)),
      );
    });
}
