// kafkajs' log lines: the routine answers of a rebalance stay out of a user's ERROR output; real
// failures and everything else still come out, one JSON line each.
import { logLevel } from "kafkajs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { kafkaLogCreator } from "../../services/common/kafka.ts";

function written(entries: { level: number; message: string; error?: string }[]): Record<string, unknown>[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  const log = kafkaLogCreator(logLevel.ERROR);
  for (const { level, message, error } of entries)
    log({
      namespace: "Connection",
      level,
      label: "ERROR",
      log: { message, timestamp: "t", logger: "kafkajs", error },
    });
  return lines.map((line) => JSON.parse(line));
}

afterEach(() => vi.restoreAllMocks());

describe("kafkajs log lines", () => {
  it("given the answers of a rebalance at ERROR, when logged, then none is written", () => {
    const lines = written([
      {
        level: logLevel.ERROR,
        message: "Response SyncGroup(key: 14, version: 3)",
        error: "The group is rebalancing, so a rejoin is needed",
      },
      {
        level: logLevel.ERROR,
        message: "Response Heartbeat(key: 12, version: 3)",
        error: "The group is rebalancing, so a rejoin is needed",
      },
      {
        level: logLevel.ERROR,
        message: "Response GroupCoordinator(key: 10, version: 2)",
        error: "The coordinator is not available",
      },
      {
        level: logLevel.ERROR,
        message: "Response JoinGroup(key: 11, version: 5)",
        error: "This is not the correct coordinator for this group",
      },
      { level: logLevel.ERROR, message: "The coordinator is not aware of this member, re-joining the group" },
    ]);
    expect(lines).toEqual([]);
  });

  it("given a crash and an offset reset at ERROR, when logged, then both are written as JSON lines", () => {
    const lines = written([
      { level: logLevel.ERROR, message: "Crash: KafkaJSNumberOfRetriesExceeded: Connection timeout" },
      { level: logLevel.ERROR, message: "Offset out of range, resetting to default offset" },
    ]);
    expect(lines.map((l) => [l.level, l.name, l.namespace, l.msg])).toEqual([
      ["error", "kafkajs", "Connection", "Crash: KafkaJSNumberOfRetriesExceeded: Connection timeout"],
      ["error", "kafkajs", "Connection", "Offset out of range, resetting to default offset"],
    ]);
  });

  it("given a rebalance answer at WARN, when logged, then it is written (only ERROR chatter is left out)", () => {
    const lines = written([{ level: logLevel.WARN, message: "The group is rebalancing, re-joining" }]);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe("warn");
  });
});
