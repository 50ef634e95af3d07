// The pure model the simulation checks the store against: DESIGN.md's rules folded over one
// partition's records in offset order, record by record (decode, shape, key, partition, window,
// duplicate by transfer id, then the token rules of decide), with nothing shared with plan.ts but
// decide, eventProblems and outsideWindow. Also the simulation's value codec (JSON, not Avro: decoding
// is not what the simulation tests).
import {
  decide,
  type EventWindow,
  outsideWindow,
  type TokenState,
} from "../../../services/applier/decide.ts";
import type { DecodedRecord } from "../../../services/applier/plan.ts";
import { eventProblems, type TransferEvent } from "../../../services/common/event.ts";
import { dayMax, dayOf } from "../../../services/storage/partitions.ts";

export type LogRecord = { offset: bigint; key: Buffer | null; value: Buffer | null; timestampMs: number };

export type Outcome = {
  offset: bigint;
  outcome: "applied" | "duplicate" | "rejected";
  /** rejection reason, or the applied transfer id */
  detail: string;
};

const valuePrefix = "SIM1";
export const simSchemaId = 1;

export function encodeEvent(event: TransferEvent): Buffer {
  return Buffer.from(valuePrefix + JSON.stringify({ ...event, amount: event.amount.toString() }));
}

/** The simulation's decoder: a value that is not SIM1 + a JSON event is undecodable. */
export function decodeValue(value: Buffer | null): DecodedRecord["decoded"] {
  const text = value?.toString("utf8") ?? "";
  const undecodable = { ok: false as const, reason: "undecodable" as const, schemaId: null };
  if (!text.startsWith(valuePrefix)) return { ...undecodable, detail: "not a SIM1 value" };
  try {
    const raw = JSON.parse(text.slice(valuePrefix.length)) as Record<string, unknown>;
    if (typeof raw.amount !== "string" || !/^-?\d+$/.test(raw.amount))
      return { ...undecodable, detail: "amount" };
    return {
      ok: true,
      event: { ...(raw as TransferEvent), amount: BigInt(raw.amount) },
      schemaId: simSchemaId,
    };
  } catch {
    return { ...undecodable, detail: "not JSON" };
  }
}

export type ModelRules = { partitionOfKey: (key: Buffer) => number; window: EventWindow };

/** One partition's fold: the token states and applied ids so far, and every record's outcome. */
export class PartitionModel {
  readonly tokens = new Map<string, TokenState>();
  readonly appliedIds = new Set<string>();
  readonly outcomes: Outcome[] = [];
  private readonly partition: number;
  private readonly rules: ModelRules;

  constructor(partition: number, rules: ModelRules) {
    this.partition = partition;
    this.rules = rules;
  }

  next(record: LogRecord): Outcome {
    const outcome = { offset: record.offset, ...this.decideRecord(record) };
    this.outcomes.push(outcome);
    return outcome;
  }

  private decideRecord(record: LogRecord): Omit<Outcome, "offset"> {
    const rejected = (detail: string) => ({ outcome: "rejected" as const, detail });
    const decoded = decodeValue(record.value);
    if (!decoded.ok) return rejected(decoded.reason);
    const event = decoded.event;
    if (eventProblems(event).length > 0) return rejected("invalid_field");
    if (record.key === null || record.key.toString("utf8") !== event.token_id)
      return rejected("invalid_field");
    if (this.rules.partitionOfKey(record.key) !== this.partition) return rejected("wrong_partition");
    const late = outsideWindow(event.occurred_at, record.timestampMs, this.rules.window);
    if (late !== null || dayOf(event.occurred_at) > dayMax) return rejected("out_of_window");
    const id = event.transfer_id.toLowerCase();
    if (this.appliedIds.has(id)) return { outcome: "duplicate", detail: "" };
    const decision = decide(this.tokens.get(event.token_id), event);
    if (decision.outcome === "rejected") return rejected(decision.reason);
    this.tokens.set(event.token_id, decision.next);
    this.appliedIds.add(id);
    return { outcome: "applied", detail: id };
  }
}

export const outcomeText = (o: Outcome) => `${o.offset}:${o.outcome}${o.detail ? `(${o.detail})` : ""}`;
