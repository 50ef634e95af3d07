// The shape of the peer's results (docs/bench/peer.json, and `cases.peer` of latest.json), apart
// from what reads and merges them (peer-results.ts), so that report.ts can name it without a circle.
import type { Durability } from "./durability.ts";
import type { PeerSetting, PeerShape } from "./peer-config.ts";

/** One run of the peer: a fresh worker, a fresh connector (consumer group) and a fresh table. */
export type PeerRun = {
  events: number;
  /** rows in the table at the end; into the ledger the sink inserts every event, duplicates too */
  rows: number;
  /**
   * rows the shape must end with: every event into the ledger, one per distinct transfer_id into the
   * keyed table (absent in runs from before the keyed shape: the events)
   */
  expectedRows?: number;
  /** distinct (kafka_partition, kafka_offset): below rows when a record was inserted twice */
  distinctPositions: number;
  /** the sum of the rows' amounts equals the produced events' (of each distinct transfer_id when keyed) */
  amountsMatch: boolean;
  /** JVM spawned → the worker's REST API answered (plugin scanning included) */
  workerStartMs: number;
  /** connector created → the first row inserted (task start, group join, first fetch and batch) */
  firstRowMs: number;
  /** connector created → the last row inserted: the headline, the worker already running */
  connectorMs: number;
  /** first row → last row (inserted_at, the database's clock): the steady state */
  steadyMs: number;
  /** JVM spawned → the last row inserted: everything */
  wholeMs: number;
  eventsPerSecond: number;
  steadyEventsPerSecond: number;
  wholeEventsPerSecond: number;
  /** VmHWM of the Connect JVM */
  peakRssBytes: number;
  /**
   * CPU seconds from connector created to every row landed: the Connect JVM's, and the PostgreSQL
   * server's (all of its processes: the row-count polls and other work on a shared server count too)
   */
  cpuSeconds?: { connect: number; postgres: number | null };
  /** the machine's 1-minute load average when the last row landed: how shared the cores were */
  loadAverage1m?: number;
};

export type PeerSettingResult = PeerSetting & { runs: PeerRun[]; medianRun: PeerRun };

export type PeerCase = PeerRun & {
  startedAt: string;
  command: string;
  seed: number;
  /** the setting whose median run had the highest events/s; its median run is this case */
  setting: PeerSetting;
  runsEventsPerSecond: number[];
  /** every setting tried, with every run */
  tried: PeerSettingResult[];
  versions: { connect: string; sink: string; converter: string };
  heapOptions: string;
  durability: Durability[];
};

/** A setting's shape; peer.json files from before the keyed shape hold ledger runs only. */
export const shapeOf = (setting: { shape?: PeerShape }): PeerShape => setting.shape ?? "ledger";

/** The shape's setting of the highest median events/s from connector start; undefined when not tried. */
export function bestOfShape(
  tried: readonly PeerSettingResult[],
  shape: PeerShape,
): PeerSettingResult | undefined {
  return tried
    .filter((t) => shapeOf(t) === shape)
    .reduce<PeerSettingResult | undefined>(
      (best, t) =>
        best === undefined || t.medianRun.eventsPerSecond > best.medianRun.eventsPerSecond ? t : best,
      undefined,
    );
}
