// One JSON document for scripts: bigints (offsets, amounts, counts) as decimal strings, exact where
// JSON numbers would round. Pure.
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v));
}
