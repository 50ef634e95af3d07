// Sends chunks of events in order, a bounded number in flight, and survives a failed send: every
// chunk not yet confirmed is sent again, in order, on a new producer. A send can fail after some of
// its records landed (a broker killed mid-request, or kafkajs answering without a result for a
// partition whose leader moved): their second copies reach the applier as duplicates by transfer id
// (a copy of a double spend is rejected again), so nothing is lost and nothing takes effect twice.
import { assert } from "../common/assert.ts";
import type { TransferEvent } from "../common/event.ts";
import { sleep } from "../common/retry.ts";
import type { SendResult } from "./producer.ts";

/** The part of TransferProducer this needs; a new one is made after a failure. */
export type ChunkProducer = {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(events: readonly TransferEvent[]): Promise<SendResult[]>;
};

export type ResendPolicy = {
  /** chunks sent but not yet confirmed */
  inFlightMax: number;
  /** new producers after failures, over the whole run */
  resendsMax: number;
  /** wait before the n-th new producer: n times this (a broker's leadership takes seconds to move) */
  backoffMs: number;
  /** told of each failure that is resent */
  onResend?: (error: unknown, events: number, resend: number) => void;
};

type Pending = { chunk: readonly TransferEvent[]; sending: Promise<SendResult[]> };

export class ResendingSender<P extends ChunkProducer> {
  /** events sent again after a failure: at most this many extra copies reached the topic */
  resentEvents = 0;
  resends = 0;
  private producer: P | null = null;
  private readonly pending: Pending[] = [];
  private readonly createProducer: () => P;
  private readonly policy: ResendPolicy;

  constructor(createProducer: () => P, policy: ResendPolicy) {
    assert(policy.inFlightMax >= 1 && policy.resendsMax >= 0, "a sane resend policy");
    this.createProducer = createProducer;
    this.policy = policy;
  }

  /** The producer in use (its topic, schema id and partition count stay the same across resends). */
  get current(): P {
    assert(this.producer !== null, "connected before use");
    return this.producer;
  }

  async connect(): Promise<void> {
    const producer = this.createProducer();
    await producer.connect();
    this.producer = producer;
  }

  /** Queues a chunk; returns the results of the chunks confirmed meanwhile, oldest first. */
  async send(chunk: readonly TransferEvent[]): Promise<SendResult[][]> {
    this.pending.push({ chunk, sending: this.issue(chunk) });
    const confirmed: SendResult[][] = [];
    while (this.pending.length >= this.policy.inFlightMax) confirmed.push(await this.confirmOldest());
    return confirmed;
  }

  /** Waits for every chunk still in flight; their results, oldest first. */
  async flush(): Promise<SendResult[][]> {
    const confirmed: SendResult[][] = [];
    while (this.pending.length > 0) confirmed.push(await this.confirmOldest());
    return confirmed;
  }

  async disconnect(): Promise<void> {
    await this.producer?.disconnect();
    this.producer = null;
  }

  private issue(chunk: readonly TransferEvent[]): Promise<SendResult[]> {
    const sending = this.current.send(chunk);
    sending.catch(() => {}); // awaited in confirmOldest; this only keeps a failure from going unhandled
    return sending;
  }

  private async confirmOldest(): Promise<SendResult[]> {
    for (;;) {
      const oldest = this.pending[0]!;
      try {
        const results = await oldest.sending;
        this.pending.shift();
        return results;
      } catch (error) {
        if (this.resends >= this.policy.resendsMax) throw error;
        await this.replaceProducer(error);
      }
    }
  }

  /** A failed producer refuses everything after its failure, so every pending chunk goes again. */
  private async replaceProducer(error: unknown): Promise<void> {
    this.resends++;
    const events = this.pending.reduce((sum, p) => sum + p.chunk.length, 0);
    this.policy.onResend?.(error, events, this.resends);
    await this.producer?.disconnect().catch(() => {});
    this.producer = null;
    await sleep(this.policy.backoffMs * this.resends);
    await this.connect();
    this.resentEvents += events;
    for (const p of this.pending) p.sending = this.issue(p.chunk);
  }
}
