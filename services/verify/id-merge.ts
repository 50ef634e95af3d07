// Repeated ids across shards: each shard streams its ids sorted (a server-side cursor, one page at
// a time), and a k-way merge finds the ids that occur more than once, with memory bounded by
// shards × page size however many rows there are.
import type { Pool } from "../common/pg.ts";
import { examplesMax } from "./report.ts";

/** A sorted source of ids: each call returns the next page, an empty page at the end. */
export type PageSource = () => Promise<string[]>;

export type Repeats = { count: number; examples: string[] };

/**
 * Code point order, which is the byte order of UTF-8 and so of `COLLATE "C"` in PostgreSQL.
 * JS `<` compares UTF-16 units, which puts U+E000..U+FFFF after the surrogate pairs.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

const rank = (unit: number) => (unit < 0xd800 ? unit : unit >= 0xe000 ? unit - 0x800 : unit + 0x2000);

class Head {
  private page: string[] = [];
  private index = 0;
  private done = false;
  private last: string | null = null;

  readonly shard: number;
  private readonly next: PageSource;

  constructor(shard: number, next: PageSource) {
    this.shard = shard;
    this.next = next;
  }

  async current(): Promise<string | null> {
    while (this.index >= this.page.length && !this.done) {
      this.page = await this.next();
      this.index = 0;
      this.done = this.page.length === 0;
    }
    return this.done ? null : this.page[this.index]!;
  }

  advance(): void {
    const value = this.page[this.index++]!;
    // The merge is only right over sorted input: a source out of order is a bug, not a finding.
    if (this.last !== null && compareCodePoints(value, this.last) < 0)
      throw new Error(`shard ${this.shard}: ids not sorted`);
    this.last = value;
  }
}

/** Ids that appear more than once over all sources (within one or across several). */
export async function findRepeats(sources: PageSource[], describe = "on shards"): Promise<Repeats> {
  const heads = sources.map((source, shard) => new Head(shard, source));
  const repeats: Repeats = { count: 0, examples: [] };
  for (;;) {
    let smallest: string | null = null;
    for (const head of heads) {
      const value = await head.current();
      if (value !== null && (smallest === null || compareCodePoints(value, smallest) < 0)) smallest = value;
    }
    if (smallest === null) return repeats;
    const shards: number[] = [];
    for (const head of heads) {
      while ((await head.current()) === smallest) {
        shards.push(head.shard);
        head.advance();
      }
    }
    if (shards.length > 1) {
      repeats.count++;
      if (repeats.examples.length < examplesMax) {
        repeats.examples.push(`${smallest} ×${shards.length} ${describe} ${shards.join(", ")}`);
      }
    }
  }
}

export const pageRowsMax = 10_000;

/**
 * Runs `work` with one sorted page source per pool, each a cursor over `sql` (one text column,
 * named `id`, sorted by `COLLATE "C"`) inside its own read-only transaction.
 */
export async function withSortedCursors<T>(
  pools: Pool[],
  sql: string,
  work: (sources: PageSource[]) => Promise<T>,
): Promise<T> {
  const clients = await Promise.all(pools.map((pool) => pool.connect()));
  try {
    for (const client of clients) {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      await client.query(`DECLARE verify_ids NO SCROLL CURSOR FOR ${sql}`);
    }
    const sources = clients.map(
      (client) => async () =>
        (await client.query<{ id: string }>(`FETCH ${pageRowsMax} FROM verify_ids`)).rows.map((r) => r.id),
    );
    return await work(sources);
  } finally {
    for (const client of clients) {
      await client.query("ROLLBACK").catch(() => {});
      client.release();
    }
  }
}
