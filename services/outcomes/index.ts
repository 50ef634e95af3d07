// The outcomes as a library, for an HTTP or admin front end: the same calls as the commands.
export { type Cursor, decodeCursor, encodeCursor } from "./cursor.ts";
export { parseSince, type RejectionFilter } from "./filters.ts";
export { toJson } from "./json.ts";
export {
  reasonsOf,
  redrivableByDefault,
  rejectionReasons,
  schemaReasons,
  whyNotByDefault,
} from "./reasons.ts";
export type { Coordinates, RejectedRecord } from "./records.ts";
export { listRejections, type ReasonCount, type RejectionPage } from "./rejections.ts";
export { type ReprocessOptions, type ReprocessReport, reprocess } from "./reprocess.ts";
export type { OutcomeSource } from "./sources.ts";
export {
  type AppliedRecord,
  type FoundRejection,
  type RedriveFate,
  type TransferOutcome,
  transferOutcome,
} from "./transfer.ts";
