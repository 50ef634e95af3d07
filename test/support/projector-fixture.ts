// Test support for the projector and verify integration tests: per-test databases, and a ledger
// model that writes batches the way the applier does (ledger rows, token state, rejections,
// offsets compare-and-set, balance deltas, NOTIFY, in one shard transaction), while computing
// the expected balances on its own, independently of any SQL. Balance deltas go either as one
// balance_delta_chunks row per batch (the applier today) or as legacy balance_deltas rows (an
// applier before issue #13, whose rows an upgraded projector must still read).
import { randomUUID } from "node:crypto";
import { type Config, loadConfig } from "../../services/common/config.ts";
import { type Client, createPool, type Pool } from "../../services/common/pg.ts";
import { shardOf } from "../../services/common/shards.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { type DeltaForm, insertDeltas } from "./projector-deltas.ts";
import { dropDatabases, testStack } from "./stack.ts";

export type TestDatabases = { config: Config; env: NodeJS.ProcessEnv; shardPools: Pool[]; viewsPool: Pool };

/** The shared test stack (test/support/stack.ts) with the projector's settings for these tests. */
export function testEnv(
  label: string,
  shardCount: number,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return testStack(label, {
    shards: String(shardCount),
    TALLY_PROJECT_POLL_MS: "20",
    TALLY_RETRY_ATTEMPTS_MAX: "5",
    ...extra,
  }).env;
}

export async function createTestDatabases(env: NodeJS.ProcessEnv): Promise<TestDatabases> {
  const config = loadConfig(env);
  await migrate(config);
  return {
    config,
    env,
    shardPools: config.TALLY_PG_SHARDS.map((url) => createPool(config, url, "tally-test", 2)),
    viewsPool: createPool(config, config.TALLY_PG_VIEWS, "tally-test", 2),
  };
}

export async function dropTestDatabases(dbs: TestDatabases): Promise<void> {
  await Promise.all([...dbs.shardPools, dbs.viewsPool].map((p) => p.end()));
  await dropDatabases(dbs.config);
}

export type Step =
  | { kind: "mint"; token: string; asset: string; amount: bigint; to: string }
  | { kind: "move"; token: string; to: string }
  | { kind: "burn"; token: string };

type Token = {
  asset: string;
  amount: bigint;
  owner: string | null;
  state: string;
  moves: number;
  lastOffset: bigint;
};
type LedgerRow = {
  id: string;
  token: string;
  asset: string;
  amount: bigint;
  from: string | null;
  to: string | null;
  prev: string | null;
  next: string;
  offset: bigint;
};

export type { DeltaForm } from "./projector-deltas.ts";

export type BatchExtras = { duplicates?: number; rejected?: number; deltas?: DeltaForm };

/** The applier, as far as the projector and verify can tell; and the truth the tests compare with. */
export class LedgerModel {
  readonly tokens = new Map<string, Token>();
  readonly balances = new Map<string, bigint>();
  readonly supply = new Map<string, { minted: bigint; burned: bigint }>();
  readonly nextOffsets = new Map<number, bigint>();
  /** delta entries written so far (a legacy row is one): what all projectors together must read exactly once */
  deltaEntriesWritten = 0;
  /** the form of a batch's deltas unless BatchExtras.deltas says otherwise */
  deltaForm: DeltaForm;

  private readonly dbs: TestDatabases;

  constructor(dbs: TestDatabases, deltaForm: DeltaForm = "chunks") {
    this.dbs = dbs;
    this.deltaForm = deltaForm;
  }

  /** Applies the steps as one batch of `partition`, then the extras (duplicates, rejections). */
  async batch(partition: number, steps: Step[], extras: BatchExtras = {}): Promise<bigint> {
    const { config } = this.dbs;
    const first = this.nextOffsets.get(partition) ?? 0n;
    let offset = first;
    const ledger = steps.map((step) => this.decide(step, offset++));
    const duplicates = extras.duplicates ?? 0;
    offset += BigInt(duplicates);
    const rejectedOffsets = Array.from({ length: extras.rejected ?? 0 }, () => offset++);
    const pool = this.dbs.shardPools[shardOf(partition, config.TALLY_PG_SHARDS.length)]!;
    const client = await pool.connect();
    let deltaEntries = 0;
    try {
      await client.query("BEGIN");
      await client.query(
        `INSERT INTO applier_offsets ("group", topic, "partition", next_offset, first_offset)
         VALUES ($1, $2, $3, 0, 0) ON CONFLICT DO NOTHING`,
        [config.TALLY_GROUP, config.TALLY_TOPIC, partition],
      );
      const cas = await client.query(
        `UPDATE applier_offsets SET next_offset = $5, applied_count = applied_count + $6,
                duplicate_count = duplicate_count + $7, rejected_count = rejected_count + $8
          WHERE "group" = $1 AND topic = $2 AND "partition" = $3 AND next_offset = $4`,
        [
          config.TALLY_GROUP,
          config.TALLY_TOPIC,
          partition,
          first,
          offset,
          ledger.length,
          duplicates,
          rejectedOffsets.length,
        ],
      );
      if (cas.rowCount !== 1) throw new Error(`partition ${partition} is not at ${first}`);
      await insertLedger(client, partition, ledger);
      await this.writeTokenStates(client, partition, ledger);
      for (const rejectedOffset of rejectedOffsets) {
        await client.query(
          `INSERT INTO rejected_transfers (topic, kafka_partition, kafka_offset, reason, detail)
           VALUES ($1, $2, $3, 'state_conflict', 'test')`,
          [config.TALLY_TOPIC, partition, rejectedOffset],
        );
      }
      const at = { topic: config.TALLY_TOPIC, partition, endOffset: offset };
      deltaEntries = await insertDeltas(client, at, ledger, extras.deltas ?? this.deltaForm);
      await client.query("NOTIFY tally_applied");
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK");
      throw error;
    } finally {
      client.release();
    }
    this.nextOffsets.set(partition, offset);
    this.deltaEntriesWritten += deltaEntries;
    return offset;
  }

  private decide(step: Step, offset: bigint): LedgerRow {
    const id = randomUUID();
    if (step.kind === "mint") {
      if (this.tokens.has(step.token)) throw new Error(`test bug: ${step.token} exists`);
      const token = {
        asset: step.asset,
        amount: step.amount,
        owner: step.to,
        state: `${step.token}.0`,
        moves: 0,
        lastOffset: offset,
      };
      this.tokens.set(step.token, token);
      this.credit(step.to, step.asset, step.amount);
      const s = this.supplyOf(step.asset);
      s.minted += step.amount;
      return {
        id,
        token: step.token,
        asset: step.asset,
        amount: step.amount,
        from: null,
        to: step.to,
        prev: null,
        next: token.state,
        offset,
      };
    }
    const token = this.tokens.get(step.token);
    if (!token || token.owner === null) throw new Error(`test bug: ${step.token} cannot move`);
    const from = token.owner;
    const prev = token.state;
    const to = step.kind === "move" ? step.to : null;
    token.moves++;
    token.state = `${step.token}.${token.moves}`;
    token.owner = to;
    token.lastOffset = offset;
    this.credit(from, token.asset, -token.amount);
    if (to !== null) this.credit(to, token.asset, token.amount);
    else this.supplyOf(token.asset).burned += token.amount;
    return {
      id,
      token: step.token,
      asset: token.asset,
      amount: token.amount,
      from,
      to,
      prev,
      next: token.state,
      offset,
    };
  }

  private credit(wallet: string, asset: string, amount: bigint): void {
    const key = `${wallet}\u0000${asset}`;
    this.balances.set(key, (this.balances.get(key) ?? 0n) + amount);
  }

  private supplyOf(asset: string) {
    const s = this.supply.get(asset) ?? { minted: 0n, burned: 0n };
    this.supply.set(asset, s);
    return s;
  }

  private async writeTokenStates(client: Client, partition: number, ledger: LedgerRow[]): Promise<void> {
    for (const tokenId of new Set(ledger.map((r) => r.token))) {
      const t = this.tokens.get(tokenId)!;
      await client.query(
        `INSERT INTO token_state (token_id, asset, amount, owner, state, retired, kafka_partition, last_offset)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (token_id) DO UPDATE SET owner = $4, state = $5, retired = $6, last_offset = $8`,
        [tokenId, t.asset, t.amount.toString(), t.owner, t.state, t.owner === null, partition, t.lastOffset],
      );
    }
  }

  /** Non-zero balances, sorted as the views are read: what the views must hold. */
  expectedBalances(): string[] {
    return [...this.balances]
      .filter(([, balance]) => balance !== 0n)
      .map(([key, balance]) => `${key.replace("\u0000", " ")} ${balance}`)
      .sort();
  }

  expectedSupply(): string[] {
    return [...this.supply]
      .map(([asset, s]) => `${asset} ${s.minted} ${s.burned} ${s.minted - s.burned}`)
      .sort();
  }
}

async function insertLedger(client: Client, partition: number, ledger: LedgerRow[]): Promise<void> {
  for (const r of ledger) {
    await client.query("INSERT INTO transfer_ids (transfer_id) VALUES ($1)", [r.id]);
    await client.query(
      `INSERT INTO transfers (transfer_id, token_id, asset, amount, from_wallet, to_wallet, prev_state, next_state,
                              occurred_at, kafka_partition, kafka_offset, schema_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9, $10, 1)`,
      [r.id, r.token, r.asset, r.amount.toString(), r.from, r.to, r.prev, r.next, partition, r.offset],
    );
  }
}

/** The views as sorted text lines, to compare with the model or with another run. */
export async function readViews(
  dbs: TestDatabases,
): Promise<{ balances: string[]; supply: string[]; checkpoints: string[] }> {
  const balances = await dbs.viewsPool.query<{ line: string }>(
    "SELECT wallet || ' ' || asset || ' ' || balance::text AS line FROM wallet_balances",
  );
  const supply = await dbs.viewsPool.query<{ line: string }>(
    "SELECT asset || ' ' || minted::text || ' ' || burned::text || ' ' || supply::text AS line FROM asset_supply",
  );
  const checkpoints = await dbs.viewsPool.query<{ line: string }>(
    "SELECT kafka_partition::text || ':' || end_offset::text AS line FROM projector_checkpoints WHERE topic = $1",
    [dbs.config.TALLY_TOPIC],
  );
  return {
    balances: balances.rows.map((r) => r.line).sort(),
    supply: supply.rows.map((r) => r.line).sort(),
    checkpoints: checkpoints.rows.map((r) => r.line).sort(),
  };
}

/** A deterministic pseudo-random source (mulberry32), so a failing run can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * A workload: `batches` batches over every partition, each a few mints, moves and burns, some
 * with duplicates and rejections, one batch of only duplicates (it writes no delta at all). Each
 * batch's deltas take one of `deltaForms` at random (a rolling upgrade: old and new appliers
 * taking turns on a partition), the model's own form by default.
 */
export async function writeWorkload(
  model: LedgerModel,
  partitions: number,
  batches: number,
  seed: number,
  deltaForms: DeltaForm[] = [model.deltaForm],
): Promise<void> {
  const random = seededRandom(seed);
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
  const wallets = Array.from({ length: 12 }, (_, i) => `w${i}`);
  let minted = 0;
  for (let b = 0; b < batches; b++) {
    const partition = b % partitions;
    const live = [...model.tokens]
      .filter(([id, t]) => t.owner !== null && id.startsWith(`p${partition}-`))
      .map(([id]) => id);
    const steps: Step[] = [];
    const ownerAfter = new Map<string, string>();
    const size = 1 + Math.floor(random() * 6);
    for (let i = 0; i < size; i++) {
      const token = live.length > 0 && random() < 0.7 ? pick(live) : null;
      if (token === null) {
        const asset = pick(["USD", "RBT"]);
        // Amounts up to the full 38 digits: sums in the views go past what numeric(38,0) holds.
        const amount = random() < 0.2 ? 10n ** 38n - 1n : BigInt(1 + Math.floor(random() * 1000));
        steps.push({
          kind: "mint",
          token: `p${partition}-s${seed}-t${minted++}`,
          asset,
          amount,
          to: pick(wallets),
        });
      } else if (random() < 0.1) {
        steps.push({ kind: "burn", token });
        live.splice(live.indexOf(token), 1);
      } else {
        const owner = ownerAfter.get(token) ?? model.tokens.get(token)!.owner;
        const to = pick(wallets.filter((w) => w !== owner));
        ownerAfter.set(token, to);
        steps.push({ kind: "move", token, to });
      }
    }
    const onlyDuplicates = b === Math.floor(batches / 2);
    await model.batch(partition, onlyDuplicates ? [] : steps, {
      duplicates: onlyDuplicates ? 3 : random() < 0.3 ? 1 : 0,
      rejected: random() < 0.3 ? 1 : 0,
      // One form draws nothing, so the seeds give the batches they gave before forms existed.
      deltas: deltaForms.length > 1 ? pick(deltaForms) : deltaForms[0],
    });
  }
}
