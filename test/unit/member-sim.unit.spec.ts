// The seeded simulation of ApplierMember (test/support/sim/simulation.ts): per seed, two or more
// members over a scripted topic, group and store, checked after every step against the pure model.
//
//   default                       fixed seeds, sized for `make test`
//   TALLY_TEST_SIM_SEEDS=N        N seeds, from TALLY_TEST_SIM_BASE_SEED (default 1)
//   TALLY_TEST_SIM_SEED=S         seed S alone (what a failure prints)
//   TALLY_TEST_SIM_STEPS=K        chaos steps per seed (default 700)
//   TALLY_TEST_SIM_WINDOW_REUSE_MS=M  Kafka's log answers reused for M simulated ms (KafkaLog: 500)
// `make fuzz SEEDS=N [SEED=S]` runs N seeds from S (random unless given).
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Prng } from "../support/sim/prng.ts";
import { type SimResult, Simulation } from "../support/sim/simulation.ts";

function envInteger(name: string): number | undefined {
  const text = process.env[name]?.trim();
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value))
    throw new Error(`${name} must be an integer, got ${JSON.stringify(text)}`);
  return value;
}

const defaultSeeds = 200;
const single = envInteger("TALLY_TEST_SIM_SEED");
const count = envInteger("TALLY_TEST_SIM_SEEDS") ?? defaultSeeds;
const base = envInteger("TALLY_TEST_SIM_BASE_SEED") ?? 1;
const chaosSteps = envInteger("TALLY_TEST_SIM_STEPS") ?? 700;
/** KafkaLog reuses one answer for 500 ms; the default here is a fresh answer at every call. */
const windowReuseMs = envInteger("TALLY_TEST_SIM_WINDOW_REUSE_MS") ?? 0;
const seeds = single !== undefined ? [single] : Array.from({ length: count }, (_, k) => base + k);

beforeEach(() => {
  // Only the timers: every wait of the member (backoffs, resume after a pause) is on simulated time.
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const clock = {
  async advance(ms: number) {
    await vi.advanceTimersByTimeAsync(ms);
    await new Promise((resolve) => setImmediate(resolve)); // every promise chain settled
  },
};

async function simulate(seed: number): Promise<SimResult> {
  const jitter = new Prng(seed ^ 0x51_7e_ed);
  vi.spyOn(Math, "random").mockImplementation(() => jitter.float()); // backoff jitter, seeded too
  return new Simulation(seed, clock, chaosSteps, windowReuseMs).run();
}

/** Totals over the seeds of this run, printed at the end: what the simulation went through. */
const totals: Record<string, number> = {};
afterAll(() => {
  if (seeds.length < 2) return;
  const text = Object.entries(totals)
    .map(([name, n]) => `${name} ${n}`)
    .join(", ");
  console.info(`member simulation, ${seeds.length} seeds from ${seeds[0]}: ${text}`);
});

describe("ApplierMember simulation", () => {
  it.each(seeds)(
    "given seed %i, when members apply through rebalances, held loads and writes, failures and a re-created topic, then the store always equals the model and every partition ends caught up or stopped",
    async (seed) => {
      const result = await simulate(seed);
      totals.recreated = (totals.recreated ?? 0) + (result.recreated ? 1 : 0);
      for (const [name, n] of Object.entries(result.counts)) totals[name] = (totals[name] ?? 0) + n;
      if (result.failure !== null) console.error(result.failure);
      expect(result.failure, `seed ${seed}: rerun alone with TALLY_TEST_SIM_SEED=${seed}`).toBeNull();
    },
    120_000,
  );

  it("given one seed run twice, then both runs are the same, step for step", async () => {
    const first = await simulate(seeds[0]!);
    vi.restoreAllMocks();
    const second = await simulate(seeds[0]!);
    expect(second).toEqual(first);
  }, 120_000);
});
