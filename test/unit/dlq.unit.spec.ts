// The dead-letter record of a rejection: original bytes, Kafka Connect's context headers, Tally's own;
// the partition it goes to; and the reasons the relay knows, equal to the applier's.
import { describe, expect, it } from "vitest";
import { rejectionReasons as applierReasons } from "../../services/applier/decide.ts";
import { loadConfig } from "../../services/common/config.ts";
import {
  deadLetterOf,
  deadLetterPartitionOf,
  type Rejection,
  rejectionReasons,
} from "../../services/dlq/headers.ts";

const rejection = (over: Partial<Rejection> = {}): Rejection => ({
  topic: "transfers",
  partition: 3,
  offset: 12_345_678_901n,
  reason: "state_conflict",
  detail: "prev_state s1 but the token is at s2",
  transferId: "3f0b6f0e-0000-4000-8000-000000000001",
  schemaId: 7,
  rawKey: Buffer.from("token-1"),
  rawValue: Buffer.from([0, 0, 0, 0, 7, 1, 2, 3]),
  rejectedAt: new Date("2026-11-22T06:29:00.123Z"),
  ...over,
});

describe("deadLetterOf", () => {
  it("given a rejection, then key and value are the original bytes and the headers are Connect's and Tally's, as text", () => {
    const letter = deadLetterOf(rejection(), "tally-applier");
    expect(letter.key).toEqual(Buffer.from("token-1"));
    expect(letter.value).toEqual(Buffer.from([0, 0, 0, 0, 7, 1, 2, 3]));
    expect(letter.timestamp).toBe(String(Date.parse("2026-11-22T06:29:00.123Z")));
    expect(letter.headers).toEqual({
      "__connect.errors.topic": "transfers",
      "__connect.errors.partition": "3",
      "__connect.errors.offset": "12345678901",
      "__connect.errors.connector.name": "tally-applier",
      "__connect.errors.task.id": "0",
      "__connect.errors.stage": "TASK_PUT",
      "__connect.errors.class.name": "tally.applier",
      "__connect.errors.exception.class.name": "tally.rejected.state_conflict",
      "__connect.errors.exception.message": "state_conflict: prev_state s1 but the token is at s2",
      "tally.reason": "state_conflict",
      "tally.detail": "prev_state s1 but the token is at s2",
      "tally.schema_id": "7",
      "tally.transfer_id": "3f0b6f0e-0000-4000-8000-000000000001",
      "tally.rejected_at": "2026-11-22T06:29:00.123Z",
    });
  });

  it("given a record that never decoded, then the stage is the value converter and unknown ids are absent, not empty", () => {
    const letter = deadLetterOf(
      rejection({ reason: "undecodable", transferId: null, schemaId: null, rawKey: null }),
      "g",
    );
    expect(letter.key).toBeNull();
    expect(letter.headers["__connect.errors.stage"]).toBe("VALUE_CONVERTER");
    expect(letter.headers).not.toHaveProperty("tally.schema_id");
    expect(letter.headers).not.toHaveProperty("tally.transfer_id");
  });
});

describe("the relay's settings and partitions", () => {
  it("given the reasons of the applier, then the relay names the same", () => {
    expect([...rejectionReasons].sort()).toEqual([...applierReasons].sort());
  });

  it("given source partitions, then each goes to its own number folded into the dead-letter topic", () => {
    expect([0, 1, 5, 6, 7].map((p) => deadLetterPartitionOf(p, 6))).toEqual([0, 1, 5, 0, 1]);
  });

  it("given TALLY_DLQ_TOPIC, then it is off by default, validated like TALLY_TOPIC, and never TALLY_TOPIC", () => {
    expect(loadConfig({}).TALLY_DLQ_TOPIC).toBe("");
    expect(loadConfig({}).TALLY_DLQ_POLL_MS).toBe(1000);
    expect(loadConfig({ TALLY_DLQ_TOPIC: "transfers.dlq" }).TALLY_DLQ_TOPIC).toBe("transfers.dlq");
    expect(() => loadConfig({ TALLY_DLQ_TOPIC: "no spaces" })).toThrow(
      /TALLY_DLQ_TOPIC="no spaces" is invalid: a Kafka topic name/,
    );
    expect(() => loadConfig({ TALLY_DLQ_TOPIC: "transfers" })).toThrow(/must not be TALLY_TOPIC/);
    expect(() => loadConfig({ TALLY_DLQ_POLL_MS: "5" })).toThrow(/TALLY_DLQ_POLL_MS/);
  });
});
