// The fault tests' outages (withOutage) must not outlive their test: a body still waiting when its
// test times out goes on in the background, and once left the shared PostgreSQL stopped under every
// later test of the tier. Here a test times out mid-outage on purpose; the next one finds the
// server back, and the timed-out body can no longer stop anything.
import { afterEach, describe, expect, it } from "vitest";
import { restoreStack, stackEnv, withOutage } from "../support/stack.ts";

let restored: string[] = [];
afterEach(async () => {
  restored = await restoreStack();
});

async function registryStatus(): Promise<number | string> {
  try {
    const response = await fetch(`${stackEnv().TALLY_SCHEMA_REGISTRY_URL}/subjects`, {
      signal: AbortSignal.timeout(5_000),
    });
    return response.status;
  } catch (error) {
    return (error as Error).message;
  }
}

describe("an outage cut short by its test's timeout", () => {
  let lateSignal: AbortSignal | null = null;

  // Fails by design (its timeout): `fails` turns that into a pass, and any other outcome into a failure.
  it.fails("given a test whose body hangs mid-outage, when it times out", { timeout: 20_000 }, async ({
    signal,
  }) => {
    lateSignal = signal;
    await withOutage("registry", signal, async () => {
      expect(await registryStatus()).not.toBe(200); // the outage is real
      await new Promise(() => {}); // never settles: the body outlives its test
    });
  });

  it("then the next test finds the server serving again, and the old body cannot stop it", async () => {
    expect(restored).toEqual(["registry"]);
    expect(lateSignal?.aborted).toBe(true);
    expect(await registryStatus()).toBe(200);
    await expect(withOutage("registry", lateSignal!, async () => "ran")).rejects.toThrow(
      /abort|timed? ?out/i,
    );
    expect(await registryStatus()).toBe(200);
    expect(await restoreStack()).toEqual([]);
  });
});
