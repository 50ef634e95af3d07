// The member's view of each partition it owns: stored offset, topic id and token states
// (partition-state.ts). A view is loaded once, by whoever asks first (the assignment, or a batch that
// arrives before it), and published whole: every caller awaits the same load (single flight), so no
// chunk plans on a half-loaded view. A partition dropped while its view loaded is not published, so
// no older snapshot overwrites states a chunk has committed since. Per partition it also keeps where
// the partition was sought back to fill a gap.
import type { Deferrals, OnRetry } from "./deferrals.ts";
import { IncarnationError } from "./incarnation.ts";
import type { PartitionState } from "./partition-state.ts";
import type { LogInspector, PartitionStore } from "./store.ts";

export class PartitionViews {
  /** Views loaded whole; a view is never here half-made. */
  private readonly states = new Map<number, PartitionState>();
  /** Loads under way: every caller for the partition awaits the same one (single flight). */
  private readonly loading = new Map<number, Promise<PartitionState>>();
  /** Partitions sought back to fill a gap, and where to: a second gap at the same place is checked. */
  private readonly gapSeeks = new Map<number, bigint>();
  private readonly store: PartitionStore;
  private readonly log: LogInspector;
  private readonly deferrals: Deferrals;

  constructor(deps: { store: PartitionStore; log: LogInspector; deferrals: Deferrals }) {
    this.store = deps.store;
    this.log = deps.log;
    this.deferrals = deps.deferrals;
  }

  /** Token states held over every loaded view (the token cache's size). */
  tokensHeld(): number {
    let tokens = 0;
    for (const state of this.states.values()) tokens += state.tokenCount;
    return tokens;
  }

  /** The partition's view if loaded whole, else undefined. */
  loaded(partition: number): PartitionState | undefined {
    return this.states.get(partition);
  }

  /** The partitions whose view is loaded, and their views. */
  entries(): IterableIterator<[number, PartitionState]> {
    return this.states.entries();
  }

  /** Whether `state` is still the partition's published view (not dropped, not replaced). */
  isCurrent(partition: number, state: PartitionState): boolean {
    return this.states.get(partition) === state;
  }

  /** On a new assignment: forgets the partitions not in it, and every gap seek. */
  keepOnly(assigned: ReadonlySet<number>): void {
    this.store.partitionsOwned?.(assigned.size);
    for (const p of [...this.states.keys(), ...this.loading.keys()]) {
      if (!assigned.has(p)) this.drop(p);
    }
    this.gapSeeks.clear(); // seeks before this assignment say nothing about the offsets to come
  }

  /** The partition's view: loaded already, being loaded (await that load), or loaded now. */
  viewOf(partition: number): Promise<PartitionState> {
    const loaded = this.states.get(partition);
    if (loaded !== undefined) return Promise.resolve(loaded);
    const pending = this.loading.get(partition);
    if (pending !== undefined) return pending;
    const load = (async () => {
      try {
        return await this.store.load(partition, await this.log.window(partition));
      } catch (error) {
        // The log's end was read before the stored offset: records written and applied by another
        // member in between put the stored offset "above the end". A window read after it decides.
        if (!(error instanceof IncarnationError) || error.problem !== "above_log_end") throw error;
        return this.store.load(partition, await this.log.window(partition));
      }
    })();
    this.loading.set(partition, load);
    const settle = () => {
      if (this.loading.get(partition) === load) this.loading.delete(partition);
    };
    load.then((state) => {
      // Published only if nothing dropped the partition while it loaded.
      if (this.loading.get(partition) === load) this.states.set(partition, state);
      settle();
    }, settle);
    return load;
  }

  /** The partition's view in eachBatch: a load's failures go through retry-or-pause. */
  viewInBatch(partition: number, onRetry: OnRetry): Promise<PartitionState> {
    // A view already loaded is no attempt: it neither counts nor starts the count again.
    const loaded = this.states.get(partition);
    if (loaded !== undefined) return Promise.resolve(loaded);
    return this.deferrals.run(partition, "load the partition", () => this.viewOf(partition), onRetry, "read");
  }

  /** Forgets the partition's view and any load under way: the next caller loads it afresh. */
  drop(partition: number): void {
    this.states.delete(partition);
    this.loading.delete(partition);
    this.gapSeeks.delete(partition);
    this.deferrals.forget(partition);
  }

  /** Drops the partition's view if it is still `state` (a newer one is kept). */
  dropIfCurrent(partition: number, state: PartitionState): void {
    if (this.states.get(partition) === state) this.drop(partition);
  }

  /** Where the partition was last sought back to fill a gap, if it was. */
  gapSeekOf(partition: number): bigint | undefined {
    return this.gapSeeks.get(partition);
  }

  rememberGapSeek(partition: number, offset: bigint): void {
    this.gapSeeks.set(partition, offset);
  }

  forgetGapSeek(partition: number): void {
    this.gapSeeks.delete(partition);
  }
}
