// The chart of a run (docs/bench/latest.svg): events/s per case, and the scaling series' events/s
// and peak RSS per process against size. Vega-Lite compiled to Vega, rendered to SVG headless.
// vega is loaded when a chart is drawn, not by every `tally` process that imports the bench module.
import type { TopLevelSpec } from "vega-lite";
import type { BenchResults } from "./report.ts";
import { mebibytes } from "./stats.ts";

type Panel = Extract<TopLevelSpec, { hconcat: unknown }>["hconcat"][number];
const panelSize = { width: 200, height: 180 };
const sizeAxis = { field: "events", type: "quantitative", scale: { type: "log" }, title: "events" } as const;

function casesPanel({ cases }: BenchResults): Panel {
  const { ceiling, naive, tally, replay, hotWallet } = cases;
  const values = [
    { case: "COPY alone", eventsPerSecond: ceiling.copyOnlyEventsPerSecond },
    { case: "ceiling: encode + COPY", eventsPerSecond: ceiling.eventsPerSecond },
    { case: "Tally apply-only", eventsPerSecond: tally.applyEventsPerSecond },
    { case: "Tally end to end", eventsPerSecond: tally.eventsPerSecond },
    { case: "replay", eventsPerSecond: replay.eventsPerSecond },
    { case: "hot wallet", eventsPerSecond: hotWallet.eventsPerSecond },
    { case: "naive (1 tx/event)", eventsPerSecond: naive.eventsPerSecond },
    ...(cases.peer
      ? [{ case: "peer: Connect + JDBC sink", eventsPerSecond: cases.peer.eventsPerSecond }]
      : []),
  ];
  return {
    title: "events/s by case",
    data: { values },
    width: 260,
    height: panelSize.height,
    encoding: {
      y: { field: "case", type: "nominal", sort: null, title: null, axis: { labelLimit: 220 } },
      x: { field: "eventsPerSecond", type: "quantitative", title: "events/s" },
    },
    layer: [
      { mark: { type: "bar" }, encoding: { color: { field: "case", type: "nominal", legend: null } } },
      {
        mark: { type: "text", align: "left", dx: 3 },
        encoding: { text: { field: "eventsPerSecond", type: "quantitative", format: "," } },
      },
    ],
  };
}

function throughputPanel({ cases }: BenchResults): Panel {
  return {
    title: "scaling: events/s (end to end)",
    data: { values: cases.scaling.map((p) => ({ events: p.events, eventsPerSecond: p.eventsPerSecond })) },
    ...panelSize,
    mark: { type: "line", point: true },
    encoding: { x: sizeAxis, y: { field: "eventsPerSecond", type: "quantitative", title: "events/s" } },
  };
}

function memoryPanel({ cases }: BenchResults): Panel {
  const values = cases.scaling.flatMap((p) =>
    Object.entries(p.peakRssBytes).map(([process, bytes]) => ({
      events: p.events,
      process,
      peakRssMiB: mebibytes(bytes),
    })),
  );
  return {
    title: "scaling: peak RSS per process",
    data: { values },
    ...panelSize,
    mark: { type: "line", point: true },
    encoding: {
      x: sizeAxis,
      y: { field: "peakRssMiB", type: "quantitative", title: "peak RSS (MiB)", scale: { zero: true } },
      color: { field: "process", type: "nominal", title: "process" },
    },
  };
}

export function chartSpec(r: BenchResults): TopLevelSpec {
  const durability = r.durability[0];
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `Tally bench ${r.startedAt.slice(0, 10)}`,
      subtitle: `fsync ${durability?.fsync}, synchronous_commit ${durability?.synchronousCommit}; ${r.machine.cpus} cores`,
      anchor: "start",
      offset: 16,
    },
    config: { font: "sans-serif", view: { stroke: null } },
    resolve: { scale: { color: "independent" } },
    hconcat: [casesPanel(r), throughputPanel(r), memoryPanel(r)],
  };
}

/** The chart as an SVG document. */
export async function renderChartSvg(r: BenchResults): Promise<string> {
  const [{ parse, View }, { compile }] = await Promise.all([import("vega"), import("vega-lite")]);
  const view = new View(parse(compile(chartSpec(r)).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
