// tally transfer, rejections and reprocess against the real stack (Kafka, the registry, `tally
// apply`, the shards): each outcome found across the shards, the rejections filtered, counted and
// paged, and a record rejected for a schema id not yet registered re-driven once after the schema is.
import { randomUUID } from "node:crypto";
import { SchemaType } from "@kafkajs/confluent-schema-registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { avroTypeOf, frame, transferEventSchemaText, transferEventType } from "../../services/common/avro.ts";
import type { Config } from "../../services/common/config.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { createRegistry, subjectOf } from "../../services/common/registry.ts";
import { TransferProducer } from "../../services/producer/producer.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { topics } from "../../services/topics/topics.ts";
import { sendEvents, shardRows } from "../support/applier-process.ts";
import { mintOf, moveOf } from "../support/events.ts";
import { dropTestStack, type TestStack, tally, testStack } from "../support/stack.ts";

const subjectsMade: string[] = [];

async function deleteSubject(config: Config, subject: string): Promise<void> {
  const url = `${config.TALLY_SCHEMA_REGISTRY_URL}/subjects/${encodeURIComponent(subject)}`;
  await fetch(url, { method: "DELETE" }).catch(() => undefined);
  await fetch(`${url}?permanent=true`, { method: "DELETE" }).catch(() => undefined);
}

/** Runs tally with --json appended; exit code as expected, one JSON document on stdout. */
async function tallyJson<T = Record<string, unknown>>(s: TestStack, args: string[], code = 0): Promise<T> {
  const run = await tally([...args, "--json"], s.env);
  expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(code);
  return JSON.parse(run.stdout) as T;
}

async function applyUntilCaughtUp(s: TestStack): Promise<void> {
  const run = await tally(["apply", "--until-caught-up"], s.env);
  expect(run.code, run.stderr).toBe(0);
}

async function sendRaw(config: Config, messages: { key: string; value: Buffer }[]) {
  const producer = new TransferProducer(config, { schemaId: 0 });
  await producer.connect();
  try {
    return await producer.sendRaw(messages);
  } finally {
    await producer.disconnect();
  }
}

const now = Date.now();

describe("tally transfer and tally rejections", () => {
  const s = testStack("outcomes");
  const mint = mintOf({ token_id: "tok-a", occurred_at: now });
  const move = moveOf({ token_id: "tok-a", occurred_at: now });
  // a double spend: tok-a is at s1 by then
  const stale = moveOf({ token_id: "tok-a", to_wallet: "carol", occurred_at: now });
  const conflicts = Array.from({ length: 5 }, (_, k) =>
    moveOf({ token_id: `tok-c${k}`, prev_state: "nowhere", occurred_at: now }),
  );
  let placed: { partition: number; offset: bigint }[] = [];

  beforeAll(async () => {
    await migrate(s.config);
    await topics(s.config);
    subjectsMade.push(subjectOf(s.config.TALLY_TOPIC));
    const mints = conflicts.map((c) => mintOf({ token_id: c.token_id, occurred_at: now }));
    // mint, move, the mint again (a duplicate), the stale move, then tokens whose moves conflict
    placed = await sendEvents(s, [mint, move, mint, stale, ...mints, ...conflicts]);
    await sendRaw(s.config, [{ key: "tok-a", value: Buffer.from("not avro at all") }]);
    await applyUntilCaughtUp(s);
    const project = await tally(["project", "--until-caught-up"], s.env);
    expect(project.code, project.stderr).toBe(0);
  });
  afterAll(async () => {
    await dropTestStack(s);
  });

  it("given an applied mint and a copy of it, when tally transfer asks, then applied with its shard, day, states and coordinates, and the duplicate count of its partition", async () => {
    const outcome = await tallyJson(s, ["transfer", mint.transfer_id]);
    expect(outcome).toMatchObject({
      transferId: mint.transfer_id,
      status: "applied",
      applied: [
        {
          shard: placed[0]!.partition % 2,
          coordinates: {
            topic: s.config.TALLY_TOPIC,
            partition: placed[0]!.partition,
            offset: String(placed[0]!.offset),
          },
          day: new Date(now).toISOString().slice(0, 10),
          tokenId: "tok-a",
          prevState: null,
          nextState: "s0",
          amount: "1000",
        },
      ],
      rejections: [],
      duplicateCounts: [{ partition: placed[0]!.partition, counted: "1" }],
    });
    const text = await tally(["transfer", mint.transfer_id], s.env);
    expect(text.stdout).toMatch(/: applied\n/);
    expect(text.stdout).toMatch(/not stored per record: partition \d+ has counted 1 in all/);
  });

  it("given a stale move, when tally transfer asks, then rejected state_conflict with its coordinates", async () => {
    const outcome = await tallyJson(s, ["transfer", stale.transfer_id.toUpperCase()]);
    expect(outcome).toMatchObject({
      status: "rejected",
      applied: [],
      rejections: [
        {
          reason: "state_conflict",
          foundBy: "transfer_id",
          transferId: stale.transfer_id,
          tokenId: "tok-a",
          coordinates: { partition: placed[3]!.partition, offset: String(placed[3]!.offset) },
          redriven: null,
        },
      ],
    });
  });

  it("given an id nobody sent, when tally transfer asks, then unknown and exit 1", async () => {
    const outcome = await tallyJson(s, ["transfer", randomUUID()], 1);
    expect(outcome).toMatchObject({ status: "unknown", applied: [], rejections: [] });
  });

  it("given rejections of two reasons, then tally rejections counts them per reason and filters by reason and token", async () => {
    const all = await tallyJson<{ total: string; counts: unknown[]; rows: { reason: string }[] }>(s, [
      "rejections",
    ]);
    expect(all.total).toBe("7");
    expect(all.counts).toEqual([
      { reason: "state_conflict", rejected: "6", redriven: "0" },
      { reason: "undecodable", rejected: "1", redriven: "0" },
    ]);
    const undecodable = await tallyJson<{ rows: { reason: string; tokenId: string | null }[] }>(s, [
      "rejections",
      "--reason",
      "undecodable",
    ]);
    expect(undecodable.rows).toMatchObject([{ reason: "undecodable", tokenId: null }]);
    // the token filter finds the undecoded record by its key too
    const tokA = await tallyJson<{ rows: { reason: string }[] }>(s, ["rejections", "--token", "tok-a"]);
    expect(tokA.rows.map((r) => r.reason).sort()).toEqual(["state_conflict", "undecodable"]);
    const future = await tallyJson<{ total: string }>(s, ["rejections", "--since", "2999-01-01T00:00:00Z"]);
    expect(future.total).toBe("0");
  });

  it("given 7 rejections, when paged 2 at a time with --before, then every one once, newest first", async () => {
    type Page = {
      rows: { coordinates: { partition: number; offset: string }; rejectedAt: string }[];
      next: string | null;
    };
    const seen: string[] = [];
    const times: string[] = [];
    let before: string[] = [];
    for (let pages = 0; pages < 10; pages++) {
      const page = await tallyJson<Page>(s, ["rejections", "--limit", "2", ...before]);
      expect(page.rows.length).toBeLessThanOrEqual(2);
      for (const r of page.rows) {
        seen.push(`${r.coordinates.partition}/${r.coordinates.offset}`);
        times.push(r.rejectedAt);
      }
      if (page.next === null) break;
      before = ["--before", page.next];
    }
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
    expect([...times].sort().reverse()).toEqual(times);
    const text = await tally(["rejections", "--limit", "2"], s.env);
    expect(text.stdout).toMatch(/next page: --before \d+\.\d+\.\d+/);
  });

  it("given the ledger and the views, then verify --json and balance --json print one JSON document each", async () => {
    const report = await tallyJson<{ ok: boolean; checks: unknown[] }>(s, ["verify"]);
    expect(report.ok).toBe(true);
    expect(report.checks.length).toBeGreaterThan(5);
    const balance = await tallyJson(s, ["balance", "bob"]);
    expect(balance).toEqual({ wallet: "bob", balances: [{ asset: "USD", balance: "1000" }] });
    expect(await tallyJson(s, ["balance", "nobody"], 1)).toEqual({ wallet: "nobody", balances: [] });
  });
});

describe("tally reprocess", () => {
  const s = testStack("reproc");
  const registry = createRegistry(s.config);
  /** v1 plus an optional field, distinct per call: a new schema, so a new id, FULL_TRANSITIVE-compatible */
  const v2Text = () => {
    const v2 = JSON.parse(transferEventSchemaText);
    v2.fields.push({ name: `memo_${randomUUID().slice(0, 8)}`, type: ["null", "string"], default: null });
    return JSON.stringify(v2);
  };
  let token = "";
  let events: TransferEvent[] = [];
  let v1 = 0;

  beforeAll(async () => {
    await migrate(s.config);
    v1 = (await topics(s.config)).schemaId;
    subjectsMade.push(subjectOf(s.config.TALLY_TOPIC), `${s.config.TALLY_TOPIC}-probe-value`);
    // Ids are the registry's next number: learn the last one, send with the next, register it. The
    // registry is shared; should another file register in between, the id differs and we go again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const probe = await registry.register(
        { type: SchemaType.AVRO, schema: v2Text() },
        { subject: `${s.config.TALLY_TOPIC}-probe-value` },
      );
      const target = probe.id + 1;
      const text = v2Text();
      const writer = avroTypeOf(text);
      token = `tok-r${attempt}`;
      // a mint and ten moves: re-driven out of order, a move would meet the wrong state; offsets cross 9 → 10
      events = [mintOf({ token_id: token, occurred_at: now })];
      for (let k = 1; k <= 10; k++) {
        const [from, to] = k % 2 === 1 ? ["alice", "bob"] : ["bob", "alice"];
        events.push(
          moveOf({
            token_id: token,
            from_wallet: from,
            to_wallet: to,
            prev_state: `s${k - 1}`,
            next_state: `s${k}`,
            occurred_at: now,
          }),
        );
      }
      await sendRaw(s.config, [
        ...events.map((e) => ({ key: token, value: frame(target, writer.toBuffer(e)) })),
        // a key that is not the token_id: invalid_field, never re-driven by default
        {
          key: `${token}-other`,
          value: frame(v1, transferEventType.toBuffer(mintOf({ token_id: `${token}-x` }))),
        },
      ]);
      await applyUntilCaughtUp(s);
      const { id } = await registry.register(
        { type: SchemaType.AVRO, schema: text },
        { subject: subjectOf(s.config.TALLY_TOPIC) },
      );
      if (id === target) return;
    }
    throw new Error("the registry's ids moved under the test three times");
  }, 240_000);
  afterAll(async () => {
    await dropTestStack(s);
    for (const subject of subjectsMade) await deleteSubject(s.config, subject);
  });

  it("given a mint and ten moves sent with a schema id not yet registered, then all rejected unknown_schema, the mint found by tally transfer through its bytes", async () => {
    const rows = await shardRows<{ reason: string; transfer_id: string | null }>(
      s,
      "SELECT reason, transfer_id FROM rejected_transfers WHERE raw_key = convert_to($1, 'UTF8') ORDER BY kafka_offset",
      [token],
    );
    expect(rows).toEqual(events.map(() => ({ reason: "unknown_schema", transfer_id: null })));
    const outcome = await tallyJson(s, ["transfer", events[0]!.transfer_id]);
    expect(outcome).toMatchObject({
      status: "rejected",
      rejections: [{ reason: "unknown_schema", foundBy: "raw_bytes" }],
    });
  });

  it("given the schema registered, then reprocess re-drives all eleven in their order, the applier applies them, and a second reprocess re-drives none", async () => {
    const dry = await tallyJson<{ redriven: number; held: number }>(s, [
      "reprocess",
      "--token",
      token,
      "--dry-run",
    ]);
    expect(dry).toMatchObject({ redriven: 11, held: 0 });

    type Report = {
      redriven: number;
      redrivenList: { from: { offset: string }; to: { partition: number; offset: string } }[];
    };
    const first = await tallyJson<Report>(s, ["reprocess", "--token", token]);
    expect(first.redriven).toBe(11);
    const a = first.redrivenList[0]!;
    // in their original order: consecutive offsets on one partition, from offsets in increasing order
    for (const [k, entry] of first.redrivenList.entries()) {
      expect(entry.to).toEqual({
        partition: a.to.partition,
        offset: String(BigInt(a.to.offset) + BigInt(k)),
      });
      if (k > 0)
        expect(BigInt(entry.from.offset)).toBeGreaterThan(BigInt(first.redrivenList[k - 1]!.from.offset));
    }

    await applyUntilCaughtUp(s);
    const state = await shardRows(s, "SELECT owner, state FROM token_state WHERE token_id = $1", [token]);
    expect(state).toEqual([{ owner: "alice", state: "s10" }]);
    const outcome = await tallyJson(s, ["transfer", events[0]!.transfer_id]);
    expect(outcome).toMatchObject({
      status: "applied",
      applied: [{ coordinates: { partition: a.to.partition, offset: a.to.offset }, nextState: "s0" }],
      rejections: [{ reason: "unknown_schema", redriven: { to: a.to }, redriveFate: { kind: "applied" } }],
    });

    const second = await tallyJson<{ redriven: number }>(s, ["reprocess", "--token", token]);
    expect(second.redriven).toBe(0);
    const counts = await tallyJson<{ counts: { reason: string; redriven: string }[] }>(s, [
      "rejections",
      "--token",
      token,
    ]);
    expect(counts.counts).toEqual([{ reason: "unknown_schema", rejected: "11", redriven: "11" }]);
    const verify = await tallyJson<{ checks: { key: string; ok: boolean }[] }>(s, ["verify"], 1); // the projector has not run
    expect(verify.checks.filter((c) => !c.ok).map((c) => c.key)).toEqual(["projector"]);
  });

  it("given an invalid_field rejection, then it is not re-driven by default, and --reason widens the selection", async () => {
    const byDefault = await tallyJson<{ redriven: number }>(s, ["reprocess", "--dry-run"]);
    expect(byDefault.redriven).toBe(0);
    const widened = await tallyJson<{ redriven: number; reasons: string[] }>(s, [
      "reprocess",
      "--dry-run",
      "--reason",
      "invalid_field",
    ]);
    expect(widened).toMatchObject({ redriven: 1, reasons: ["invalid_field"] });
  });

  it("given a schema id still unknown, then reprocess holds it back, and the later records of its token too", async () => {
    const far = 2_000_000_000;
    await sendRaw(s.config, [
      {
        key: "tok-far",
        value: frame(far, transferEventType.toBuffer(mintOf({ token_id: "tok-far", occurred_at: now }))),
      },
      {
        key: "tok-far",
        value: frame(far, transferEventType.toBuffer(moveOf({ token_id: "tok-far", occurred_at: now }))),
      },
    ]);
    await applyUntilCaughtUp(s);
    const report = await tallyJson<{ redriven: number; held: number; heldList: { why: string }[] }>(s, [
      "reprocess",
      "--token",
      "tok-far",
    ]);
    expect(report).toMatchObject({ redriven: 0, held: 2 });
    expect(report.heldList[0]!.why).toMatch(/^cause not fixed: would be unknown_schema again/);
    expect(report.heldList[1]!.why).toBe("an earlier rejection of its key is held back");
  });
});
