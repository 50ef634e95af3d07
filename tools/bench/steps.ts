// The bench's numbered steps (a line before and after each, on stderr) and its repeated runs,
// of which the median counts.
import type { Repeated } from "./report.ts";
import { medianIndex } from "./stats.ts";

export type Step = <T>(name: string, work: () => Promise<T>) => Promise<T>;

/** Runs `work` as a numbered step, with a line before and after. */
export function stepper(log: (line: string) => void, total: number): Step {
  let index = 0;
  return async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    index += 1;
    log(`bench: [${index}/${total}] ${name}`);
    const startedMs = performance.now();
    const result = await work();
    log(
      `bench: [${index}/${total}] ${name} done in ${((performance.now() - startedMs) / 1000).toFixed(1)} s`,
    );
    return result;
  };
}

/** The run of median events/s, with every run's rate beside it. */
export function medianOf<T extends { eventsPerSecond: number }>(runs: T[]): Repeated<T> {
  const rates = runs.map((r) => r.eventsPerSecond);
  return { ...runs[medianIndex(rates)]!, runsEventsPerSecond: rates };
}

/** Runs `once` `repeat` times; the median run. */
export async function repeated<T extends { eventsPerSecond: number }>(
  repeat: number,
  once: (label: string) => Promise<T>,
): Promise<Repeated<T>> {
  const runs: T[] = [];
  for (let k = 1; k <= repeat; k++) runs.push(await once(repeat > 1 ? ` (run ${k} of ${repeat})` : ""));
  return medianOf(runs);
}
