// A seeded simulation of the applier's consumer-group members, in the spirit of TigerBeetle's VOPR:
// one seed drives the topic (valid and hostile records, holes, retention, a re-creation), the group
// (joins, rebalances, crashes, drains, a corrupted committed offset), each consumer's fetches and
// deliveries, and the store (loads and writes held open and released in any order, transient
// failures, answers lost after a commit), with time advanced on fake timers. After every step the
// checker compares the store with the pure model; then a quiet phase must bring every partition up
// to date, or stop the members on an IncarnationError when the topic was re-created.
import { keyPartitioner } from "../../../services/common/partitioner.ts";
import { Checker } from "./check.ts";
import { SimGroup } from "./consumer.ts";
import { EventGenerator } from "./generator.ts";
import { SimLog } from "./log.ts";
import { Members, type Slot } from "./members.ts";
import type { ModelRules } from "./model.ts";
import { Prng } from "./prng.ts";
import { noFaults, SimStore, type StoreFaults } from "./store.ts";

export type SimClock = { advance(ms: number): Promise<void> };

export type SimCounts = Record<string, number>;

export type SimResult = {
  seed: number;
  steps: number;
  recreated: boolean;
  /** What the run went through (records, commits, fences, seeks, pauses, restarts, ...) */
  counts: SimCounts;
  failure: string | null;
};

const topic = "sim-transfers";
const startMs = Date.UTC(2026, 10, 22);
const calmFaults: StoreFaults = { holdChance: 0.25, transientChance: 0.04, lostAnswerChance: 0.02 };
const outageFaults: StoreFaults = { holdChance: 0.4, transientChance: 0.5, lostAnswerChance: 0.05 };
const actionWeights = {
  produce: 14,
  fetch: 22,
  deliver: 22,
  release: 14,
  join: 8,
  commitHints: 3,
  corruptHint: 1,
  rebalance: 1.5,
  addMember: 1,
  crash: 0.4,
  drain: 0.4,
  topicCheck: 2,
  retention: 1,
  outage: 0.8,
  tick: 5,
} as const;
type Action = keyof typeof actionWeights;
/** Steps kept for a failure report (TALLY_TEST_SIM_TRACE for more). */
const traceLength = Number(process.env.TALLY_TEST_SIM_TRACE ?? 60);

export class Simulation {
  readonly seed: number;
  private readonly prng: Prng;
  private readonly clock: SimClock;
  private readonly rules: ModelRules;
  private readonly log: SimLog;
  private readonly store: SimStore;
  private readonly group: SimGroup;
  private readonly members: Members;
  private readonly checker: Checker;
  private generator: EventGenerator;
  private readonly shape: { partitions: number; membersMax: number; fetchMax: number; chaosSteps: number };
  private readonly recreateAt: number | null;
  private recreated = false;
  private outage = false;
  private outageEndsAt: number | null = null;
  private earlyJoins = 0;
  private records = 0;
  private step = 0;
  /** Simulated milliseconds so far. */
  private simMs = 0;
  private readonly trace: string[] = [];

  constructor(seed: number, clock: SimClock, chaosSteps: number, windowReuseMs = 0) {
    this.seed = seed;
    this.clock = {
      advance: (ms) => {
        this.simMs += ms;
        return clock.advance(ms);
      },
    };
    this.prng = new Prng(seed);
    const partitions = this.prng.between(1, 4);
    this.shape = {
      partitions,
      membersMax: this.prng.between(2, 3),
      fetchMax: this.prng.between(1, 12),
      chaosSteps,
    };
    this.recreateAt = this.prng.chance(0.3) ? this.prng.between(chaosSteps / 4, chaosSteps) : null;
    const partitionOfKey = keyPartitioner(partitions);
    this.rules = { partitionOfKey, window: { pastDays: 400, futureDays: 2 } };
    this.log = new SimLog(partitions, `topic-id-${seed}-1`, { ms: windowReuseMs, nowMs: () => this.simMs });
    this.store = new SimStore(this.prng.fork(), {
      topic,
      tokensMax: this.prng.between(2, 40),
      window: this.rules.window,
      partitionOfKey,
    });
    this.store.faults = calmFaults;
    this.log.deliver = (what, answer) => this.store.maybeHold(what, answer);
    this.group = new SimGroup(partitions);
    const settings = { topic, chunkEventsMax: this.prng.between(1, 6), attemptsMax: 6, backoffMsMax: 100 };
    this.members = new Members(
      { store: this.store, log: this.log, group: this.group, prng: this.prng, settings },
      12,
    );
    this.checker = new Checker(this.log, this.store, this.rules);
    this.generator = new EventGenerator(this.prng.fork(), this.rules, partitions, "i1", startMs);
  }

  async run(): Promise<SimResult> {
    for (let k = 0; k < 2; k++) this.members.start();
    let failure: string | null = null;
    for (; this.step < this.shape.chaosSteps && failure === null; this.step++) {
      if (this.step === this.recreateAt) this.recreate();
      else if (this.step === this.outageEndsAt) this.toggleOutage();
      else await this.act(this.prng.weighted(actionWeights));
      failure = await this.settle();
    }
    failure ??= await this.quietPhase();
    failure ??= this.finalCheck();
    return {
      seed: this.seed,
      steps: this.step,
      recreated: this.recreated,
      counts: {
        records: this.records,
        ...this.store.counts,
        ...this.group.counts,
        earlyJoins: this.earlyJoins,
        incarnationStops: this.members.incarnationStops,
        restarts: this.members.restarts,
      },
      failure: failure === null ? null : this.report(failure),
    };
  }

  /** Time moves on a little, the supervisor acts, the checker looks. */
  private async settle(): Promise<string | null> {
    await this.clock.advance(this.prng.between(0, 3));
    return this.members.supervise() ?? this.checker.afterStep();
  }

  private note(text: string): void {
    this.trace.push(`#${this.step} ${text}`);
    if (this.trace.length > traceLength) this.trace.shift();
  }

  private async act(action: Action): Promise<void> {
    const live = this.members.live();
    const slot = live.length > 0 ? this.prng.pick(live) : null;
    switch (action) {
      case "produce":
        return this.produce(this.prng.between(1, 4));
      case "fetch":
        return this.fetch(slot);
      case "deliver":
        return this.deliver();
      case "release":
        return this.release();
      case "join":
        return this.join(this.prng.chance(0.1));
      case "commitHints":
        slot?.consumer.commit();
        return;
      case "corruptHint":
        return this.corruptHint();
      case "rebalance":
        this.note("rebalance");
        return this.group.rebalance(this.prng);
      case "addMember":
        if (live.length < this.shape.membersMax) this.note(`start ${this.members.start().name}`);
        return;
      case "crash":
      case "drain":
        return this.stopOne(slot, action);
      case "topicCheck":
        return this.topicCheck(slot);
      case "retention":
        return this.retention();
      case "outage":
        return this.toggleOutage();
      case "tick":
        return this.clock.advance(this.prng.between(10, 400));
    }
  }

  private produce(count: number): void {
    for (let k = 0; k < count; k++) {
      const p = this.prng.int(this.shape.partitions);
      const skipped = this.prng.chance(0.08) ? this.prng.between(1, 3) : 0;
      const record = this.log.append(p, this.generator.next(p), skipped);
      this.records++;
      this.note(`produce ${p}@${record.offset}`);
    }
  }

  private fetch(slot: Slot | null): void {
    if (slot === null || slot.consumer.assigned.size === 0) return;
    const p = this.prng.pick([...slot.consumer.assigned]);
    const unaware = this.prng.chance(0.5); // of a rebalance under way, if one is
    const batch = slot.consumer.fetch(p, this.log, this.prng.between(1, this.shape.fetchMax), unaware);
    if (batch !== null)
      this.note(
        `${slot.name} fetch ${p} from ${batch.fetchedOffset}: ${batch.records.map((r) => r.offset).join(",")}`,
      );
  }

  private deliver(): void {
    const ready = this.members
      .live()
      .flatMap((slot) =>
        [...slot.consumer.batches.values()].filter((b) => b.state === "fetched").map((b) => ({ slot, b })),
      );
    if (ready.length === 0) return;
    const { slot, b } = this.prng.pick(ready);
    b.state = "processing";
    this.note(`${slot.name} eachBatch ${b.partition} [${b.records.map((r) => r.offset).join(",")}]`);
    const payload = slot.consumer.payloadOf(b);
    if (payload.isStale()) this.group.counts.staleBatches++;
    const work = slot.member.eachBatch(payload).finally(() => {
      if (slot.consumer.batches.get(b.partition) === b) slot.consumer.batches.delete(b.partition);
    });
    this.members.track(slot, work);
  }

  private release(): void {
    if (this.store.held.length === 0) return;
    const index = this.prng.int(this.store.held.length);
    const fault = this.prng.chance(this.outage ? 0.5 : 0.05) ? "transient" : "none";
    this.note(`release ${this.store.releaseOne(index, fault)}${fault === "none" ? "" : " (fails)"}`);
  }

  /** A member rejoins with its pending assignment; kafkajs waits for its batches, unless `early`. */
  private join(early: boolean): void {
    const waiting = this.members
      .live()
      .filter((s) => s.consumer.pendingAssignment !== null && (early || !s.consumer.busy()));
    if (waiting.length === 0) return;
    const slot = this.prng.pick(waiting);
    if (slot.consumer.busy()) this.earlyJoins++;
    const partitions = slot.consumer.rejoin();
    this.note(`${slot.name} joins generation ${slot.consumer.generation}: [${partitions}]`);
    this.members.track(slot, slot.member.onAssigned(partitions));
  }

  private corruptHint(): void {
    const p = this.prng.int(this.shape.partitions);
    const { lowOffset, highOffset } = this.log.current.partitions[p]!;
    const hint = lowOffset + BigInt(this.prng.int(Number(highOffset - lowOffset) + 1));
    this.group.committed.set(p, hint);
    this.note(`committed offset of ${p} set to ${hint} (a restored database, a lost commit)`);
  }

  private stopOne(slot: Slot | null, how: "crash" | "drain"): void {
    if (slot === null || this.members.live().length < 2) return;
    this.note(`${how} ${slot.name}`);
    if (how === "crash") {
      this.members.crash(slot);
      this.members.start();
    } else {
      this.members.drain(slot);
    }
  }

  private topicCheck(slot: Slot | null): void {
    if (slot === null) return;
    this.note(`${slot.name} checks the topic id`);
    slot.member.checkTopicId(this.log.current.topicId);
  }

  /** Retention deletes records, only ones already applied (below the stored offset). */
  private retention(): void {
    const p = this.prng.int(this.shape.partitions);
    const row = this.store.rows.get(p);
    if (row === undefined || row.topicId !== this.log.current.topicId) return;
    const low = this.log.current.partitions[p]!.lowOffset;
    if (row.nextOffset <= low) return;
    const to = low + BigInt(this.prng.int(Number(row.nextOffset - low) + 1));
    this.log.retain(p, to);
    this.note(`retention: partition ${p} starts at ${to}`);
  }

  private toggleOutage(): void {
    this.outage = !this.outage;
    // An outage ends by itself within a bound: a long one only restarts members again and again.
    this.outageEndsAt = this.outage ? this.step + this.prng.between(10, 120) : null;
    this.store.faults = this.outage ? outageFaults : calmFaults;
    this.log.unavailable = this.outage && this.prng.chance(0.3);
    this.note(this.outage ? `outage begins${this.log.unavailable ? " (Kafka too)" : ""}` : "outage ends");
  }

  private recreate(): void {
    this.log.recreate(`topic-id-${this.seed}-2`);
    this.generator = new EventGenerator(
      this.prng.fork(),
      this.rules,
      this.shape.partitions,
      "i2",
      startMs + 10 ** 9,
    );
    this.recreated = true;
    // Producers may well write to the new topic before any member notices: up to twice what the old
    // one held (a cluster rebuilt, a ledger restored next to another Kafka).
    const burst = this.prng.int(2 * this.records + 1);
    this.note(`the topic is deleted and created again; ${burst} records written to it at once`);
    this.produce(burst);
  }

  /** No faults, nothing new: fetch, deliver, release and rejoin until nothing is left to do. */
  private async quietPhase(): Promise<string | null> {
    this.store.faults = noFaults;
    this.log.unavailable = false;
    this.outage = false;
    this.note("quiet phase");
    for (let round = 0; round < 3_000; round++, this.step++) {
      while (this.store.held.length > 0) this.store.releaseOne(0, "none");
      if (this.members.live().length === 0 && this.members.incarnationStops === 0) this.members.start();
      this.join(false);
      for (const slot of this.members.live()) {
        slot.consumer.commit();
        for (const p of slot.consumer.assigned) slot.consumer.fetch(p, this.log, this.shape.fetchMax);
        if (round % 20 === 19) this.topicCheck(slot);
      }
      while (
        this.members.live().some((s) => [...s.consumer.batches.values()].some((b) => b.state === "fetched"))
      )
        this.deliver();
      await this.clock.advance(this.prng.between(20, 300));
      const failure = this.members.supervise() ?? this.checker.afterStep();
      if (failure !== null) return failure;
      if (this.quiet()) return null;
    }
    return `no quiet state after 3000 rounds: behind [${this.checker.behind()}]`;
  }

  private quiet(): boolean {
    const live = this.members.live();
    if (live.length === 0) return true;
    if (live.some((s) => s.consumer.pendingAssignment !== null || s.pending.size > 0)) return false;
    return this.checker.behind().length === 0 && this.checker.boundElsewhere().length === 0;
  }

  private finalCheck(): string | null {
    const elsewhere = this.checker.boundElsewhere();
    const stops = this.members.incarnationStops;
    if (elsewhere.length > 0) {
      if (stops === 0)
        return `partitions [${elsewhere}] are bound to another topic id, yet no member stopped on an IncarnationError`;
      if (this.members.live().length > 0)
        return `members still run over partitions [${elsewhere}] of another incarnation`;
      return null;
    }
    if (stops > 0) return `${stops} IncarnationError(s) though every stored offset belongs to the topic`;
    const behind = this.checker.behind();
    if (behind.length > 0) return `stalled: partitions [${behind}] not caught up`;
    return null;
  }

  private report(failure: string): string {
    const rows = [...this.store.rows].map(
      ([p, r]) => `${p}: next ${r.nextOffset} first ${r.firstOffset} id ${r.topicId}`,
    );
    const highs = this.log.current.partitions.map((l, p) => `${p}: [${l.lowOffset}, ${l.highOffset})`);
    return [
      `seed ${this.seed} failed at step ${this.step}: ${failure}`,
      `replay alone: TALLY_TEST_SIM_SEED=${this.seed} npx vitest run test/unit/member-sim.unit.spec.ts`,
      `shape: ${JSON.stringify(this.shape)} recreateAt ${this.recreateAt}`,
      `offsets rows: ${rows.join("; ")}`,
      `log (topic id ${this.log.current.topicId}): ${highs.join("; ")}`,
      `members:\n${this.members.describe()}`,
      `held: ${this.store.held.map((h) => h.what).join(", ")}`,
      `stops:\n${this.members.stops.join("\n")}`,
      `last steps:\n${this.trace.join("\n")}`,
    ].join("\n");
  }
}
