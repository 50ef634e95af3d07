// Pure arithmetic of the benchmark: rates, percentiles, ratios. No I/O, so it is unit tested alone.

/** Events per second, rounded; 0 when nothing was timed. */
export function eventsPerSecondOf(events: number, elapsedMs: number): number {
  if (!(elapsedMs > 0) || !(events >= 0)) return 0;
  return Math.round((events * 1000) / elapsedMs);
}

/**
 * The p-th percentile (0..100) by the nearest-rank method: the smallest value such that at least p %
 * of the values are at or below it. NaN for no values.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError("a percentile is from 0 to 100");
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export type Distribution = { count: number; p50: number; p99: number; max: number; mean: number };

/** p50, p99, max and mean, each rounded to 0.1; zeros for no values. */
export function distributionOf(values: readonly number[]): Distribution {
  if (values.length === 0) return { count: 0, p50: 0, p99: 0, max: 0, mean: 0 };
  const round = (x: number) => Math.round(x * 10) / 10;
  const sum = values.reduce((a, b) => a + b, 0);
  return {
    count: values.length,
    p50: round(percentile(values, 50)),
    p99: round(percentile(values, 99)),
    max: round(Math.max(...values)),
    mean: round(sum / values.length),
  };
}

/** a ÷ b to three significant decimals; null when either side is missing or b is zero. */
export function ratioOf(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return Math.round((a / b) * 1000) / 1000;
}

/** "1e4,1e5,100000" → [10000, 100000, 100000]; throws on anything that is not a positive integer. */
export function parseSizes(text: string): number[] {
  const sizes = text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map((part) => Number(part));
  if (sizes.length === 0 || sizes.some((n) => !Number.isSafeInteger(n) || n < 1))
    throw new RangeError(`sizes must be positive integers such as 1e4,1e5: ${JSON.stringify(text)}`);
  return sizes;
}

/** Peak RSS readings (bytes) → MiB with one decimal, for tables and charts. */
/** CPU seconds and the like, to two decimals for the report. */
export const hundredths = (value: number) => Math.round(value * 100) / 100;

export const mebibytes = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** Whether memory stayed flat: the largest run's peak at most `tolerance` × the smallest run's. */
export function isFlat(peaksBytes: readonly number[], tolerance = 1.5): boolean {
  const positive = peaksBytes.filter((b) => b > 0);
  if (positive.length < 2) return true;
  return Math.max(...positive) <= tolerance * positive[0]!;
}

/** The index of the median value (the lower one of an even count); -1 for none. */
export function medianIndex(values: readonly number[]): number {
  if (values.length === 0) return -1;
  const order = values.map((value, index) => ({ value, index })).sort((a, b) => a.value - b.value);
  return order[Math.floor((order.length - 1) / 2)]!.index;
}
