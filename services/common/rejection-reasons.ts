// Why a record is rejected: the contract's reasons (docs/design.md), one list for the applier that
// decides them, the outcome commands that list and re-drive them, and the dead-letter relay.

/** The reasons the token rules give (applier/decide.ts); the others belong to decoding, shape and routing. */
export const tokenRuleReasons = [
  "unknown_token",
  "token_exists",
  "retired_token",
  "state_conflict",
  "wrong_owner",
  "value_mismatch",
] as const;

export const rejectionReasons = [
  "undecodable",
  "unknown_schema",
  // the writer schema exists but cannot be parsed or read as Tally's TransferEvent
  "incompatible_schema",
  "invalid_field",
  // the record is not on the partition the Java-compatible partitioner gives its key
  "wrong_partition",
  // its day partition of `transfers` exists but is detached (archived): re-attach, then re-drive
  "archived_day",
  "out_of_window",
  ...tokenRuleReasons,
] as const;
export type RejectionReason = (typeof rejectionReasons)[number];
