// The projector's rest after a round (services/projector/projector.ts restMsAfter): a share of the
// round's own duration when it moved rows and took everything pending, nothing otherwise, never
// more than 5 s.
import { describe, expect, it } from "vitest";
import { restMsAfter } from "../../services/projector/projector.ts";

const round = (projectMs: number, rows: number, level = true) => ({ projectMs, rows, level });

describe("restMsAfter", () => {
  it("given a level round that moved rows, when the rest is 100 %, then it rests as long as the round took", () => {
    expect(restMsAfter(round(120, 3_000), 100)).toBe(120);
  });

  it("given other percentages, when a level round of 80 ms moved rows, then the rest scales with them", () => {
    expect(restMsAfter(round(80, 1), 50)).toBe(40);
    expect(restMsAfter(round(80, 1), 250)).toBe(200);
    expect(restMsAfter(round(80, 1), 1_000)).toBe(800);
  });

  it("given an idle round (no rows), when it took long, then there is no rest: the poll or a NOTIFY decides", () => {
    expect(restMsAfter(round(900, 0), 100)).toBe(0);
  });

  it("given a round bounded by TALLY_PROJECT_DELTAS_MAX (not level: a backlog), when it moved rows, then the next round starts at once", () => {
    expect(restMsAfter(round(900, 50_000, false), 100)).toBe(0);
  });

  it("given a rest of 0 %, when a level round moved rows, then the next round may start at once (the behaviour before the rest)", () => {
    expect(restMsAfter(round(900, 50_000), 0)).toBe(0);
  });

  it("given a very long round, when the rest would exceed 5 s, then it is 5 s", () => {
    expect(restMsAfter(round(4_000, 50_000), 1_000)).toBe(5_000);
    expect(restMsAfter(round(5_001, 50_000), 100)).toBe(5_000);
  });
});
