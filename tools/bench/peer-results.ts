// The peer's results (docs/bench/peer.json, and `cases.peer` of latest.json; their shape is in
// peer-case.ts): the choice of the best tuning, the merge into a Tally run's results, and their
// Markdown section. Pure but for withPeerFile, which reads peer.json: unit tested.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { PeerCase, PeerRun, PeerSettingResult } from "./peer-case.ts";
import type { PeerSetting } from "./peer-config.ts";
import { type BenchResults, markdownTable, ratiosOf, runsNote } from "./report.ts";
import { mebibytes, medianIndex } from "./stats.ts";

export type { PeerCase, PeerRun, PeerSettingResult } from "./peer-case.ts";

/** Per setting its median run, and the best setting: the highest median events/s. */
export function bestOf(tried: readonly (PeerSetting & { runs: PeerRun[] })[]): {
  settings: PeerSettingResult[];
  best: PeerSettingResult;
} {
  if (tried.length === 0 || tried.some((t) => t.runs.length === 0))
    throw new RangeError("every setting needs at least one run");
  const settings = tried.map((t) => ({
    ...t,
    medianRun: t.runs[medianIndex(t.runs.map((r) => r.eventsPerSecond))]!,
  }));
  const best = settings.reduce((a, b) => (b.medianRun.eventsPerSecond > a.medianRun.eventsPerSecond ? b : a));
  return { settings, best };
}

/**
 * A Tally run's results with the peer's case in them and the ratios recomputed. Only a run of the
 * same events compares: a different seed or size leaves the results as they are (null is returned).
 */
export function withPeer(results: BenchResults, peer: PeerCase): BenchResults | null {
  if (Number(results.settings.events) !== peer.events || Number(results.settings.seed) !== peer.seed)
    return null;
  const cases = { ...results.cases, peer };
  return { ...results, cases, ratios: ratiosOf(cases) };
}

/** The peer's results as `tally bench-peer` wrote them in outDir (peer.json); null when absent. */
export async function readPeerFile(outDir: string): Promise<PeerCase | null> {
  try {
    return JSON.parse(await readFile(join(outDir, peerFileName), "utf8")) as PeerCase;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}
export const peerFileName = "peer.json";

/** The results with outDir's peer.json merged in, when they hold no peer and it is of the same events. */
export async function withPeerFile(results: BenchResults, outDir: string): Promise<BenchResults> {
  if (results.cases.peer) return results;
  const peer = await readPeerFile(outDir);
  return (peer && withPeer(results, peer)) ?? results;
}

const thousands = (n: number) => Math.round(n).toLocaleString("en-US");
const seconds = (ms: number) => (ms / 1000).toFixed(2);

function settingText(s: PeerSetting): string {
  const writer = s.writer === "unnest" ? "UNNEST writer" : "JDBC batching, reWriteBatchedInserts";
  return `tasks.max ${s.tasksMax}, batch.size ${thousands(s.batchSize)}, max.poll.records ${thousands(s.maxPollRecords)}, ${writer}`;
}

/** CPU µs per event from connector start: "JVM + PostgreSQL", "?" for a run that did not measure it. */
export function cpuPerEventText(run: PeerRun): string {
  if (!run.cpuSeconds || run.events === 0) return "?";
  const micros = (seconds: number) => Math.round((seconds * 1e6) / run.events);
  const postgres = run.cpuSeconds.postgres;
  return `${micros(run.cpuSeconds.connect)} + ${postgres === null ? "?" : micros(postgres)}`;
}

/** The "Peer" section of latest.md; empty when the results hold no peer case. */
export function peerMarkdown(r: BenchResults): string {
  const peer = r.cases.peer;
  if (!peer) return "";
  const rows = peer.tried.map((t) => [
    settingText(t),
    thousands(t.medianRun.eventsPerSecond),
    thousands(t.medianRun.steadyEventsPerSecond),
    thousands(t.medianRun.wholeEventsPerSecond),
    seconds(t.medianRun.workerStartMs),
    String(mebibytes(t.medianRun.peakRssBytes)),
    cpuPerEventText(t.medianRun),
    t.medianRun.loadAverage1m?.toFixed(1) ?? "?",
    `${t.name === peer.setting.name ? "best; " : ""}runs ${t.runs.map((x) => thousands(x.eventsPerSecond)).join(" / ")}`,
  ]);
  return [
    "",
    "## Peer: Kafka Connect with Debezium's JDBC sink",
    "",
    `\`${peer.command}\`, ${peer.startedAt}: Kafka Connect ${peer.versions.connect} standalone (${peer.heapOptions}), ` +
      `Debezium JDBC sink ${peer.versions.sink}, Apicurio converter ${peer.versions.converter}; the same generated ` +
      `events (seed ${peer.seed}, ${thousands(peer.events)} events) pre-filled in a topic of their own, inserted as they are ` +
      `(no validation, state, exactly-once or balances) into a table shaped like Tally's ledger, same durability. ` +
      `Tally's figures above are of their own run: on shared cores the two runs may have seen different load. ` +
      `Each run: a fresh worker, connector and table. "from connector" = connector created → last row inserted ` +
      `(the worker already running; the figure the ratio uses); "steady" = first row → last row; "whole" adds the JVM's start.`,
    "",
    `Best: ${settingText(peer.setting)}: ${thousands(peer.eventsPerSecond)} events/s from connector ` +
      `(${seconds(peer.connectorMs)} s${runsNote(peer.runsEventsPerSecond)}), ${thousands(peer.steadyEventsPerSecond)}/s steady, ` +
      `${thousands(peer.wholeEventsPerSecond)}/s whole; rows ${thousands(peer.rows)} of ${thousands(peer.events)}, ` +
      `${thousands(peer.distinctPositions)} distinct positions, amounts ${peer.amountsMatch ? "match" : "DO NOT match"}; ` +
      `Connect JVM peak RSS ${mebibytes(peer.peakRssBytes)} MiB; CPU from connector start ` +
      `${cpuPerEventText(peer)} µs per event (the Connect JVM + the PostgreSQL server, whose share ` +
      `includes the row-count polls and anything else the shared server did meanwhile).`,
    "",
    markdownTable(
      [
        "setting (median run)",
        "events/s from connector",
        "steady",
        "whole",
        "worker start s",
        "JVM peak MiB",
        "CPU µs/event JVM + PostgreSQL",
        "load avg 1 min",
        "notes",
      ],
      rows,
    ),
    "",
  ].join("\n");
}
