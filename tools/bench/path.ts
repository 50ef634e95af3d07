// `tally-tools bench-path`: the applier's own CPU per event with no I/O, phase by phase. The bench's
// load is framed as the producer frames it (not timed); then, per pass, every partition's records
// go in chunks of the applier's size through what applyChunk does between its I/O: kafkajs'
// strings to records, decode, plan (with the ids applied by earlier chunks standing in for the
// shard's look-up), and the write path's encoding (ledger and ids COPY, deltas, token arrays).
// End-to-end CPU mixes these with Kafka, PostgreSQL, start-up and a shared machine's noise; this
// is what an A/B of a change to decode, plan or encode should be measured with.

import { decodeChunk } from "../../services/applier/apply-chunk.ts";
import type { TokenState } from "../../services/applier/decide.ts";
import { EventDecoder } from "../../services/applier/decode.ts";
import { toRawRecord } from "../../services/applier/member.ts";
import { planChunk, withAppliedIds } from "../../services/applier/plan.ts";
import { encodeLedger } from "../../services/applier/write.ts";
import { frame, transferEventType } from "../../services/common/avro.ts";
import { partitionOfKey } from "../../services/common/partitioner.ts";
import { arrayLiteral } from "../../services/common/pg-arrays.ts";
import { encodeDeltaChunk } from "../../services/storage/delta-chunks.ts";
import type { LoadOptions } from "../load/load.ts";
import { loadRecords } from "./limit-plan.ts";
import type { Expected } from "./loads.ts";

/** What kafkajs hands the applier per message: offset and timestamp as decimal strings. */
type Message = { offset: string; timestamp: string; key: Buffer; value: Buffer };

export type PathOptions = { partitions: number; chunkEventsMax: number; passes: number };
export type PathPhases = { records: number; decode: number; plan: number; encode: number };
export type PathResult = {
  events: number;
  /** passes timed (the first of `passes` only warms the code up) */
  passesTimed: number;
  /** CPU nanoseconds per event of each phase, over the timed passes */
  nsPerEvent: PathPhases;
  /** what the last pass decided, to check against the generator */
  counted: Expected;
};

const schemaId = 1;
const window = { pastDays: 36_600, futureDays: 366 };

/** The load as the producer would have sent it, per partition in offset order. */
export function framedLoad(load: LoadOptions, partitions: number): Message[][] {
  const out: Message[][] = Array.from({ length: partitions }, () => []);
  for (const { event } of loadRecords(load)) {
    const key = Buffer.from(event.token_id);
    const messages = out[partitionOfKey(key, partitions)]!;
    const value = frame(schemaId, transferEventType.toBuffer(event));
    const offset = String(messages.length);
    messages.push({ offset, timestamp: String(event.occurred_at), key, value });
  }
  return out;
}

const cpuMicros = () => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

/** One pass over every partition; adds each phase's CPU µs to `phases` and returns the outcomes. */
async function onePass(perPartition: Message[][], options: PathOptions, phases: PathPhases) {
  const schema = JSON.stringify(transferEventType.schema());
  const decoder = new EventDecoder({ schemaById: async () => ({ found: true, schema, schemaType: "AVRO" }) });
  const states = new Map<string, TokenState>();
  const applied = new Set<string>(); // lower-cased, as findAppliedIds answers
  const counted: Expected = { applied: 0, duplicates: 0, rejected: 0 };
  for (const [partition, messages] of perPartition.entries()) {
    const routing = {
      partition,
      partitionOfKey: (key: Buffer) => partitionOfKey(key, options.partitions),
      homeOf: () => undefined,
      archivedDays: new Set<number>(),
    };
    for (let at = 0; at < messages.length; at += options.chunkEventsMax) {
      const chunk = messages.slice(at, at + options.chunkEventsMax);
      let startedUs = cpuMicros();
      const lap = (phase: keyof PathPhases) => {
        const nowUs = cpuMicros();
        phases[phase] += nowUs - startedUs;
        startedUs = nowUs;
      };
      const raw = chunk.map(toRawRecord);
      lap("records");
      const records = await decodeChunk(decoder, raw);
      lap("decode");
      let plan = planChunk(records, (id) => states.get(id), new Set(), window, routing);
      const found = new Set(plan.duplicateCandidates.filter((id) => applied.has(id)));
      plan =
        withAppliedIds(plan, found) ?? planChunk(records, (id) => states.get(id), found, window, routing);
      lap("plan");
      const ledger = encodeLedger({ group: "path", topic: "path", partition }, plan.ledger);
      const deltas = encodeDeltaChunk(plan.balanceDeltas, plan.supplyDeltas);
      const changes = [...plan.tokenChanges.values()];
      const tokenArrays = [
        arrayLiteral(changes.map((c) => c.tokenId)),
        arrayLiteral(changes.map((c) => c.state.owner)),
        arrayLiteral(changes.map((c) => c.state.state)),
      ];
      lap("encode");
      // Kept alive to here so the encoding cannot be skipped; sizes are known to be positive.
      if (ledger.rows.length + deltas.entries.length + tokenArrays.length === 0) throw new Error("empty");
      for (const change of changes) states.set(change.tokenId, change.state);
      for (const row of plan.ledger) applied.add(row.event.transfer_id.toLowerCase());
      counted.applied += plan.ledger.length;
      counted.duplicates += plan.duplicates;
      counted.rejected += plan.rejections.length;
    }
  }
  return counted;
}

export async function runPath(load: LoadOptions, options: PathOptions): Promise<PathResult> {
  const perPartition = framedLoad(load, options.partitions);
  const events = perPartition.reduce((sum, messages) => sum + messages.length, 0);
  const phases: PathPhases = { records: 0, decode: 0, plan: 0, encode: 0 };
  let counted: Expected = { applied: 0, duplicates: 0, rejected: 0 };
  for (let pass = 0; pass < options.passes; pass++) {
    const timed = pass > 0 || options.passes === 1;
    const sink: PathPhases = { records: 0, decode: 0, plan: 0, encode: 0 };
    counted = await onePass(perPartition, options, timed ? phases : sink);
  }
  const passesTimed = Math.max(1, options.passes - 1);
  const per = (us: number) => Math.round((us * 1000) / (events * passesTimed));
  return {
    events,
    passesTimed,
    nsPerEvent: {
      records: per(phases.records),
      decode: per(phases.decode),
      plan: per(phases.plan),
      encode: per(phases.encode),
    },
    counted,
  };
}
