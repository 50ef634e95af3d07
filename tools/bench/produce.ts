// Producing for the bench: chunks of generated events through the project's own TransferProducer,
// at full speed (pre-filling a topic, not timed) or paced at a steady rate, with every chunk's send
// time and placements handed to the caller (the latency case samples them).
import { assert } from "../../services/common/assert.ts";
import type { Config } from "../../services/common/config.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { sleep } from "../../services/common/retry.ts";
import { problemsText, type SendResult, TransferProducer } from "../../services/producer/producer.ts";

export type SentChunk = {
  /** performance.now() when send() was called for the chunk */
  calledMs: number;
  /** the highest offset of the chunk in each partition it touched */
  lastOffsets: Map<number, bigint>;
  events: number;
};

export type ProduceOptions = {
  rateEventsPerSecond?: number;
  onSent?: (chunk: SentChunk) => void;
  /** stop after this many ms of pacing (the rest of the load is not sent) */
  durationMsMax?: number;
};

export type ProduceResult = { sent: number; elapsedMs: number; highWatermarks: Map<number, bigint> };

const sendsInFlightMax = 2;

function lastOffsetsOf(results: SendResult[]): Map<number, bigint> {
  const last = new Map<number, bigint>();
  for (const result of results) {
    assert(result.ok, `generated event refused: ${result.ok ? "" : problemsText(result.problems)}`);
    const offset = BigInt(result.offset);
    if ((last.get(result.partition) ?? -1n) < offset) last.set(result.partition, offset);
  }
  return last;
}

/** Sends every chunk in order; with a rate, paced so that the sum sent tracks rate × time. */
export async function produceChunks(
  config: Config,
  chunks: Iterable<TransferEvent[]>,
  options: ProduceOptions = {},
): Promise<ProduceResult> {
  const producer = new TransferProducer(config, { clientIdSuffix: "bench" });
  await producer.connect();
  const highWatermarks = new Map<number, bigint>();
  const startedMs = performance.now();
  let sent = 0;
  let generated = 0;
  const inFlight: Promise<void>[] = [];
  const rate = options.rateEventsPerSecond;
  try {
    for (const chunk of chunks) {
      if (options.durationMsMax !== undefined && performance.now() - startedMs >= options.durationMsMax)
        break;
      const calledMs = performance.now();
      const sending = producer.send(chunk).then((results) => {
        const lastOffsets = lastOffsetsOf(results);
        for (const [p, o] of lastOffsets)
          if ((highWatermarks.get(p) ?? -1n) <= o) highWatermarks.set(p, o + 1n);
        sent += results.length;
        options.onSent?.({ calledMs, lastOffsets, events: results.length });
      });
      sending.catch(() => {}); // awaited below; this only keeps a failure from going unhandled early
      inFlight.push(sending);
      generated += chunk.length;
      if (inFlight.length >= sendsInFlightMax) await inFlight.shift();
      const aheadMs = rate ? startedMs + (generated / rate) * 1000 - performance.now() : 0;
      if (aheadMs > 0) await sleep(aheadMs);
    }
    for (const sending of inFlight) await sending;
  } finally {
    await producer.disconnect();
  }
  return { sent, elapsedMs: performance.now() - startedMs, highWatermarks };
}
