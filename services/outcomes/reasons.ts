// Which rejections `tally reprocess` re-drives unless told otherwise, and why the others are not:
// re-driving a record whose outcome the same bytes and the same rules decide again changes nothing.
// Pure.

import { type RejectionReason, rejectionReasons } from "../common/rejection-reasons.ts";

export { type RejectionReason, rejectionReasons } from "../common/rejection-reasons.ts";

/**
 * Causes outside the record that an operator can fix: a schema registered late, a registry that was
 * misconfigured (wrong URL, wrong schema under an id). After the fix the same bytes may decode.
 */
export const redrivableByDefault: readonly RejectionReason[] = ["unknown_schema", "incompatible_schema"];

/** The reasons a writer schema decides: reprocess asks the registry for the fix before it re-drives them. */
export const schemaReasons: ReadonlySet<RejectionReason> = new Set(["unknown_schema", "incompatible_schema"]);

/** Why a reason is not re-driven by default (docs/outcomes.md repeats this table). */
export const whyNotByDefault: Readonly<Record<RejectionReason, string>> = {
  undecodable:
    "the bytes are not Confluent-framed Avro, or do not decode with their writer schema: the same bytes fail again",
  unknown_schema: "re-driven by default once the schema id is registered",
  incompatible_schema: "re-driven by default once the schema under the id reads as TransferEvent",
  invalid_field: "a field out of shape is in the bytes themselves: the same bytes fail the same check",
  wrong_partition:
    "re-driven by its key it lands on its key's partition, but after the token's later moves; widen only for a misrouting producer",
  archived_day:
    "decided after the token rules: re-drive it with --reason archived_day once the day is attached again",
  out_of_window:
    "the window is checked against the Kafka timestamp, and a re-driven copy gets a new one: widening would judge the record by the re-drive's time",
  unknown_token:
    "the token rules decide again on the chain as it is now: widen only after re-driving the mint",
  token_exists: "the token rules decide again: a token that exists still exists",
  retired_token: "the token rules decide again: a retired token stays retired",
  state_conflict: "a double spend stays one: the chain moved on, and a stale move is rejected again",
  wrong_owner: "the token rules decide again on the same owner",
  value_mismatch: "the amount or asset is in the bytes themselves",
};

/** Reasons named on the command line, checked against the applier's; the defaults when none. */
export function reasonsOf(named: readonly string[] | null): RejectionReason[] {
  if (named === null || named.length === 0) return [...redrivableByDefault];
  const unknown = named.filter((r) => !(rejectionReasons as readonly string[]).includes(r));
  if (unknown.length > 0)
    throw new RangeError(`unknown reason ${unknown.join(", ")}; reasons: ${rejectionReasons.join(", ")}`);
  return [...new Set(named)] as RejectionReason[];
}
