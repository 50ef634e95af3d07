// Prometheus: the registry, what every process records (tally_build_info, retries by cause), and
// liveness/readiness over HTTP (TALLY_METRICS_PORT, 0 = off). Each service's own metrics are in its
// folder, named after it (tally_applier_*, tally_projector_*, tally_dlq_*): services/applier/metrics.ts,
// services/projector/metrics.ts, services/dlq/metrics.ts. One registry per process: `apply`,
// `project` and `dlq-relay` are separate processes, so Prometheus tells them apart by target
// (job/pod), and a metric carries only the labels that vary inside one process.
import type { Server } from "node:http";
import client from "prom-client";
import type { Config } from "./config.ts";
import { tallyVersion } from "./version.ts";

export const metricsRegistry = new client.Registry();
client.collectDefaultMetrics({ register: metricsRegistry });

// From 0.5 ms (decoding a small batch) to 30 s (a commit stalled behind a failover).
export const phaseBucketsSeconds = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

export const retryCauses = ["registry", "database", "kafka"] as const;
export type RetryCause = (typeof retryCauses)[number];

/** Always 1: the version as a label, so a dashboard can count processes and tell releases apart. */
export const buildInfo = new client.Gauge({
  name: "tally_build_info",
  help: "Always 1; the running Tally version in the version label",
  labelNames: ["version"] as const,
  registers: [metricsRegistry],
});
buildInfo.set({ version: tallyVersion }, 1);
export const retriesTotal = new client.Counter({
  name: "tally_retries_total",
  help: "Retries of transient failures by cause (registry, database, kafka: a consumer restart)",
  labelNames: ["cause"] as const,
  registers: [metricsRegistry],
});
/** The cause of a transient failure: a TransientError says its source; anything else came from pg. */
export function retryCauseOf(error: unknown): RetryCause {
  const source = (error as { source?: unknown } | null)?.source;
  return retryCauses.includes(source as RetryCause) ? (source as RetryCause) : "database";
}

export type Health = { live: () => boolean; ready: () => boolean };

/** Where the metrics server binds: 127.0.0.1 unless TALLY_METRICS_HOST says otherwise (a pod: 0.0.0.0). */
export function metricsHostOf(config: Config): string {
  return config.TALLY_METRICS_HOST;
}

export type MetricsServer = { port: number; close: () => Promise<void> };

/** Serves /metrics, /health/live and /health/ready, or nothing when port is 0. */
export async function serveMetrics(
  port: number,
  health: Health,
  host = "127.0.0.1",
): Promise<MetricsServer | null> {
  if (port === 0) return null;
  // Taken with getBuiltinModule, not imported: an ES import of node:http makes Node build its ES
  // facade, which reads every export and so loads the bundled undici (40 to 60 ms of CPU at every
  // process start, measured with Node 24.21; a start-up figure make bench charges to every event).
  const { createServer } = process.getBuiltinModule("node:http");
  const server = createServer((request, response) => {
    const answer = (ok: boolean, no: string) => {
      response.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : `${no}\n`);
    };
    const path = (request.url ?? "").split("?")[0];
    if (path === "/metrics") {
      metricsRegistry.metrics().then(
        (text) => response.writeHead(200, { "content-type": metricsRegistry.contentType }).end(text),
        (error: Error) => response.writeHead(500).end(`${error.message}\n`),
      );
    } else if (path === "/health/live") answer(health.live(), "not live");
    else if (path === "/health/ready") answer(health.ready(), "not ready");
    else response.writeHead(404).end();
  });
  await listen(server, port, host);
  const address = server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        // A scraper's keep-alive connection would hold the process open past its drain.
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      const why =
        error.code === "EADDRINUSE" ? "is taken (another apply or project on this host?)" : "failed";
      reject(new Error(`TALLY_METRICS_PORT=${port}: listening on ${host}:${port} ${why}`, { cause: error }));
    });
    server.listen(port, host, resolve);
  });
}
