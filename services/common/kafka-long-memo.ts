// kafkajs (2.2.4) decodes each record's offset and timestamp as its batch's first offset and first
// timestamp, kept as decimal strings, parsed back into a Long for every record (Long.fromString,
// a BigInt parse: 2 % of an applier's CPU, issue #13 profile) and added to the record's delta. Both
// strings are the same for every record of a batch, and a record asks for them in turn: this
// remembers the last two strings parsed and their Longs. kafkajs' Long is immutable (its value is
// set by the constructor only), so a remembered Long can be handed out again. Installed once, on
// import, by common/kafka.ts; kafka-long-memo.unit checks it against kafkajs' own parse.
// @ts-expect-error TS7016: no declaration file for a kafkajs internal
import LongModule from "kafkajs/src/utils/long.js";

type FromString = (this: unknown, text: string) => unknown;
const Long = LongModule as { fromString: FromString };

/** kafkajs' own parse, kept for every string not remembered and for the unit test. */
export const kafkajsFromString: FromString = Long.fromString;

// Two entries, most recent first: a batch's records alternate between its two strings.
let recentText: string | null = null;
let recentLong: unknown = null;
let olderText: string | null = null;
let olderLong: unknown = null;

export function fromString(this: unknown, text: string): unknown {
  if (text === recentText) return recentLong;
  if (text === olderText) return olderLong;
  const long = kafkajsFromString.call(this, text);
  olderText = recentText;
  olderLong = recentLong;
  recentText = text;
  recentLong = long;
  return long;
}

Long.fromString = fromString;
