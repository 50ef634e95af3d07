// A bounded map from token id to what is known of it, in two generations: entries go into the
// recent one; when it holds half the bound, it becomes the older one and the previous older one is
// dropped whole. A hit in the older generation is copied into the recent one, so a token in use
// survives the next turn; tokens not seen for a whole generation are the ones dropped.
//
// Why not one Map kept in recency order (delete + set on every use, delete the oldest beyond the
// bound): at a full cache every chunk deleted and re-inserted thousands of entries, and V8 rebuilt
// the Map's hash table again and again (tombstones, shrink, grow). Those tables are large objects
// that live until a full collection; a sampled heap profile at 2,000,000 events over 500,000
// tokens put 40 % of all large-object bytes an applier allocated in them, and the old generation
// grew to match (docs/benchmarks.md, memory). Two Maps that only grow and are dropped whole
// allocate each table size once per generation.
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
   * Keeps at most about `capacity` ids (each generation half of it, the kept ids on top), never
   * dropping `keep`. Returns true when an id was dropped (the cache no longer holds all it was
   * given).
   */
  trim(capacity: number, keep: ReadonlySet<string>): boolean {
    assert(Number.isSafeInteger(capacity) && capacity >= 1, "a token cache capacity is a positive integer");
    if (this.recent.size < Math.ceil(capacity / 2)) return false;
    for (const id of keep)
      if (!this.recent.has(id) && this.older.has(id)) this.setRecent(id, this.older.get(id) as V);
    const dropped = this.older.size - this.shadowed;
    this.older = this.recent;
    this.recent = new Map();
    this.shadowed = 0;
    // One generation over the whole bound (a share that shrank at a rebalance, a chunk with more
    // tokens than the share): keep the kept ids and the newest others, up to the bound.
    if (this.older.size > capacity) return this.keepNewest(capacity, keep) || dropped > 0;
    return dropped > 0;
  }

  private keepNewest(capacity: number, keep: ReadonlySet<string>): boolean {
    const kept = new Map<string, V>();
    for (const id of keep) if (this.older.has(id)) kept.set(id, this.older.get(id) as V);
    const ids = [...this.older.keys()];
    for (let k = ids.length - 1; k >= 0 && kept.size < capacity; k--) {
      const id = ids[k]!;
      if (!kept.has(id)) kept.set(id, this.older.get(id) as V);
    }
    this.older = kept;
    return true;
  }

  private setRecent(id: string, value: V): void {
    if (!this.recent.has(id) && this.older.has(id)) this.shadowed += 1;
    this.recent.set(id, value);
  }
}
