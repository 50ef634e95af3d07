// Records for the simulated topic: valid chains of mints, moves and burns, and hostile records among
// them (exact resends, reused ids, double spends from a former owner, tokens on the wrong partition,
// garbage bytes, bad fields, keys that are not the token, wrong values, unknown and existing tokens,
// events out of the window). The generator folds the model over what it wrote, so a "valid" move
// really starts from the token's current state.
import type { TransferEvent } from "../../../services/common/event.ts";
import { encodeEvent, type LogRecord, type ModelRules, PartitionModel } from "./model.ts";
import type { Prng } from "./prng.ts";

export type RecordBody = Omit<LogRecord, "offset">;

const wallets = ["w0", "w1", "w2", "w3", "w4", "w5", "w6"];
const assets = ["USD", "RBT"];
const kindWeights = {
  mint: 14,
  move: 30,
  burn: 3,
  resend: 8,
  reuseId: 2,
  doubleSpend: 8,
  wrongPartition: 4,
  garbage: 2,
  invalidField: 2,
  keyMismatch: 2,
  valueMismatch: 3,
  unknownToken: 2,
  tokenExists: 2,
  outOfWindow: 2,
} as const;
type Kind = keyof typeof kindWeights;
const hourMs = 3_600_000;

export class EventGenerator {
  private readonly prng: Prng;
  private readonly rules: ModelRules;
  private readonly partitions: number;
  private readonly tag: string;
  /** Per partition: the fold of what was written, the records written, former (owner, state) pairs. */
  private readonly folds: PartitionModel[];
  private readonly written: RecordBody[][];
  private readonly formers = new Map<string, { owner: string; state: string }[]>();
  private tokenCount = 0;
  private stateCount = 0;
  private clockMs: number;

  constructor(prng: Prng, rules: ModelRules, partitions: number, tag: string, startMs: number) {
    this.prng = prng;
    this.rules = rules;
    this.partitions = partitions;
    this.tag = tag;
    this.clockMs = startMs;
    this.folds = Array.from({ length: partitions }, (_, p) => new PartitionModel(p, rules));
    this.written = Array.from({ length: partitions }, () => []);
  }

  /** The next record for `partition`, folded into the generator's own view of that partition. */
  next(partition: number): RecordBody {
    this.clockMs += this.prng.between(1, 2_000);
    const body = this.bodyOf(partition, this.prng.weighted(kindWeights));
    this.written[partition]!.push(body);
    this.folds[partition]!.next({ offset: BigInt(this.written[partition]!.length), ...body });
    return body;
  }

  private bodyOf(partition: number, kind: Kind): RecordBody {
    const fold = this.folds[partition]!;
    const live = [...fold.tokens.entries()].filter(([, s]) => !s.retired);
    const earlier = this.written[partition]!;
    if (kind === "resend" && earlier.length > 0) return this.prng.pick(earlier);
    if ((kind === "move" || kind === "burn" || kind === "valueMismatch") && live.length > 0) {
      const [token, state] = this.prng.pick(live);
      this.remember(token, state.owner!, state.state);
      const to = kind === "burn" ? null : this.otherWallet(state.owner!);
      const amount = kind === "valueMismatch" ? state.amount + 1n : state.amount;
      return this.recordOf(
        this.eventOf(token, state.owner!, to, state.state, { asset: state.asset, amount }),
      );
    }
    if (kind === "doubleSpend" && live.length > 0) {
      const [token, state] = this.prng.pick(live);
      const former = this.formers.get(token);
      const { owner, state: prev } = former
        ? this.prng.pick(former)
        : { owner: state.owner!, state: "s-old" };
      return this.recordOf(this.eventOf(token, owner, this.otherWallet(owner), prev, state));
    }
    if (kind === "reuseId" && fold.appliedIds.size > 0) {
      const id = this.prng.pick([...fold.appliedIds]);
      const event = this.mintOf(this.tokenOn(partition));
      return this.recordOf({ ...event, transfer_id: this.prng.chance(0.5) ? id.toUpperCase() : id });
    }
    if (kind === "tokenExists" && fold.tokens.size > 0) {
      return this.recordOf(this.mintOf(this.prng.pick([...fold.tokens.keys()])));
    }
    if (kind === "wrongPartition" && this.partitions > 1) {
      const elsewhere = (partition + this.prng.between(1, this.partitions - 1)) % this.partitions;
      return this.recordOf(this.mintOf(this.tokenOn(elsewhere)));
    }
    if (kind === "unknownToken") {
      const token = this.tokenOn(partition);
      return this.recordOf(this.eventOf(token, "w0", "w1", "s-none", { asset: "USD", amount: 5n }));
    }
    return this.hostileOrMint(partition, kind);
  }

  private hostileOrMint(partition: number, kind: Kind): RecordBody {
    const mint = this.mintOf(this.tokenOn(partition));
    if (kind === "garbage") return { ...this.recordOf(mint), value: Buffer.from([0, 0, 0, 0, 1, 0xff]) };
    if (kind === "invalidField") return this.recordOf({ ...mint, asset: "usd" });
    if (kind === "keyMismatch") return { ...this.recordOf(mint), key: Buffer.from(`${mint.token_id}-x`) };
    if (kind === "outOfWindow")
      return this.recordOf({ ...mint, occurred_at: this.clockMs - 900 * 24 * hourMs });
    return this.recordOf(mint);
  }

  private remember(token: string, owner: string, state: string): void {
    const list = this.formers.get(token) ?? [];
    if (list.length < 8) list.push({ owner, state });
    this.formers.set(token, list);
  }

  private otherWallet(owner: string): string {
    const others = wallets.filter((w) => w !== owner);
    return this.prng.pick(others);
  }

  /** A new token id whose key the partitioner maps to `partition`. */
  private tokenOn(partition: number): string {
    for (let tries = 0; tries < 10_000; tries++) {
      const token = `${this.tag}-t${this.tokenCount++}`;
      if (this.rules.partitionOfKey(Buffer.from(token)) === partition) return token;
    }
    throw new Error(`no token id maps to partition ${partition}`);
  }

  private mintOf(token: string): TransferEvent {
    const amount = BigInt(this.prng.between(1, 1_000_000));
    const event = this.eventOf(token, null, this.prng.pick(wallets), null, {
      asset: this.prng.pick(assets),
      amount,
    });
    return event;
  }

  private eventOf(
    token: string,
    from: string | null,
    to: string | null,
    prev: string | null,
    value: { asset: string; amount: bigint },
  ): TransferEvent {
    return {
      transfer_id: this.uuid(),
      batch_id: null,
      token_id: token,
      asset: value.asset,
      amount: value.amount,
      from_wallet: from,
      to_wallet: to,
      prev_state: prev,
      next_state: `s${this.stateCount++}`,
      occurred_at: this.clockMs - this.prng.between(0, hourMs),
    };
  }

  private recordOf(event: TransferEvent): RecordBody {
    return { key: Buffer.from(event.token_id), value: encodeEvent(event), timestampMs: this.clockMs };
  }

  private uuid(): string {
    const hex = Array.from({ length: 4 }, () => this.prng.u32().toString(16).padStart(8, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
  }
}
