// The page cursor of `tally rejections`: the last row shown, as (rejected_at in microseconds since
// the epoch, partition, offset). Rows are listed newest first in that order, which is total within a
// topic (the primary key is topic, partition, offset). Pure.

export type Cursor = { rejectedAtMicros: bigint; partition: number; offset: bigint };

export function encodeCursor(cursor: Cursor): string {
  return `${cursor.rejectedAtMicros}.${cursor.partition}.${cursor.offset}`;
}

export function decodeCursor(text: string): Cursor {
  const match = /^(\d{1,19})\.(\d{1,9})\.(\d{1,19})$/.exec(text);
  if (!match)
    throw new RangeError(`--before ${JSON.stringify(text)}: a cursor as printed by the previous page`);
  return { rejectedAtMicros: BigInt(match[1]!), partition: Number(match[2]), offset: BigInt(match[3]!) };
}

/** Newest first: a negative number when `a` is listed before `b`. */
export function newestFirst(a: Cursor, b: Cursor): number {
  if (a.rejectedAtMicros !== b.rejectedAtMicros) return a.rejectedAtMicros > b.rejectedAtMicros ? -1 : 1;
  if (a.partition !== b.partition) return b.partition - a.partition;
  return a.offset === b.offset ? 0 : a.offset > b.offset ? -1 : 1;
}
