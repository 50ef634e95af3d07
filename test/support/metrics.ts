// Prometheus scrapes of Tally's processes, read strictly: a series that is not there is an error,
// never a 0 (every label value Tally plots is initialised at 0, so a missing one is a renamed or
// lost metric).
import { expect } from "vitest";
import { waitUntil } from "./wait.ts";

export type Sample = { name: string; labels: Record<string, string>; value: number };

/** The Prometheus text format, one sample per line: name{label="value",...} number. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

export async function scrape(port: number): Promise<Sample[]> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  return parseMetrics(await response.text());
}

/** The HTTP status of a path of the metrics server; 0 when nothing answers (not serving yet). */
export const httpStatus = async (port: number, path: string): Promise<number> =>
  fetch(`http://127.0.0.1:${port}${path}`).then(
    (r) => r.status,
    () => 0,
  );

/** The one sample of `name` whose labels include `labels`; fails when there is none or several. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length !== 1)
    throw new Error(
      `${name}${JSON.stringify(labels)}: ${found.length} samples in the scrape, expected exactly 1`,
    );
  return found[0]!.value;
}

/** Polls fresh scrapes until `check` holds; returns the scrape it held on. */
export async function scrapeUntil(
  port: number,
  what: string,
  check: (s: Sample[]) => boolean,
): Promise<Sample[]> {
  return waitUntil(
    what,
    async () => {
      const samples = await scrape(port).catch(() => null);
      return samples !== null && check(samples) ? samples : false;
    },
    { intervalMs: 200 },
  );
}

/** Waits until /health/ready answers 200. */
export async function waitReady(port: number): Promise<void> {
  await waitUntil(`port ${port} ready`, async () => (await httpStatus(port, "/health/ready")) === 200, {
    intervalMs: 50,
  });
}
