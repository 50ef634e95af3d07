// A hand-labelled stream: every message with the outcome a correct applier must give it. The
// expectations are written by hand here, not computed by Tally's own rules.
import { randomUUID } from "node:crypto";
import { avroTypeOf, frame, transferEventSchemaText, transferEventType } from "../../services/common/avro.ts";
import type { TransferEvent } from "../../services/common/event.ts";

export type Expected = "applied" | "duplicate" | string; // string: a rejection reason
export type ScenarioMessage = {
  key: string | null;
  value: Buffer;
  expected: Expected;
  event: TransferEvent | null;
};

export const v2SchemaText = (() => {
  const v2 = JSON.parse(transferEventSchemaText);
  v2.fields.push({ name: "memo", type: ["null", "string"], default: null });
  return JSON.stringify(v2);
})();
const v2Type = avroTypeOf(v2SchemaText);

/** Wallet ids that stress escaping on every path: quotes, backslash, comma, non-Latin scripts. */
export const trickyWallets = ['o\'brien "q"', "back\\slash", "comma,wallet", "кошелёк-7", "財布-3", "محفظة"];

export function buildScenario(ids: { v1: number; v2: number }, nowMs: number): ScenarioMessage[] {
  const messages: ScenarioMessage[] = [];
  const add = (event: TransferEvent, expected: Expected, writer: "v1" | "v2" = "v1") => {
    const body =
      writer === "v1" ? transferEventType.toBuffer(event) : v2Type.toBuffer({ ...event, memo: "v2 memo" });
    messages.push({
      key: event.token_id,
      value: frame(writer === "v1" ? ids.v1 : ids.v2, body),
      expected,
      event,
    });
  };
  const ev = (
    token: string,
    from: string | null,
    to: string | null,
    prev: string | null,
    next: string,
    extra: Partial<TransferEvent> = {},
  ): TransferEvent => ({
    transfer_id: randomUUID(),
    batch_id: null,
    token_id: token,
    asset: "USD",
    amount: 500n,
    from_wallet: from,
    to_wallet: to,
    prev_state: prev,
    next_state: next,
    occurred_at: nowMs - 3_600_000,
    ...extra,
  });
  const [w1, w2, w3, w4, w5, w6] = trickyWallets as [string, string, string, string, string, string];

  // A: mint to w1, move w1 -> w2 (v2 writer), move w2 -> w3, then a double spend from w1's old state.
  const aMint = ev("tok-A", null, w1, null, "a0", { amount: 2n ** 64n + 7n, asset: "RBT" });
  add(aMint, "applied");
  const aMove1 = ev("tok-A", w1, w2, "a0", "a1", {
    amount: 2n ** 64n + 7n,
    asset: "RBT",
    batch_id: "user-transfer-1",
  });
  add(aMove1, "applied", "v2");
  add(ev("tok-A", w2, w3, "a1", "a2", { amount: 2n ** 64n + 7n, asset: "RBT" }), "applied");
  add(ev("tok-A", w1, w4, "a0", "a1-bis", { amount: 2n ** 64n + 7n, asset: "RBT" }), "state_conflict");
  add({ ...aMove1 }, "duplicate", "v2"); // the same transfer again, re-sent by a retrying producer
  add({ ...aMint }, "duplicate");

  // B: mint 10^38-1 to w4, wrong owner, wrong amount, wrong asset, then burn by the owner, then a move after the burn.
  const big = 10n ** 38n - 1n;
  add(ev("tok-B", null, w4, null, "b0", { amount: big }), "applied");
  add(ev("tok-B", w5, w6, "b0", "b1", { amount: big }), "wrong_owner");
  add(ev("tok-B", w4, w5, "b0", "b1", { amount: big - 1n }), "value_mismatch");
  add(ev("tok-B", w4, w5, "b0", "b1", { amount: big, asset: "EUR" }), "value_mismatch");
  add(ev("tok-B", w4, null, "b0", "b-burnt", { amount: big }), "applied");
  add(ev("tok-B", w4, w5, "b-burnt", "b2", { amount: big }), "retired_token");

  // C: a move of a token never minted; D: minted twice under two ids.
  add(ev("tok-C", w1, w2, "c0", "c1"), "unknown_token");
  add(ev("tok-D", null, w5, null, "d0", { amount: 42n }), "applied", "v2");
  add(ev("tok-D", null, w6, null, "d0-again", { amount: 42n }), "token_exists");

  // Bad input: a field out of range, a bad uuid, far in the past, not Avro, an unknown schema id.
  add(ev("tok-E", null, w1, null, "e0", { amount: 0n }), "invalid_field");
  add(ev("tok-F", null, w1, null, "f0", { transfer_id: "not-a-uuid" }), "invalid_field");
  add(ev("tok-G", null, w1, null, "g0", { occurred_at: nowMs - 5 * 365 * 86_400_000 }), "out_of_window");
  messages.push({
    key: "tok-H",
    value: Buffer.from("plain text, not Avro"),
    expected: "undecodable",
    event: null,
  });
  messages.push({
    key: "tok-I",
    value: frame(2_000_000_000, transferEventType.toBuffer(ev("tok-I", null, w1, null, "i0"))),
    expected: "unknown_schema",
    event: null,
  });
  messages.push({
    key: "tok-J",
    value: frame(ids.v1, Buffer.from([1, 2, 3])),
    expected: "undecodable",
    event: null,
  });
  return messages;
}

/** Σ credits − Σ debits per "wallet|asset" over the events expected to apply. */
export function expectedBalances(messages: ScenarioMessage[]): Map<string, bigint> {
  const balances = new Map<string, bigint>();
  const add = (wallet: string | null, asset: string, delta: bigint) => {
    if (wallet === null) return;
    const key = `${wallet}|${asset}`;
    balances.set(key, (balances.get(key) ?? 0n) + delta);
  };
  for (const m of messages) {
    if (m.expected !== "applied" || m.event === null) continue;
    add(m.event.to_wallet, m.event.asset, m.event.amount);
    add(m.event.from_wallet, m.event.asset, -m.event.amount);
  }
  for (const [key, value] of balances) if (value === 0n) balances.delete(key);
  return balances;
}
