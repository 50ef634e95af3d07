// bench-path: the applier's in-process path over the bench's load decides what the generator says
// a correct applier decides, and its table adds up.
import { describe, expect, it } from "vitest";
import { loadRecords } from "../../tools/bench/limit-plan.ts";
import { benchLoad } from "../../tools/bench/loads.ts";
import { framedLoad, runPath } from "../../tools/bench/path.ts";
import { pathRows } from "../../tools/bench/path-command.ts";

const load = benchLoad(3_000, 7, Date.UTC(2026, 10, 30));

function generatorSays() {
  const kinds = { applied: 0, duplicates: 0, rejected: 0 };
  for (const { kind } of loadRecords(load)) {
    if (kind === "applied") kinds.applied++;
    else if (kind === "duplicate") kinds.duplicates++;
    else kinds.rejected++;
  }
  return kinds;
}

describe("bench-path", () => {
  it("given the bench's load framed per partition, when counted, then every event is on its key's partition in offset order", () => {
    const perPartition = framedLoad(load, 6);
    expect(perPartition.reduce((sum, m) => sum + m.length, 0)).toBe(3_000);
    for (const messages of perPartition)
      expect(messages.map((m) => Number(m.offset))).toEqual([...messages.keys()]);
  });

  it("given the load, when run through decode, plan and encode in chunks, then the outcomes are the generator's and every phase took CPU", async () => {
    const expected = generatorSays();
    expect(expected.duplicates).toBeGreaterThan(0);
    expect(expected.rejected).toBeGreaterThan(0);
    // Chunks of 200: re-sends of events applied in an earlier chunk are found through the
    // applied ids, as the shard's look-up finds them in the applier.
    const result = await runPath(load, { partitions: 6, chunkEventsMax: 200, passes: 2 });
    expect(result.events).toBe(3_000);
    expect(result.passesTimed).toBe(1);
    expect(result.counted).toEqual(expected);
    for (const ns of Object.values(result.nsPerEvent)) expect(ns).toBeGreaterThan(0);
  });

  it("given phase figures, when tabled, then shares and the total follow from them", () => {
    const rows = pathRows({
      events: 10,
      passesTimed: 1,
      nsPerEvent: { records: 100, decode: 300, plan: 400, encode: 200 },
      counted: { applied: 10, duplicates: 0, rejected: 0 },
    });
    expect(rows.map((r) => r.slice(1))).toEqual([
      ["100", "10 %", "10,000,000"],
      ["300", "30 %", "3,333,333"],
      ["400", "40 %", "2,500,000"],
      ["200", "20 %", "5,000,000"],
      ["1000", "100 %", "1,000,000"],
    ]);
  });
});
