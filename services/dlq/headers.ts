// Pure: a rejection (a rejected_transfers row) as a dead-letter record. Key and value are the
// original bytes; the headers are Kafka Connect's dead-letter context (DeadLetterQueueReporter's
// names, every value UTF-8 text, numbers in decimal) followed by Tally's own. What Connect would
// copy and Tally never stored, the original timestamp and headers, is not there: the record's
// timestamp is the rejection's time.

export { rejectionReasons } from "../common/rejection-reasons.ts";

/** The reasons whose record never became a TransferEvent: Connect's converter stage. */
const converterReasons = new Set(["undecodable", "unknown_schema", "incompatible_schema"]);

export const connectHeaders = {
  topic: "__connect.errors.topic",
  partition: "__connect.errors.partition",
  offset: "__connect.errors.offset",
  connectorName: "__connect.errors.connector.name",
  taskId: "__connect.errors.task.id",
  stage: "__connect.errors.stage",
  className: "__connect.errors.class.name",
  exceptionClassName: "__connect.errors.exception.class.name",
  exceptionMessage: "__connect.errors.exception.message",
} as const;

export const tallyHeaders = {
  reason: "tally.reason",
  detail: "tally.detail",
  schemaId: "tally.schema_id",
  transferId: "tally.transfer_id",
  rejectedAt: "tally.rejected_at",
} as const;

export type Rejection = {
  topic: string;
  partition: number;
  offset: bigint;
  reason: string;
  detail: string;
  transferId: string | null;
  schemaId: number | null;
  rawKey: Buffer | null;
  rawValue: Buffer | null;
  rejectedAt: Date;
};

export type DeadLetter = {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestamp: string;
};

/** `group` names who rejected it (Connect's connector name): the applier's consumer group. */
export function deadLetterOf(rejection: Rejection, group: string): DeadLetter {
  const headers: Record<string, string> = {
    [connectHeaders.topic]: rejection.topic,
    [connectHeaders.partition]: String(rejection.partition),
    [connectHeaders.offset]: rejection.offset.toString(),
    [connectHeaders.connectorName]: group,
    [connectHeaders.taskId]: "0",
    [connectHeaders.stage]: converterReasons.has(rejection.reason) ? "VALUE_CONVERTER" : "TASK_PUT",
    [connectHeaders.className]: "tally.applier",
    [connectHeaders.exceptionClassName]: `tally.rejected.${rejection.reason}`,
    [connectHeaders.exceptionMessage]: `${rejection.reason}: ${rejection.detail}`,
    [tallyHeaders.reason]: rejection.reason,
    [tallyHeaders.detail]: rejection.detail,
    [tallyHeaders.rejectedAt]: rejection.rejectedAt.toISOString(),
  };
  // Absent, not empty, when unknown: a record that never decoded has neither.
  if (rejection.schemaId !== null) headers[tallyHeaders.schemaId] = String(rejection.schemaId);
  if (rejection.transferId !== null) headers[tallyHeaders.transferId] = rejection.transferId;
  return {
    key: rejection.rawKey,
    value: rejection.rawValue,
    headers,
    timestamp: String(rejection.rejectedAt.getTime()),
  };
}

/**
 * The dead-letter partition of a source partition: the same number, folded into the dead-letter
 * topic's partitions. So the records of one source partition (one token's history) keep their order.
 */
export function deadLetterPartitionOf(sourcePartition: number, deadLetterPartitions: number): number {
  return sourcePartition % deadLetterPartitions;
}
