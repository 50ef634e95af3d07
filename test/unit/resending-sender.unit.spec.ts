// ResendingSender on a scripted producer: which chunks each producer saw, in which order, and what
// the caller got back. The real producer against Kafka is covered by the fault tests.
import { describe, expect, it } from "vitest";
import type { TransferEvent } from "../../services/common/event.ts";
import type { SendResult } from "../../services/producer/producer.ts";
import { type ChunkProducer, ResendingSender } from "../../services/producer/resending-sender.ts";
import { mintOf } from "../support/events.ts";

/** Producers that record what they were sent; `failOn` makes the n-th send overall fail once. */
function scriptedProducers(failOn: Set<number>) {
  const log: { producer: number; tokens: string[] }[] = [];
  let sends = 0;
  let made = 0;
  const create = (): ChunkProducer => {
    const id = ++made;
    let failed = false;
    return {
      connect: async () => {},
      disconnect: async () => {},
      send: async (events: readonly TransferEvent[]): Promise<SendResult[]> => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        const n = ++sends;
        // Like TransferProducer: after a failure, every later send on this producer is refused.
        if (failed || failOn.has(n)) {
          failed = true;
          throw new Error(failOn.has(n) ? "no answer for partition 3" : "an earlier send failed");
        }
        log.push({ producer: id, tokens: events.map((e) => e.token_id) });
        return events.map((_, k) => ({ ok: true, partition: 0, offset: String(k) }) as SendResult);
      },
    };
  };
  return { create, log, made: () => made };
}

const chunkOf = (k: number) => [mintOf({ token_id: `t${k}a` }), mintOf({ token_id: `t${k}b` })];
const policy = { inFlightMax: 2, resendsMax: 3, backoffMs: 0 };

async function sendAll(sender: ResendingSender<ChunkProducer>, chunks: number): Promise<string[][]> {
  const confirmed: SendResult[][] = [];
  await sender.connect();
  for (let k = 0; k < chunks; k++) confirmed.push(...(await sender.send(chunkOf(k))));
  confirmed.push(...(await sender.flush()));
  return confirmed.map((results) => results.map((r) => (r.ok ? r.offset : "refused")));
}

describe("ResendingSender", () => {
  it("given no failure, when chunks are sent, then one producer sends each once, in order, and all are confirmed", async () => {
    const script = scriptedProducers(new Set());
    const sender = new ResendingSender(script.create, policy);
    const confirmed = await sendAll(sender, 5);
    expect(confirmed).toHaveLength(5);
    expect(script.made()).toBe(1);
    expect(script.log.map((l) => l.tokens[0])).toEqual(["t0a", "t1a", "t2a", "t3a", "t4a"]);
    expect(sender.resentEvents).toBe(0);
  });

  it("given the third send fails, when chunks flow, then a new producer sends every unconfirmed chunk again, in order", async () => {
    const script = scriptedProducers(new Set([3]));
    const sender = new ResendingSender(script.create, policy);
    const confirmed = await sendAll(sender, 5);
    expect(confirmed).toHaveLength(5);
    expect(script.made()).toBe(2);
    // Chunks 0 and 1 landed on the first producer; 2 failed and 3 was refused after it: both go again.
    expect(script.log).toEqual([
      { producer: 1, tokens: ["t0a", "t0b"] },
      { producer: 1, tokens: ["t1a", "t1b"] },
      { producer: 2, tokens: ["t2a", "t2b"] },
      { producer: 2, tokens: ["t3a", "t3b"] },
      { producer: 2, tokens: ["t4a", "t4b"] },
    ]);
    expect(sender.resends).toBe(1);
    expect(sender.resentEvents).toBe(4);
  });

  it("given more failures than the policy allows, when sending, then the last failure reaches the caller", async () => {
    const script = scriptedProducers(new Set([1, 3, 5, 7]));
    const sender = new ResendingSender(script.create, { ...policy, resendsMax: 2 });
    await expect(sendAll(sender, 3)).rejects.toThrow("no answer for partition 3");
    expect(sender.resends).toBe(2);
    expect(script.made()).toBe(3);
  });
});
