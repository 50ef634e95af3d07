// Day-partition routing under a time zone that is not UTC: a row's day, the partition's name and its
// bounds must all be the UTC day, whatever TZ the process runs with. The expected names and bounds
// are written out by hand, not computed by the code under test.
import { afterAll, describe, expect, it } from "vitest";
import { createPartitionSql, dayOf, partitionNameOf } from "../../services/storage/partitions.ts";

// Node re-reads TZ when it is assigned; restored afterwards for whatever runs next in this worker.
const zoneBefore = process.env.TZ;
afterAll(() => {
  if (zoneBefore === undefined) delete process.env.TZ;
  else process.env.TZ = zoneBefore;
});

/** `FROM ('…') TO ('…')` of a CREATE TABLE … PARTITION OF statement. */
function boundsOf(sql: string): [string, string] {
  const match = /FROM \('([^']+)'\) TO \('([^']+)'\)/.exec(sql);
  expect(match).not.toBeNull();
  return [match![1]!, match![2]!];
}

/** A bound as PostgreSQL reads it, "YYYY-MM-DD 00:00:00+00", to epoch milliseconds (UTC). */
function boundMs(bound: string): number {
  const match = /^(\d{4,5})-(\d{2})-(\d{2}) 00:00:00\+00$/.exec(bound);
  expect(match).not.toBeNull();
  return Date.UTC(Number(match![1]), Number(match![2]) - 1, Number(match![3]));
}

// Rows at the first and the last millisecond of UTC days, each with the partition it belongs in.
const rows = [
  ["2026-11-22T00:00:00.000Z", "transfers_20261122", "2026-11-22 00:00:00+00", "2026-11-23 00:00:00+00"],
  ["2026-11-22T23:59:59.999Z", "transfers_20261122", "2026-11-22 00:00:00+00", "2026-11-23 00:00:00+00"],
  ["2026-12-31T23:59:59.999Z", "transfers_20261231", "2026-12-31 00:00:00+00", "2027-01-01 00:00:00+00"],
  ["2027-01-01T00:00:00.000Z", "transfers_20270101", "2027-01-01 00:00:00+00", "2027-01-02 00:00:00+00"],
  ["2028-02-29T23:59:59.999Z", "transfers_20280229", "2028-02-29 00:00:00+00", "2028-03-01 00:00:00+00"],
  ["1970-01-01T00:00:00.000Z", "transfers_19700101", "1970-01-01 00:00:00+00", "1970-01-02 00:00:00+00"],
  ["9999-12-31T23:59:59.999Z", "transfers_99991231", "9999-12-31 00:00:00+00", "10000-01-01 00:00:00+00"],
] as const;

// Far east and far west of UTC, one with a half-hour offset: local midnight is never UTC midnight.
describe.each([
  ["Pacific/Kiritimati", -14 * 60],
  ["America/St_Johns", 3.5 * 60],
])("day partitions with TZ=%s", (zone, offsetMinutes) => {
  it("given the zone, when a date is read, then the process really runs in it (so the rows below are a test)", () => {
    process.env.TZ = zone;
    // January: no daylight saving time in either zone.
    expect(new Date(Date.UTC(2026, 0, 15)).getTimezoneOffset()).toBe(offsetMinutes);
  });

  it.each(rows)(
    "given a row at %s, when routed, then it lands in %s, bounded by %s and %s",
    (at, name, from, to) => {
      process.env.TZ = zone;
      const rowMs = Date.parse(at);
      const day = dayOf(rowMs);
      expect(partitionNameOf(day)).toBe(name);
      const sql = createPartitionSql(day);
      expect(sql).toContain(`CREATE TABLE IF NOT EXISTS ${name} PARTITION OF transfers`);
      expect(boundsOf(sql)).toEqual([from, to]);
      // The row lies in [from, to): the bounds are the ones PostgreSQL will route it by.
      expect(boundMs(from)).toBeLessThanOrEqual(rowMs);
      expect(rowMs).toBeLessThan(boundMs(to));
    },
  );

  it("given the last millisecond of a day and the first of the next, when routed, then they land in neighbouring partitions", () => {
    process.env.TZ = zone;
    const lastMs = Date.UTC(2026, 5, 30, 23, 59, 59, 999);
    expect([partitionNameOf(dayOf(lastMs)), partitionNameOf(dayOf(lastMs + 1))]).toEqual([
      "transfers_20260630",
      "transfers_20260701",
    ]);
  });
});
