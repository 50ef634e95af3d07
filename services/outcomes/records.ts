// The rows of rejected_transfers as the outcome commands read them: one column list, one mapping.
import type { RejectionReason } from "./reasons.ts";

export type Coordinates = { topic: string; partition: number; offset: bigint };

export type RejectedRecord = {
  shard: number;
  coordinates: Coordinates;
  reason: RejectionReason;
  detail: string;
  /** null when the record did not decode (undecodable, unknown or incompatible schema) */
  transferId: string | null;
  tokenId: string | null;
  schemaId: number | null;
  /** ISO 8601: the applier's transaction time */
  rejectedAt: string;
  /** where `tally reprocess` produced its bytes again, or null */
  redriven: { at: string; to: { partition: number; offset: bigint } } | null;
};

/**
 * The select list behind RejectedRecord (no raw bytes: those only travel to a re-drive). Text
 * columns get names of their own: an ORDER BY kafka_offset would otherwise sort the text alias
 * ("10" before "9"), not the bigint column.
 */
export const rejectedColumns = `topic, kafka_partition, kafka_offset::text AS kafka_offset_text, reason, detail,
  transfer_id, token_id, schema_id, rejected_at,
  (extract(epoch FROM rejected_at) * 1000000)::bigint::text AS rejected_at_micros,
  redriven_at, redriven_to_partition, redriven_to_offset::text AS redriven_to_offset_text`;

export type RejectedRow = {
  topic: string;
  kafka_partition: number;
  kafka_offset_text: string;
  reason: string;
  detail: string;
  transfer_id: string | null;
  token_id: string | null;
  schema_id: number | null;
  rejected_at: Date;
  rejected_at_micros: string;
  redriven_at: Date | null;
  redriven_to_partition: number | null;
  redriven_to_offset_text: string | null;
};

export function rejectedRecordOf(row: RejectedRow, shard: number): RejectedRecord {
  return {
    shard,
    coordinates: { topic: row.topic, partition: row.kafka_partition, offset: BigInt(row.kafka_offset_text) },
    reason: row.reason as RejectionReason,
    detail: row.detail,
    transferId: row.transfer_id,
    tokenId: row.token_id,
    schemaId: row.schema_id,
    rejectedAt: row.rejected_at.toISOString(),
    redriven:
      row.redriven_at === null || row.redriven_to_partition === null || row.redriven_to_offset_text === null
        ? null
        : {
            at: row.redriven_at.toISOString(),
            to: { partition: row.redriven_to_partition, offset: BigInt(row.redriven_to_offset_text) },
          },
  };
}
