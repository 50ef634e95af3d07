// The results of one bench run: their shape (docs/bench/latest.json), the ratios against the
// issue's targets, and the Markdown report (docs/bench/latest.md). Pure: unit tested.
import type { CeilingResult, NaiveResult } from "./baseline.ts";
import type { Durability } from "./durability.ts";
import type { LimitResult } from "./limit.ts";
import type { LatencyResult, UserTransferResult } from "./live.ts";
import type { Expected } from "./loads.ts";
import { bestOfShape, type PeerCase } from "./peer-case.ts";
import type { PipelineResult } from "./pipeline.ts";
import { isFlat, mebibytes, ratioOf } from "./stats.ts";

export type { Durability } from "./durability.ts";

export type TallyCase = PipelineResult & {
  expected: Expected;
  /** counted (applier_offsets) equals what the generator says a correct pipeline reports */
  countsMatch: boolean;
  produceMs: number;
};
export type ScalingPoint = TallyCase;
/** The median of several runs, with each run's events/s. */
export type Repeated<T> = T & { runsEventsPerSecond: number[] };

export type BenchResults = {
  startedAt: string;
  totalMs: number;
  command: string;
  machine: { cpus: number; cpuModel: string; memoryBytes: number; node: string };
  /** the bench process itself: generator, producer, pollers */
  benchPeakRssBytes: number;
  durability: Durability[];
  settings: Record<string, number | string | boolean>;
  cases: {
    ceiling: Repeated<CeilingResult>;
    /** Tally's own writes alone (limit.ts); absent from runs before it existed */
    limit?: Repeated<LimitResult>;
    naive: Repeated<NaiveResult>;
    tally: Repeated<TallyCase>;
    replay: Repeated<TallyCase>;
    hotWallet: Repeated<TallyCase>;
    latency: LatencyResult;
    userTransfers: UserTransferResult[];
    scaling: ScalingPoint[];
    /** Kafka Connect + Debezium's JDBC sink on the same events: `tally bench-peer`, merged in */
    peer?: PeerCase;
  };
  ratios: Ratios;
  memoryFlat: boolean;
};

export type Ratios = {
  tallyOverCeiling: number | null;
  /** Tally end to end over its own writes alone: what the rest of the design costs */
  tallyOverLimit: number | null;
  tallyOverNaive: number | null;
  replayOverFresh: number | null;
  hotOverUniform: number | null;
  /** the appliers' own rate (without process start and projection) over the ceiling */
  applyOverCeiling: number | null;
  /** the appliers' own rate over the same writes without Kafka, decoding and rules */
  applyOverLimit: number | null;
  /** Tally over the COPY alone (rows already encoded): the stricter yardstick */
  tallyOverCopyOnly: number | null;
  /** Tally end to end over the peer at its best (fastest shape and tuning), from connector start */
  tallyOverPeer: number | null;
  /** Tally apply-only over that best peer's steady state (first row to last row): the writes alone */
  applyOverPeerSteady: number | null;
  /** the same two against the peer's best tuning into Tally's ledger shape */
  tallyOverPeerLedger: number | null;
  applyOverPeerLedgerSteady: number | null;
  /** and against its best into a plain table keyed by transfer_id, upserted */
  tallyOverPeerKeyed: number | null;
  applyOverPeerKeyedSteady: number | null;
};

/** The targets (issue #13 for the ceiling and the peer), each checked by `met`. */
export const targets = {
  tallyOverCeiling: { text: "≥ 0.7", met: (v: number) => v >= 0.7 },
  tallyOverLimit: { text: "(for reference)", met: (_: number) => true },
  tallyOverNaive: { text: "≥ 50", met: (v: number) => v >= 50 },
  replayOverFresh: { text: "≥ 0.8", met: (v: number) => v >= 0.8 },
  hotOverUniform: { text: "≥ 0.9", met: (v: number) => v >= 0.9 },
  applyOverCeiling: { text: "(for reference)", met: (_: number) => true },
  applyOverLimit: { text: "(for reference)", met: (_: number) => true },
  tallyOverCopyOnly: { text: "(for reference)", met: (_: number) => true },
  tallyOverPeer: { text: "≥ 1.0", met: (v: number) => v >= 1 },
  applyOverPeerSteady: { text: "≥ 1.0", met: (v: number) => v >= 1 },
  tallyOverPeerLedger: { text: "(for reference)", met: (_: number) => true },
  applyOverPeerLedgerSteady: { text: "≥ 2.0", met: (v: number) => v >= 2 },
  tallyOverPeerKeyed: { text: "(for reference)", met: (_: number) => true },
  applyOverPeerKeyedSteady: { text: "(for reference)", met: (_: number) => true },
} as const;
const referenceOnly = new Set<keyof Ratios>([
  "tallyOverLimit",
  "applyOverCeiling",
  "applyOverLimit",
  "tallyOverCopyOnly",
  "tallyOverPeerLedger",
  "tallyOverPeerKeyed",
  "applyOverPeerKeyedSteady",
]);

export function ratiosOf(cases: BenchResults["cases"]): Ratios {
  const { ceiling, limit, naive, tally, replay, hotWallet, peer } = cases;
  return {
    tallyOverCeiling: ratioOf(tally.eventsPerSecond, ceiling.eventsPerSecond),
    tallyOverLimit: ratioOf(tally.eventsPerSecond, limit?.eventsPerSecond),
    tallyOverNaive: ratioOf(tally.eventsPerSecond, naive.eventsPerSecond),
    replayOverFresh: ratioOf(replay.eventsPerSecond, tally.eventsPerSecond),
    hotOverUniform: ratioOf(hotWallet.eventsPerSecond, tally.eventsPerSecond),
    applyOverCeiling: ratioOf(tally.applyEventsPerSecond, ceiling.eventsPerSecond),
    applyOverLimit: ratioOf(tally.applyEventsPerSecond, limit?.eventsPerSecond),
    tallyOverCopyOnly: ratioOf(tally.eventsPerSecond, ceiling.copyOnlyEventsPerSecond),
    tallyOverPeer: ratioOf(tally.eventsPerSecond, peer?.eventsPerSecond),
    applyOverPeerSteady: ratioOf(tally.applyEventsPerSecond, peer?.steadyEventsPerSecond),
    ...peerShapeRatios(tally, peer),
  };
}

/** Tally over the best run of each table shape, from connector start and steady. */
function peerShapeRatios(tally: TallyCase, peer: PeerCase | undefined) {
  const ledger = peer && bestOfShape(peer.tried, "ledger")?.medianRun;
  const keyed = peer && bestOfShape(peer.tried, "keyed-upsert")?.medianRun;
  return {
    tallyOverPeerLedger: ratioOf(tally.eventsPerSecond, ledger?.eventsPerSecond),
    applyOverPeerLedgerSteady: ratioOf(tally.applyEventsPerSecond, ledger?.steadyEventsPerSecond),
    tallyOverPeerKeyed: ratioOf(tally.eventsPerSecond, keyed?.eventsPerSecond),
    applyOverPeerKeyedSteady: ratioOf(tally.applyEventsPerSecond, keyed?.steadyEventsPerSecond),
  };
}

/** Memory is flat when every process's peak at the largest size is within 1.5× of the smallest's. */
export function memoryFlatOf(scaling: readonly ScalingPoint[]): boolean {
  const roles = new Set(scaling.flatMap((p) => Object.keys(p.peakRssBytes)));
  return [...roles].every((role) => isFlat(scaling.map((p) => p.peakRssBytes[role] ?? 0)));
}

const ratioLabels: Record<keyof Ratios, string> = {
  tallyOverCeiling: "Tally ÷ ceiling",
  tallyOverLimit: "Tally ÷ limit (its own writes alone)",
  tallyOverNaive: "Tally ÷ naive",
  replayOverFresh: "replay ÷ fresh",
  hotOverUniform: "hot wallet ÷ uniform",
  applyOverCeiling: "Tally apply-only ÷ ceiling",
  applyOverLimit: "Tally apply-only ÷ limit",
  tallyOverCopyOnly: "Tally ÷ COPY alone (rows pre-encoded)",
  tallyOverPeer: "Tally ÷ peer at its best (Connect + JDBC sink, from connector start)",
  applyOverPeerSteady: "Tally apply-only ÷ peer at its best, steady state",
  tallyOverPeerLedger: "Tally ÷ peer into the ledger's shape, from connector start",
  applyOverPeerLedgerSteady: "Tally apply-only ÷ peer into the ledger's shape, steady state",
  tallyOverPeerKeyed: "Tally ÷ peer into a keyed table (upsert), from connector start",
  applyOverPeerKeyedSteady: "Tally apply-only ÷ peer into a keyed table (upsert), steady state",
};

/** A ratio as the report prints it: two decimals below 10, whole above. */
export function formatRatio(value: number | null): string {
  if (value === null) return "n/a";
  return value >= 10 ? `${Math.round(value)}×` : `${value.toFixed(2)}×`;
}

export function ratioRows(ratios: Ratios): string[][] {
  return (Object.keys(ratioLabels) as (keyof Ratios)[]).map((key) => {
    const value = ratios[key];
    const target = targets[key];
    const verdict = value === null ? "" : target.met(value) ? "met" : "missed";
    return [ratioLabels[key], formatRatio(value), target.text, referenceOnly.has(key) ? "" : verdict];
  });
}

/** A Markdown table; cells are escaped for pipes. */
export function markdownTable(head: string[], rows: string[][]): string {
  const cell = (text: string) => text.replaceAll("|", "\\|");
  const line = (cells: string[]) => `| ${cells.map(cell).join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

const thousands = (n: number) => Math.round(n).toLocaleString("en-US");
const seconds = (ms: number) => (ms / 1000).toFixed(2);

/** "runs 21,000 / 23,000 / 25,000": every run's events/s when there were several. */
export function runsNote(runs: readonly number[] | undefined): string {
  return runs && runs.length > 1 ? `; runs ${runs.map(thousands).join(" / ")}` : "";
}

/** The limit's row: its rate over all the load's records (Tally's basis), its CPU per event. */
export function limitRow(limit: Repeated<LimitResult>): string[] {
  const micros = (role: string) => perEventMicros(limit.cpuSeconds[role] ?? 0, limit.events);
  const cpu = `CPU µs/event: this script ${micros("limit")}, PostgreSQL ${limit.cpuSeconds.postgres === undefined ? "?" : micros("postgres")}`;
  return [
    "limit: Tally's own writes alone (no Kafka, Avro, rules)",
    thousands(limit.events),
    seconds(limit.elapsedMs),
    thousands(limit.eventsPerSecond),
    `${thousands(limit.chunks)} chunks of ≤ ${thousands(limit.chunkEventsMax)} records, ${limit.writers} writers; ` +
      `${thousands(limit.rows.transfers ?? 0)} ledger rows${limit.rowsMatch ? "" : " (NOT as planned)"}; ` +
      `${cpu}${runsNote(limit.runsEventsPerSecond)}`,
  ];
}

function caseRows(r: BenchResults): string[][] {
  const { ceiling, limit, naive, tally, replay, hotWallet } = r.cases;
  const pipeline = (name: string, c: Repeated<TallyCase>) => [
    name,
    thousands(c.events),
    seconds(c.endToEndMs),
    thousands(c.eventsPerSecond),
    `apply-only ${thousands(c.applyEventsPerSecond)}/s; batch p50 ${c.batchLatencyMs.p50} ms, ` +
      `p99 ${c.batchLatencyMs.p99} ms${runsNote(c.runsEventsPerSecond)}`,
  ];
  return [
    [
      "ceiling: COPY of the ledger rows, one transaction",
      thousands(ceiling.rows),
      seconds(ceiling.elapsedMs),
      thousands(ceiling.eventsPerSecond),
      `rows/s: encoding ${seconds(ceiling.encodeMs)} s + COPY ${seconds(ceiling.copyMs)} s ` +
        `(COPY alone ${thousands(ceiling.copyOnlyEventsPerSecond)} rows/s)${runsNote(ceiling.runsEventsPerSecond)}`,
    ],
    ...(limit ? [limitRow(limit)] : []),
    [
      "naive: one transaction per event",
      thousands(naive.events),
      seconds(naive.elapsedMs),
      thousands(naive.eventsPerSecond),
      `first ${thousands(naive.events)} events of the load${runsNote(naive.runsEventsPerSecond)}`,
    ],
    pipeline("Tally end to end (appliers + projector)", tally),
    pipeline("replay: the same events again (duplicates)", replay),
    pipeline(`hot wallet: ${r.settings.hotWalletShare ?? 0.8} of the moves on one wallet`, hotWallet),
  ];
}

function phaseRows(c: TallyCase): string[][] {
  const total = Object.values(c.phaseMs).reduce((a, b) => a + b, 0) || 1;
  return Object.entries(c.phaseMs).map(([phase, ms]) => [
    phase,
    seconds(ms),
    `${Math.round((ms / total) * 100)} %`,
    ms > 0 ? thousands((c.events * 1000) / ms) : "-",
  ]);
}

/**
 * CPU per process over the end to end run: the 2 cores' budget, and who spends it per event, with
 * and without what the same processes spent on the caught-up topic (start-up: once per process).
 */
export function cpuRows(c: TallyCase): string[][] {
  const entries = Object.entries(c.cpuSeconds ?? {});
  const startup = c.startupCpuSeconds;
  const row = (role: string, s: number, idle: number | undefined) => [
    role,
    s.toFixed(2),
    perEventMicros(s, c.events),
    idle === undefined ? "-" : idle.toFixed(2),
    idle === undefined ? "-" : perEventMicros(Math.max(0, s - idle), c.events),
  ];
  const rows = entries.map(([role, s]) => row(role, s, startup?.[role]));
  const sum = (values: (number | undefined)[]) => values.reduce<number>((t, v) => t + (v ?? 0), 0);
  if (entries.length > 0) {
    const idle = startup && entries.every(([role]) => startup[role] !== undefined);
    const total = sum(entries.map(([, s]) => s));
    rows.push(row("all of the above", total, idle ? sum(entries.map(([role]) => startup[role])) : undefined));
  }
  return rows;
}

/** The headers of cpuRows' columns. */
export const cpuColumns = [
  "process",
  "CPU seconds",
  "CPU µs per event",
  "of it, start-up (the same processes, caught up)",
  "CPU µs per event, start-up taken off",
];

const perEventMicros = (cpuSeconds: number, events: number) =>
  events > 0 ? ((cpuSeconds * 1e6) / events).toFixed(1) : "-";

function scalingRows(points: readonly ScalingPoint[]): string[][] {
  return points.map((p) => [
    thousands(p.events),
    thousands(p.eventsPerSecond),
    thousands(p.applyEventsPerSecond),
    ...["applier-1", "applier-2", "projector"].map((role) => String(mebibytes(p.peakRssBytes[role] ?? 0))),
  ]);
}

const rssText = (peaks: Record<string, number>) =>
  Object.entries(peaks)
    .map(([role, bytes]) => `${role} ${mebibytes(bytes)} MiB`)
    .join(", ");

export function formatMarkdown(r: BenchResults): string {
  const { latency, userTransfers, tally } = r.cases;
  const durability = r.durability
    .map(
      (d) =>
        `${d.server} (${d.version}): fsync ${d.fsync}, synchronous_commit ${d.synchronousCommit}, full_page_writes ${d.fullPageWrites}, wal_sync_method ${d.walSyncMethod}`,
    )
    .join("; ");
  return [
    `# Tally benchmark, ${r.startedAt.slice(0, 10)}`,
    "",
    `\`${r.command}\` in one run of ${seconds(r.totalMs)} s on ${r.machine.cpus} × ${r.machine.cpuModel}, ` +
      `${Math.round(r.machine.memoryBytes / 2 ** 30)} GiB, Node ${r.machine.node}.`,
    `Durability in force: ${durability}.`,
    `Every case on its own topic and databases; the same generated events (seed ${r.settings.seed}, ` +
      `${thousands(Number(r.settings.events))} events, ${r.settings.duplicateRate} duplicates, ${r.settings.doubleSpendRate} double spends); ` +
      `${r.settings.appliers} applier processes, ${r.settings.partitions} partitions, ${r.settings.shards} shards.`,
    "",
    markdownTable(["case", "events", "seconds", "events/s", "notes"], caseRows(r)),
    "",
    markdownTable(["ratio", "value", "target", ""], ratioRows(r.ratios)),
    "",
    `Peak RSS, Tally end to end: ${rssText(tally.peakRssBytes)}; latency case: ${rssText(latency.peakRssBytes)}; ` +
      `the bench process (generator, producer): ${mebibytes(r.benchPeakRssBytes)} MiB.`,
    "",
    "Where Tally's time goes (end to end run, summed over processes):",
    "",
    markdownTable(["phase", "seconds", "share", "events/s if alone"], phaseRows(tally)),
    "",
    `CPU of the end to end run (${r.machine.cpus} cores × ${seconds(tally.endToEndMs)} s = ` +
      `${((r.machine.cpus * tally.endToEndMs) / 1000).toFixed(2)} CPU s available; the Kafka broker and the bench process not counted):`,
    "",
    markdownTable(cpuColumns, cpuRows(tally)),
    "",
    `Produce to balance visible at a steady ${thousands(latency.rateEventsPerSecond)} events/s ` +
      `(achieved ${thousands(latency.achievedEventsPerSecond)}/s for ${seconds(latency.durationMs)} s, ${latency.latencyMs.count} samples): ` +
      `p50 ${latency.latencyMsP50} ms, p99 ${latency.latencyMsP99} ms, max ${latency.latencyMs.max} ms.`,
    "",
    markdownTable(
      ["user-level transfer (one batch_id)", "first produce → balance visible (ms)", "moves/s"],
      userTransfers.map((u) => [
        `${thousands(u.moves)} token moves`,
        thousands(u.visibleMs),
        thousands(u.eventsPerSecond),
      ]),
    ),
    "",
    `Scaling (end to end; peak RSS in MiB per process; memory ${r.memoryFlat ? "flat" : "NOT flat"}):`,
    "",
    markdownTable(
      ["events", "events/s", "apply-only events/s", "applier-1 MiB", "applier-2 MiB", "projector MiB"],
      scalingRows(r.cases.scaling),
    ),
    "",
  ].join("\n");
}
