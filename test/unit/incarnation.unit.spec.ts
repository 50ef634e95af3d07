// The pure incarnation checks and the offsets command's refusals: when stored offsets are refused,
// and which operator moves are allowed (forward only, or the same offsets under a new topic id).
import { describe, expect, it } from "vitest";
import { incarnationProblem, type LogWindow } from "../../services/applier/incarnation.ts";
import { type PartitionOffsets, refusalOf } from "../../services/applier/offsets.ts";
import { topicIdOf } from "../../services/common/topic-id.ts";

const where = { topic: "transfers", partition: 2 };
const log: LogWindow = { topicId: "RaxbHpfMTzqP3B3-VrOMng", lowOffset: 100n, highOffset: 500n };

describe("incarnationProblem", () => {
  it("given stored offsets within the log and the same id, then no problem", () => {
    for (const nextOffset of [100n, 300n, 500n])
      expect(incarnationProblem(where, { nextOffset, topicId: log.topicId }, log)).toBeNull();
  });

  it("given a legacy row without a topic id within the log, then no problem (it adopts the id)", () => {
    expect(incarnationProblem(where, { nextOffset: 200n, topicId: null }, log)).toBeNull();
  });

  it("given another topic id, then topic_id_changed naming both ids, the partition and the offset", () => {
    const problem = incarnationProblem(where, { nextOffset: 200n, topicId: "AAAAAAAAAAAAAAAAAAAAAQ" }, log);
    expect(problem?.problem).toBe("topic_id_changed");
    expect(problem?.message).toContain("topic transfers partition 2");
    expect(problem?.message).toContain("(next 200) belong to topic id AAAAAAAAAAAAAAAAAAAAAQ");
    expect(problem?.message).toContain("now has id RaxbHpfMTzqP3B3-VrOMng");
    expect(problem?.message).toContain("tally offsets");
  });

  it("given a stored offset above the log's end, then above_log_end", () => {
    const problem = incarnationProblem(where, { nextOffset: 501n, topicId: null }, log);
    expect(problem?.problem).toBe("above_log_end");
    expect(problem?.message).toContain("stored next offset 501 is above the log's end 500");
  });

  it("given a stored offset below the log's start, then below_log_start naming the lost range", () => {
    const problem = incarnationProblem(where, { nextOffset: 40n, topicId: log.topicId }, log);
    expect(problem?.problem).toBe("below_log_start");
    expect(problem?.message).toContain("records 40..99 were deleted");
  });
});

const rowOf = (stored: PartitionOffsets["stored"]): PartitionOffsets => ({
  partition: 2,
  shard: 0,
  stored,
  log,
  problem: null,
});

describe("refusalOf (tally offsets reset)", () => {
  it("given records deleted before they were applied, then --to-earliest moves forward and --to-latest too", () => {
    const row = rowOf({ nextOffset: 40n, topicId: log.topicId });
    expect(refusalOf(row, "earliest")).toBeNull();
    expect(refusalOf(row, "latest")).toBeNull();
    expect(refusalOf(row, "adopt-topic-id")).toContain("outside the log [100, 500]");
  });

  it("given a re-created topic shorter than the stored offsets, then every move back is refused", () => {
    const row = rowOf({ nextOffset: 900n, topicId: "AAAAAAAAAAAAAAAAAAAAAQ" });
    expect(refusalOf(row, "earliest")).toContain("moving back from 900 to 100");
    expect(refusalOf(row, "latest")).toContain("moving back from 900 to 500");
    expect(refusalOf(row, "adopt-topic-id")).toContain("not this log's");
  });

  it("given a mirrored topic holding the same offsets under a new id, then adopting the id is allowed", () => {
    expect(
      refusalOf(rowOf({ nextOffset: 300n, topicId: "AAAAAAAAAAAAAAAAAAAAAQ" }), "adopt-topic-id"),
    ).toBeNull();
  });

  it("given nothing stored, then there is nothing to reset", () => {
    expect(refusalOf(rowOf(null), "earliest")).toContain("no stored offsets");
  });
});

/** A Metadata v12 answer, byte by byte as the protocol lays it out, for one topic. */
function metadataAnswer(topic: string, errorCode: number, idBytes: Buffer): Buffer {
  const compact = (text: string | null) =>
    text === null ? Buffer.from([0]) : Buffer.concat([Buffer.from([text.length + 1]), Buffer.from(text)]);
  const int32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  };
  const int16 = (n: number) => {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    return b;
  };
  return Buffer.concat([
    Buffer.from([0]), // response header tagged fields
    int32(0), // throttle_time_ms
    Buffer.from([2]), // one broker
    int32(1),
    compact("127.0.0.1"),
    int32(19092),
    compact(null),
    Buffer.from([1, 7, 2, 0xaa, 0xbb]), // one tagged field (tag 7, two bytes): skipped
    compact("cluster-x"),
    int32(1), // controller_id
    Buffer.from([2]), // one topic
    int16(errorCode),
    compact(topic),
    idBytes,
    Buffer.from([0]), // is_internal and the rest are not read
  ]);
}

describe("topicIdOf", () => {
  const id = Buffer.from("45ac5b1e97cc4f3a8fdc1dfe56b38c9e", "hex");

  it("given an answer for the topic, then its id as Kafka prints it (base64url)", () => {
    expect(topicIdOf(metadataAnswer("transfers", 0, id), "transfers")).toBe("RaxbHpfMTzqP3B3-VrOMng");
  });

  it("given UNKNOWN_TOPIC_OR_PARTITION, then TopicNotFoundError", () => {
    expect(() => topicIdOf(metadataAnswer("transfers", 3, Buffer.alloc(16)), "transfers")).toThrow(
      /topic transfers does not exist/,
    );
  });

  it("given another error code or a zero id, then an error, never an id", () => {
    expect(() => topicIdOf(metadataAnswer("transfers", 29, id), "transfers")).toThrow(/error code 29/);
    expect(() => topicIdOf(metadataAnswer("transfers", 0, Buffer.alloc(16)), "transfers")).toThrow(/zero id/);
  });
});
