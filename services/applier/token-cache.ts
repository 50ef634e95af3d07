// A bounded map from token id to what is known of it, in two generations. Entries go into the
// recent one. While everything fits the bound nothing is dropped, so a partition loaded whole stays
// whole. Over the bound, the recent generation becomes the older one and the previous older one is
// dropped whole; a hit in the older generation is copied into the recent one, so a token in use
// survives the turn. Tokens not seen for a whole generation are the ones dropped.
//
// Why not one Map kept in recency order (delete + set on every use, delete the oldest beyond the
// bound): at a full cache every chunk deleted and re-inserted thousands of entries, and V8 rebuilt
// the Map's hash table again and again (tombstones, shrink, grow). Those tables are large objects
// that live until a full collection; a sampled heap profile at 2,000,000 events over 500,000
// tokens put 41 % of all large-object bytes an applier allocated in them, and the old generation
// grew to match (docs/benchmarks.md, fourth pass). Two Maps that only grow and are dropped whole
// allocate each table size about once per generation.
import { assert } from "../common/assert.ts";

export class TokenCache<V> {
  private recent = new Map<string, V>();
  private older = new Map<string, V>();
  /** Ids in both generations (copied forward or set again): counted once in `size`. */
  private shadowed = 0;

  /** Distinct ids held. */
  get size(): number {
    return this.recent.size + this.older.size - this.shadowed;
  }

  has(id: string): boolean {
    return this.recent.has(id) || this.older.has(id);
  }

  /** The value held for `id`, or undefined; a hit in the older generation is copied forward. */
  get(id: string): V | undefined {
    const value = this.recent.get(id);
    if (value !== undefined || this.recent.has(id)) return value;
    if (!this.older.has(id)) return undefined;
    const older = this.older.get(id) as V;
    this.setRecent(id, older);
    return older;
  }

  set(id: string, value: V): void {
    this.setRecent(id, value);
  }

  /**
   * Keeps at most `capacity` ids (plus the ids of `keep`, which are never dropped). Returns true
   * when ids were dropped: the cache no longer holds everything it was given.
   */
  trim(capacity: number, keep: ReadonlySet<string>): boolean {
    assert(Number.isSafeInteger(capacity) && capacity >= 1, "a token cache capacity is a positive integer");
    if (this.size <= capacity) return false;
    for (const id of keep) this.get(id); // copies a kept id forward if only the older generation holds it
    this.older = this.recent;
    this.recent = new Map();
    this.shadowed = 0;
    // A generation over three quarters of the bound (the first turn of a view that held everything,
    // a working set near the bound, a share that shrank at a rebalance) is cut to its newest half,
    // so that the next generation has room to grow before the next turn. Otherwise generations
    // settle between a quarter and three quarters of the bound and nothing is rebuilt.
    if (this.older.size > Math.ceil((capacity * 3) / 4)) this.keepNewest(Math.ceil(capacity / 2), keep);
    return true;
  }

  /** Rebuilds the older generation with the kept ids and its newest others, up to `room` ids. */
  private keepNewest(room: number, keep: ReadonlySet<string>): void {
    const kept = new Map<string, V>();
    for (const id of keep) if (this.older.has(id)) kept.set(id, this.older.get(id) as V);
    const ids = [...this.older.keys()];
    for (let k = ids.length - 1; k >= 0 && kept.size < room; k--) {
      const id = ids[k]!;
      if (!kept.has(id)) kept.set(id, this.older.get(id) as V);
    }
    this.older = kept;
  }

  private setRecent(id: string, value: V): void {
    if (!this.recent.has(id) && this.older.has(id)) this.shadowed += 1;
    this.recent.set(id, value);
  }
}
