// The scripted world of ApplierMember's unit tests: a store holding applier_offsets in memory with
// the real compare-and-set (loads can be held open, applies can fail as scripted), a log whose
// windows a test sets, a consumer of spies, and eachBatch payloads of spies.
import { vi } from "vitest";
import type { ChunkResult, RawRecord } from "../../../services/applier/apply-chunk.ts";
import { incarnationProblem, type LogWindow } from "../../../services/applier/incarnation.ts";
import { ApplierMember } from "../../../services/applier/member.ts";
import type { PartitionState } from "../../../services/applier/partition-state.ts";
import { type ChunkPlan, emptyChunkPlan } from "../../../services/applier/plan.ts";
import type { LogInspector, PartitionStore } from "../../../services/applier/store.ts";
import { OffsetFenceError } from "../../../services/applier/write.ts";
import {
  batchOf,
  type Deferred,
  opaqueRecord,
  type ScriptedPayload,
  silentLogger,
  viewAt,
} from "./scripted.ts";

export const topic = "transfers";
export const topicIdA = "topic-id-A";

/** applier_offsets in memory, with the real compare-and-set; loads can be held open. */
export class ScriptedStore implements PartitionStore {
  readonly stored = new Map<number, bigint>();
  topicId: string | null = topicIdA;
  readonly loads: { partition: number; window: LogWindow; view: PartitionState }[] = [];
  readonly loadGates = new Map<number, Deferred>();
  readonly applies: { partition: number; view: PartitionState; expected: bigint; offsets: bigint[] }[] = [];
  /** Thrown by the next apply calls, first first; `forever` by every one after them. */
  readonly applyFailures: Error[] = [];
  forever: Error | null = null;

  async load(partition: number, window: LogWindow): Promise<PartitionState> {
    const gate = this.loadGates.get(partition);
    if (gate !== undefined) await gate.promise;
    const nextOffset = this.stored.get(partition) ?? window.lowOffset;
    this.stored.set(partition, nextOffset);
    const problem = incarnationProblem({ topic, partition }, { nextOffset, topicId: this.topicId }, window);
    if (problem !== null) throw problem; // as the real store's load does
    const view = viewAt(nextOffset, this.topicId);
    this.loads.push({ partition, window, view });
    return view;
  }

  async apply(partition: number, view: PartitionState, chunk: readonly RawRecord[]): Promise<ChunkResult> {
    const expected = view.nextOffset!;
    this.applies.push({ partition, view, expected, offsets: chunk.map((r) => r.offset) });
    const failure = this.applyFailures.shift() ?? this.forever;
    if (failure !== null) throw failure;
    if (this.stored.get(partition) !== expected) throw new OffsetFenceError(`partition ${partition} moved`);
    const nextOffset = chunk[chunk.length - 1]!.offset + 1n;
    this.stored.set(partition, nextOffset);
    view.nextOffset = nextOffset;
    return {
      plan: duplicatesPlan(chunk.length, nextOffset),
      phaseMs: { decode: 0, validate: 0, write: 0, commit: 0 },
    };
  }
}

function duplicatesPlan(duplicates: number, nextOffset: bigint): ChunkPlan {
  return { ...emptyChunkPlan(nextOffset), duplicates };
}

export class ScriptedLog implements LogInspector {
  readonly windows = new Map<number, LogWindow>();
  async window(partition: number): Promise<LogWindow> {
    return this.windows.get(partition) ?? { topicId: topicIdA, lowOffset: 0n, highOffset: 1_000n };
  }
}

export function given(
  options: { stored?: Record<number, bigint>; attemptsMax?: number; chunkEventsMax?: number } = {},
) {
  const store = new ScriptedStore();
  for (const [partition, offset] of Object.entries(options.stored ?? {}))
    store.stored.set(Number(partition), offset);
  const log = new ScriptedLog();
  const consumer = { seek: vi.fn(), pause: vi.fn(), resume: vi.fn() };
  const member = new ApplierMember({
    settings: {
      group: "g",
      topic,
      chunkEventsMax: options.chunkEventsMax ?? 100,
      retry: { attemptsMax: options.attemptsMax ?? 5, backoffMsMax: 1_000 },
    },
    store,
    log,
    consumer,
    logger: silentLogger,
  });
  const seeks = () => consumer.seek.mock.calls.map(([s]) => `${s.partition}@${s.offset}`);
  return { store, log, consumer, member, seeks };
}

export function payloadOf(partition: number, offsets: readonly bigint[]) {
  const payload = {
    batch: batchOf(topic, partition, offsets.map(opaqueRecord)),
    resolveOffset: vi.fn<(offset: string) => void>(),
    heartbeat: vi.fn(async () => {}),
    isRunning: vi.fn(() => true),
    isStale: vi.fn(() => false),
  } satisfies ScriptedPayload;
  return payload;
}

export const range = (from: bigint, count: number) =>
  Array.from({ length: count }, (_, k) => from + BigInt(k));

/** Delivers the batch again, as kafkajs does after each resume, until the member is fatal (bounded). */
export async function deliverUntilFatal(
  member: ApplierMember,
  partition: number,
  offsets: bigint[],
  roundsMax: number,
) {
  let rounds = 0;
  for (; rounds < roundsMax && member.fatal === null; rounds++) {
    const delivered = member.eachBatch(payloadOf(partition, offsets));
    await vi.runAllTimersAsync();
    await delivered;
  }
  return rounds;
}

/** Fake time advanced a millisecond at a time until the spy has been called `times` times (bounded). */
export async function untilCalled(spy: { mock: { calls: unknown[] } }, times = 1) {
  for (let ms = 0; spy.mock.calls.length < times; ms++) {
    if (ms > 60_000) throw new Error(`not called ${times} times within a minute of fake time`);
    await vi.advanceTimersByTimeAsync(1);
  }
}
