// The simulated processes: each an ApplierMember with its own scripted consumer, all sharing the
// store and the log. A supervisor restarts a member that exhausted its retries, as an orchestrator
// would; a member stopped on an IncarnationError stays down (an operator must decide); a member
// stopped by anything else is a bug the simulation reports.
import { IncarnationError } from "../../../services/applier/incarnation.ts";
import { ApplierMember } from "../../../services/applier/member.ts";
import { RetriesExhaustedError } from "../../../services/common/retry.ts";
import { SimConsumer, type SimGroup } from "./consumer.ts";
import type { SimLog } from "./log.ts";
import type { Prng } from "./prng.ts";
import { silentLogger } from "./scripted.ts";
import type { SimStore } from "./store.ts";

export type Slot = {
  name: string;
  member: ApplierMember;
  consumer: SimConsumer;
  state: "live" | "draining" | "gone";
  /** eachBatch and onAssigned calls not settled yet */
  pending: Set<Promise<void>>;
};

export type MemberSettings = {
  topic: string;
  chunkEventsMax: number;
  attemptsMax: number;
  backoffMsMax: number;
};

export class Members {
  readonly slots: Slot[] = [];
  incarnationStops = 0;
  restarts = 0;
  /** Why members stopped, for a failure report. */
  readonly stops: string[] = [];
  readonly restartsMax: number;
  private started = 0;
  private readonly deps: {
    store: SimStore;
    log: SimLog;
    group: SimGroup;
    prng: Prng;
    settings: MemberSettings;
  };

  constructor(deps: Members["deps"], restartsMax: number) {
    this.deps = deps;
    this.restartsMax = restartsMax;
  }

  live(): Slot[] {
    return this.slots.filter((s) => s.state === "live");
  }

  start(): Slot {
    const { store, log, group, prng, settings } = this.deps;
    const name = `m${this.started++}`;
    const consumer = new SimConsumer(name, settings.topic, group);
    const member = new ApplierMember({
      settings: {
        group: "sim-group",
        topic: settings.topic,
        chunkEventsMax: settings.chunkEventsMax,
        retry: { attemptsMax: settings.attemptsMax, backoffMsMax: settings.backoffMsMax },
      },
      store,
      log,
      consumer,
      logger: silentLogger,
    });
    const slot: Slot = { name, member, consumer, state: "live", pending: new Set() };
    this.slots.push(slot);
    group.join(consumer, prng);
    return slot;
  }

  track(slot: Slot, work: Promise<void>): void {
    slot.pending.add(work);
    void work.finally(() => slot.pending.delete(work));
  }

  /** The process is gone: it leaves the group (at once: the session timeout is not simulated). */
  private leave(slot: Slot): void {
    slot.state = "gone";
    slot.consumer.alive = false;
    this.deps.group.leave(slot.consumer, this.deps.prng);
  }

  crash(slot: Slot): void {
    slot.member.stop();
    this.leave(slot);
  }

  drain(slot: Slot): void {
    slot.member.stop();
    slot.state = "draining";
  }

  /** Acts on members that stopped; returns a problem when a member stopped on an unexpected error. */
  supervise(): string | null {
    for (const slot of this.slots) {
      if (slot.state === "draining" && !slot.consumer.busy()) {
        this.leave(slot);
        if (slot.member.fatal === null) this.start(); // a rolling restart
      }
      if (slot.state !== "live" || slot.member.fatal === null) continue;
      const fatal = slot.member.fatal;
      this.leave(slot);
      this.stops.push(`${slot.name}: ${fatal.name}: ${fatal.message}`);
      if (fatal instanceof IncarnationError) {
        this.incarnationStops++;
      } else if (fatal instanceof RetriesExhaustedError) {
        if (this.restarts < this.restartsMax) {
          this.restarts++;
          this.start();
        }
      } else {
        return `member ${slot.name} stopped on ${fatal.name}: ${fatal.message}\n${fatal.stack}`;
      }
    }
    return null;
  }

  describe(): string {
    return this.slots
      .filter((s) => s.state !== "gone")
      .map((s) => `${s.state} ${s.consumer.describe()} views [${s.member.loadedPartitions()}]`)
      .join("\n");
  }
}
