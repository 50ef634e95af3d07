// The peer's results (docs/bench/peer.json, and `cases.peer` of latest.json; their shape is in
// peer-case.ts): the choice of the best tuning, the merge into a Tally run's results, and their
// Markdown section. Pure but for withPeerFile, which reads peer.json: unit tested.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { bestOfShape, type PeerCase, type PeerRun, type PeerSettingResult, shapeOf } from "./peer-case.ts";
import { type PeerSetting, type PeerShape, peerShapes } from "./peer-config.ts";
import { type BenchResults, formatRatio, markdownTable, type Ratios, ratiosOf, runsNote } from "./report.ts";
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

const shapeTexts: Record<PeerShape, string> = {
  ledger: "into the ledger's shape (day-partitioned, every record inserted)",
  "keyed-upsert": "into a plain table keyed by transfer_id (upsert, reduction buffer)",
};

function settingText(s: PeerSetting): string {
  const writer = s.writer === "unnest" ? "UNNEST writer" : "JDBC batching, reWriteBatchedInserts";
  return `${shapeOf(s)}: tasks.max ${s.tasksMax}, batch.size ${thousands(s.batchSize)}, max.poll.records ${thousands(s.maxPollRecords)}, ${writer}`;
}

/** Per shape: the ratios (report.ts) of Tally to its best setting, from start and steady. */
const shapeRatioKeys = {
  ledger: ["tallyOverPeerLedger", "applyOverPeerLedgerSteady"],
  "keyed-upsert": ["tallyOverPeerKeyed", "applyOverPeerKeyedSteady"],
} as const satisfies Record<PeerShape, readonly [keyof Ratios, keyof Ratios]>;

/** Per shape tried: its best setting's figures and Tally's two ratios to it. */
export function shapeLines(r: BenchResults, peer: PeerCase): string[] {
  return peerShapes.flatMap((shape) => {
    const best = bestOfShape(peer.tried, shape);
    if (!best) return [];
    const run = best.medianRun;
    const [fromStart, steady] = shapeRatioKeys[shape];
    return [
      `- ${shapeTexts[shape]}: best ${best.name}, ${thousands(run.eventsPerSecond)} events/s from connector ` +
        `start, ${thousands(run.steadyEventsPerSecond)}/s steady; Tally ÷ peer ${formatRatio(r.ratios[fromStart])} ` +
        `from start (Tally end to end), ${formatRatio(r.ratios[steady])} steady (Tally apply-only).`,
    ];
  });
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
    `${thousands(t.medianRun.rows)} of ${thousands(t.medianRun.expectedRows ?? t.medianRun.events)}`,
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
      `(no validation, state, exactly-once or balances), same durability, into two table shapes: Tally's ledger ` +
      `(every record inserted, duplicates too) and a plain table keyed by transfer_id with insert.mode=upsert ` +
      `(one row per transfer id; where the sink is fastest). ` +
      `Tally's figures above are of their own run: on shared cores the two runs may have seen different load. ` +
      `Each run: a fresh worker, connector and table. "from connector" = connector created → last row inserted ` +
      `(the worker already running; compared with Tally end to end); "steady" = first row → last row (compared with ` +
      `Tally's apply-only, first batch → last commit); "whole" adds the JVM's start. The headline ratio is against the ` +
      `best of every shape and setting.`,
    "",
    ...shapeLines(r, peer),
    "",
    `Best: ${settingText(peer.setting)}: ${thousands(peer.eventsPerSecond)} events/s from connector ` +
      `(${seconds(peer.connectorMs)} s${runsNote(peer.runsEventsPerSecond)}), ${thousands(peer.steadyEventsPerSecond)}/s steady, ` +
      `${thousands(peer.wholeEventsPerSecond)}/s whole; rows ${thousands(peer.rows)} of ${thousands(peer.expectedRows ?? peer.events)}, ` +
      `${thousands(peer.distinctPositions)} distinct positions, amounts ${peer.amountsMatch ? "match" : "DO NOT match"}; ` +
      `Connect JVM peak RSS ${mebibytes(peer.peakRssBytes)} MiB; CPU from connector start ` +
      `${cpuPerEventText(peer)} µs per event (the Connect JVM + the PostgreSQL server, whose share ` +
      `includes the row-count polls and anything else the shared server did meanwhile).`,
    "",
    markdownTable(
      [
        "setting (median run)",
        "rows",
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
