// `tally bench-peer`: the command line over runPeerBench. It writes peer.json and, when the output
// folder holds a `tally bench` run of the same events, merges the peer into latest.{json,md,svg}.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { loadConfig } from "../../services/common/config.ts";
import { defaultBenchOptions, writeResults } from "./bench.ts";
import { benchOutDirDefault, positive } from "./command.ts";
import { type PeerOptions, runPeerBench } from "./peer.ts";
import { peerDefaultSettingNames, peerSettingsFor, pickSettings } from "./peer-config.ts";
import { type PeerCase, peerFileName, withPeer } from "./peer-results.ts";
import { type BenchResults, formatRatio } from "./report.ts";

type PeerFlags = {
  events?: number;
  seed?: number;
  repeat: number;
  settings?: string[];
  keep?: boolean;
  out: string;
};

export const peerRepeatDefault = 2;

const names = (text: string) =>
  text
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");

async function readLatest(outDir: string): Promise<BenchResults | null> {
  try {
    return JSON.parse(await readFile(join(outDir, "latest.json"), "utf8")) as BenchResults;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/** peer.json, then latest.* with the peer merged in when they are of the same events. */
export async function writePeer(
  peer: PeerCase,
  latest: BenchResults | null,
  outDir: string,
  log: (l: string) => void,
) {
  // A new --out folder: a run of ten minutes must not end in ENOENT.
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, peerFileName);
  await writeFile(path, `${JSON.stringify(peer, null, 2)}\n`);
  log(`bench-peer: wrote ${path}`);
  const merged = latest && withPeer(latest, peer);
  if (!merged) {
    log(
      latest
        ? `bench-peer: ${outDir}latest.json is of other events (seed ${latest.settings.seed}, ${latest.settings.events} events): not merged`
        : `bench-peer: no latest.json in ${outDir} (run make bench): no ratio to Tally`,
    );
    return null;
  }
  for (const written of await writeResults(merged, outDir)) log(`bench-peer: wrote ${written}`);
  return merged;
}

/** The settings named by --settings; an unknown name is a usage error (exit 2, one line). */
function settingsOrUsageError(command: Command, partitions: number, names: string[] | undefined) {
  try {
    return pickSettings(peerSettingsFor(partitions), names, peerDefaultSettingNames(partitions));
  } catch (error) {
    return command.error(`error: --settings: ${(error as Error).message}`, { exitCode: 2 });
  }
}

export function registerBenchPeerCommand(program: Command): Command {
  return program
    .command("bench-peer")
    .description(
      "benchmark the peer (Kafka Connect + Debezium's JDBC sink) on the events of `tally bench`; " +
        "needs infra/peer/peer.sh fetch (make bench-peer); merges into docs/bench/latest.*",
    )
    .option("--events <n>", "events (default: those of latest.json, else 200000)", positive("--events"))
    .option("--seed <n>", "seed of the generated load (default: that of latest.json)", positive("--seed"))
    .option("--repeat <n>", "runs of each setting; medians compared", positive("--repeat"), peerRepeatDefault)
    .option(
      "--settings <names>",
      "comma-separated settings to try, <shape>-tasks<n>-batch<n>-<writer> with shape ledger or keyed-upsert " +
        "(default: two per shape)",
      names,
    )
    .option("--keep", "keep the topic, databases, consumer groups and run folders")
    .option("--out <dir>", "where peer.json and latest.* are", benchOutDirDefault)
    .action(async (flags: PeerFlags, command: Command) => {
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const config = loadConfig();
      const latest = await readLatest(flags.out);
      const options: PeerOptions = {
        events: flags.events ?? Number(latest?.settings.events ?? defaultBenchOptions.events),
        seed: flags.seed ?? Number(latest?.settings.seed ?? defaultBenchOptions.seed),
        settings: settingsOrUsageError(command, config.TALLY_PARTITIONS, flags.settings),
        repeat: flags.repeat,
        keep: flags.keep ?? false,
        command: ["tally", "bench-peer", ...process.argv.slice(process.argv.indexOf("bench-peer") + 1)].join(
          " ",
        ),
        log,
      };
      const peer = await runPeerBench(config, options);
      const merged = await writePeer(peer, latest, flags.out, log);
      const r = merged?.ratios;
      console.log(
        `bench-peer: best ${peer.setting.name}: ${peer.eventsPerSecond} events/s from connector start, ` +
          `${peer.steadyEventsPerSecond}/s steady, ${peer.wholeEventsPerSecond}/s with the worker's start; ` +
          `Tally ÷ peer ${formatRatio(r?.tallyOverPeer ?? null)} (steady ${formatRatio(r?.applyOverPeerSteady ?? null)}; ` +
          `ledger shape ${formatRatio(r?.tallyOverPeerLedger ?? null)}, keyed ${formatRatio(r?.tallyOverPeerKeyed ?? null)})`,
      );
    });
}
