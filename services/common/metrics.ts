// Prometheus metrics and liveness/readiness over HTTP (TALLY_METRICS_PORT, 0 = off).
import { createServer, type Server } from "node:http";
import client from "prom-client";

export const metricsRegistry = new client.Registry();
client.collectDefaultMetrics({ register: metricsRegistry });

const phaseBucketsSeconds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const phaseSeconds = new client.Histogram({
  name: "tally_phase_seconds",
  help: "Time per batch spent in each phase (decode, validate, write, commit, project)",
  labelNames: ["phase"] as const,
  buckets: phaseBucketsSeconds,
  registers: [metricsRegistry],
});
export const recordsTotal = new client.Counter({
  name: "tally_records_total",
  help: "Consumed records by outcome (applied, duplicate, rejected) and rejection reason",
  labelNames: ["outcome", "reason"] as const,
  registers: [metricsRegistry],
});
export const batchEvents = new client.Histogram({
  name: "tally_batch_events",
  help: "Records per applied batch",
  buckets: [1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000],
  registers: [metricsRegistry],
});
export const retriesTotal = new client.Counter({
  name: "tally_retries_total",
  help: "Retries of transient failures by cause",
  labelNames: ["cause"] as const,
  registers: [metricsRegistry],
});
export const consumerLag = new client.Gauge({
  name: "tally_consumer_lag_records",
  help: "High watermark minus the stored next offset, per partition",
  labelNames: ["partition"] as const,
  registers: [metricsRegistry],
});
export const projectorLag = new client.Gauge({
  name: "tally_projector_lag_records",
  help: "Applier next offset minus the projector checkpoint, per partition",
  labelNames: ["partition"] as const,
  registers: [metricsRegistry],
});

export type Health = { live: () => boolean; ready: () => boolean };

/** Serves /metrics, /health/live and /health/ready on 127.0.0.1 unless port is 0. */
export async function serveMetrics(port: number, health: Health, host = "127.0.0.1"): Promise<Server | null> {
  if (port === 0) return null;
  const server = createServer(async (request, response) => {
    const answer = (ok: boolean) => {
      response.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "not ready\n");
    };
    if (request.url === "/metrics") {
      response.writeHead(200, { "content-type": metricsRegistry.contentType });
      response.end(await metricsRegistry.metrics());
    } else if (request.url === "/health/live") answer(health.live());
    else if (request.url === "/health/ready") answer(health.ready());
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  return server;
}
