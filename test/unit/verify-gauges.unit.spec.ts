// The verify gauges say nothing until a verify run is known: a 0 would read as "verify failed".
import { describe, expect, it } from "vitest";
import { metricsRegistry } from "../../services/common/metrics.ts";
import { verifyLastOk, verifyLastSuccess } from "../../services/projector/metrics.ts";

const samplesOf = async (name: string) =>
  (await metricsRegistry.getSingleMetricAsString(name)).split("\n").filter((l) => l.startsWith(name));

describe("verify gauges", () => {
  it("given no verify run known, when scraped, then tally_verify_last_ok has no sample", async () => {
    verifyLastOk.reset();
    verifyLastSuccess.reset();
    expect(await samplesOf("tally_verify_last_ok")).toEqual([]);
    expect(await samplesOf("tally_verify_last_success_timestamp_seconds")).toEqual([]);
  });

  it("given a passing run of topic t, when set and scraped, then one sample 1 labelled with the topic", async () => {
    verifyLastOk.set({ topic: "t" }, 1);
    expect(await samplesOf("tally_verify_last_ok")).toEqual(['tally_verify_last_ok{topic="t"} 1']);
    verifyLastOk.reset();
  });
});
