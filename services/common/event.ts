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
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const assetPattern = /^[A-Z0-9]{1,16}$/;

export type FieldProblem = { field: keyof TransferEvent | "event"; problem: string };

/** Every problem with the event's fields, empty when it is well-formed. */
export function eventProblems(event: TransferEvent): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const add = (field: FieldProblem["field"], problem: string) => problems.push({ field, problem });
  if (!uuidPattern.test(event.transfer_id)) add("transfer_id", "must be a uuid");
  for (const field of ["token_id", "next_state"] as const) {
    if (!isText(event[field]))
      add(field, `must be 1..${textLengthMax} characters with no control characters`);
  }
  for (const field of ["batch_id", "from_wallet", "to_wallet", "prev_state"] as const) {
    const value = event[field];
    if (value !== null && !isText(value)) add(field, `must be null or 1..${textLengthMax} characters`);
  }
  if (!assetPattern.test(event.asset)) add("asset", "must be 1..16 characters of A-Z and 0-9");
  if (typeof event.amount !== "bigint" || event.amount <= 0n || event.amount > amountMax) {
    add("amount", "must be a whole number of minor units from 1 to 10^38-1");
  }
  if (
    !Number.isSafeInteger(event.occurred_at) ||
    event.occurred_at < 0 ||
    event.occurred_at > occurredAtMsMax
  ) {
    add("occurred_at", "must be a timestamp in milliseconds");
  }
  if (event.from_wallet === null && event.to_wallet === null) add("event", "a mint and a burn at once");
  if (event.from_wallet === null && event.prev_state !== null) add("prev_state", "must be null for a mint");
  if (event.from_wallet !== null && event.prev_state === null)
    add("prev_state", "is needed for a move or burn");
  if (event.from_wallet !== null && event.from_wallet === event.to_wallet)
    add("to_wallet", "equals from_wallet");
  return problems;
}

// Control characters would corrupt text COPY and logs; they are refused as field content.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const controlCharacters = /[\u0000-\u001f]/;

function isText(value: unknown): value is string {
  return (
    typeof value === "string" &&
    value.length > 0 &&
    value.length <= textLengthMax &&
    !controlCharacters.test(value)
  );
}

export type EventKind = "mint" | "move" | "burn";

export function kindOf(event: Pick<TransferEvent, "from_wallet" | "to_wallet">): EventKind {
  if (event.from_wallet === null) return "mint";
  if (event.to_wallet === null) return "burn";
  return "move";
}
