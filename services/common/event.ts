// Events are plain typed data. Validation here is about shape (is this a well-formed transfer?);
// whether it fits the token's state is decided in applier/decide.ts.
export type TransferEvent = {
  transfer_id: string;
  batch_id: string | null;
  token_id: string;
  asset: string;
  /** minor units, exact; never a JS number */
  amount: bigint;
  from_wallet: string | null;
  to_wallet: string | null;
  prev_state: string | null;
  next_state: string;
  /** Unix epoch milliseconds */
  occurred_at: number;
};

export const amountMax = 10n ** 38n - 1n;
export const textLengthMax = 200;
/** The largest instant JS dates can hold (year 275760); later values are not timestamps. */
const occurredAtMsMax = 8_640_000_000_000_000;

export type FieldProblem = { field: keyof TransferEvent | "event"; problem: string };

/** Every problem with the event's fields, empty when it is well-formed. */
export function eventProblems(event: TransferEvent): FieldProblem[] {
  // Checked for every consumed record: the common, well-formed case allocates nothing (no closure,
  // no array), which the applier's profile showed worth a few per cent of its CPU.
  let problems: FieldProblem[] | null = null;
  if (!isUuid(event.transfer_id)) problems = withProblem(problems, "transfer_id", "must be a uuid");
  if (!isText(event.token_id)) problems = withProblem(problems, "token_id", textProblem);
  if (!isText(event.next_state)) problems = withProblem(problems, "next_state", textProblem);
  if (!isOptionalText(event.batch_id)) problems = withProblem(problems, "batch_id", optionalTextProblem);
  if (!isOptionalText(event.from_wallet))
    problems = withProblem(problems, "from_wallet", optionalTextProblem);
  if (!isOptionalText(event.to_wallet)) problems = withProblem(problems, "to_wallet", optionalTextProblem);
  if (!isOptionalText(event.prev_state)) problems = withProblem(problems, "prev_state", optionalTextProblem);
  if (!isAsset(event.asset))
    problems = withProblem(problems, "asset", "must be 1..16 characters of A-Z and 0-9");
  if (typeof event.amount !== "bigint" || event.amount <= 0n || event.amount > amountMax) {
    problems = withProblem(problems, "amount", "must be a whole number of minor units from 1 to 10^38-1");
  }
  if (
    !Number.isSafeInteger(event.occurred_at) ||
    event.occurred_at < 0 ||
    event.occurred_at > occurredAtMsMax
  ) {
    problems = withProblem(problems, "occurred_at", "must be a timestamp in milliseconds");
  }
  if (event.from_wallet === null && event.to_wallet === null)
    problems = withProblem(problems, "event", "a mint and a burn at once");
  if (event.from_wallet === null && event.prev_state !== null)
    problems = withProblem(problems, "prev_state", "must be null for a mint");
  if (event.from_wallet !== null && event.prev_state === null)
    problems = withProblem(problems, "prev_state", "is needed for a move or burn");
  if (event.from_wallet !== null && event.from_wallet === event.to_wallet)
    problems = withProblem(problems, "to_wallet", "equals from_wallet");
  return problems ?? [];
}

/** A module function, not a closure in eventProblems: a closure would be allocated per record. */
function withProblem(
  problems: FieldProblem[] | null,
  field: FieldProblem["field"],
  problem: string,
): FieldProblem[] {
  const list = problems ?? [];
  list.push({ field, problem });
  return list;
}

/** ^[A-Z0-9]{1,16}$ as a loop: a regular expression test per record showed in the profile. */
export function isAsset(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > 16) return false;
  for (let k = 0; k < value.length; k++) {
    const code = value.charCodeAt(k);
    if (!((code >= 48 && code <= 57) || (code >= 65 && code <= 90))) return false;
  }
  return true;
}

const textProblem = `must be 1..${textLengthMax} characters with no control characters or lone surrogates`;
const optionalTextProblem = `must be null or 1..${textLengthMax} characters with no control characters or lone surrogates`;

/** The canonical 8-4-4-4-12 hex form, either case; a loop, as this runs for every record. */
export function isUuid(value: unknown): value is string {
  if (typeof value !== "string" || value.length !== 36) return false;
  for (let k = 0; k < 36; k++) {
    const code = value.charCodeAt(k);
    if (k === 8 || k === 13 || k === 18 || k === 23) {
      if (code !== 45) return false;
      continue;
    }
    const lower = code | 0x20;
    if (!((code >= 48 && code <= 57) || (lower >= 97 && lower <= 102))) return false;
  }
  return true;
}

/**
 * 1..textLengthMax UTF-16 units, none a control character (they would corrupt text COPY and logs),
 * and well-formed: a lone surrogate has no UTF-8 form, so Avro would write it as U+FFFD and two
 * different ids would arrive as one. (Invalid UTF-8 on the consuming side: applier/decode.ts.)
 */
function isText(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > textLengthMax) return false;
  let surrogates = false;
  for (let k = 0; k < value.length; k++) {
    const code = value.charCodeAt(k);
    if (code < 32) return false;
    if (code >= 0xd800 && code <= 0xdfff) surrogates = true;
  }
  // isWellFormed only where a surrogate was seen: called on every field of every record it was
  // 1.7 % of an applier's CPU (issue #13, line-level profile), and a string with none is well formed.
  return !surrogates || value.isWellFormed();
}

const isOptionalText = (value: unknown) => value === null || isText(value);

export type EventKind = "mint" | "move" | "burn";

export function kindOf(event: Pick<TransferEvent, "from_wallet" | "to_wallet">): EventKind {
  if (event.from_wallet === null) return "mint";
  if (event.to_wallet === null) return "burn";
  return "move";
}
