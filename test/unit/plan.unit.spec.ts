import { describe, expect, it } from "vitest";
import type { TokenState } from "../../services/applier/decide.ts";
import { type DecodedRecord, planChunk } from "../../services/applier/plan.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { burnOf, fixedNowMs, mintOf, moveOf } from "../support/events.ts";

const window = { pastDays: 30, futureDays: 1 };

function recordsOf(items: (TransferEvent | Buffer)[]): DecodedRecord[] {
  return items.map((item, i) => {
    const base = { offset: BigInt(100 + i), value: Buffer.from("raw"), timestampMs: fixedNowMs };
    if (Buffer.isBuffer(item)) {
      return {
        ...base,
        key: null,
        decoded: { ok: false, reason: "undecodable", detail: "bad", schemaId: null },
      };
    }
    return { ...base, key: Buffer.from(item.token_id), decoded: { ok: true, event: item, schemaId: 7 } };
  });
}

const none = () => undefined;

describe("planChunk", () => {
  it("given an empty ledger, when a mint, two moves and a burn of one token arrive, then one collapsed token change and zero net balances", () => {
    const events = [
      mintOf(),
      moveOf(),
      moveOf({ from_wallet: "bob", to_wallet: "carol", prev_state: "s1", next_state: "s2" }),
      burnOf({ from_wallet: "carol", prev_state: "s2", next_state: "s3" }),
    ];
    const plan = planChunk(recordsOf(events), none, new Set(), window);
    expect(plan.ledger.map((r) => r.offset)).toEqual([100n, 101n, 102n, 103n]);
    expect([...plan.tokenChanges.values()]).toEqual([
      {
        tokenId: "tok-1",
        existedBefore: false,
        lastOffset: 103n,
        state: { asset: "USD", amount: 1000n, owner: null, state: "s3", retired: true },
      },
    ]);
    for (const wallet of ["alice", "bob", "carol"])
      expect(plan.balanceDeltas.get("USD")?.get(wallet)).toBe(0n);
    expect(plan.supplyDeltas.get("USD")).toEqual({ minted: 1000n, burned: 1000n });
    expect(plan.nextOffset).toBe(104n);
  });

  it("given a mint applied in the batch, when the same transfer id comes again, then it is a duplicate with no effect", () => {
    const mint = mintOf();
    const plan = planChunk(recordsOf([mint, { ...mint }]), none, new Set(), window);
    expect(plan.ledger).toHaveLength(1);
    expect(plan.duplicates).toBe(1);
    expect(plan.rejections).toHaveLength(0);
  });

  it("given a transfer id known as applied, when it arrives, then duplicate; when it is only rejected, then a candidate for look-up", () => {
    const known: TokenState = { asset: "USD", amount: 1000n, owner: "bob", state: "s1", retired: false };
    const replayed = moveOf(); // s0 -> s1 again: the chain moved on
    const first = planChunk(recordsOf([replayed]), () => known, new Set(), window);
    expect(first.rejections.map((r) => r.reason)).toEqual(["state_conflict"]);
    expect(first.duplicateCandidates).toEqual([replayed.transfer_id]);
    const second = planChunk(recordsOf([replayed]), () => known, new Set([replayed.transfer_id]), window);
    expect(second.duplicates).toBe(1);
    expect(second.rejections).toHaveLength(0);
  });

  it("given bad input, when planned, then each record is rejected with its reason and raw bytes, none dropped", () => {
    const badField = mintOf({ token_id: "tok-2", amount: 0n });
    const wrongKey = mintOf({ token_id: "tok-3" });
    const old = mintOf({ token_id: "tok-4", occurred_at: fixedNowMs - 40 * 86_400_000 });
    const records = recordsOf([Buffer.from("x"), badField, wrongKey, old]);
    records[2]!.key = Buffer.from("another-token");
    const plan = planChunk(records, none, new Set(), window);
    expect(plan.rejections.map((r) => [r.offset, r.reason])).toEqual([
      [100n, "undecodable"],
      [101n, "invalid_field"],
      [102n, "invalid_field"],
      [103n, "out_of_window"],
    ]);
    expect(plan.rejections[0]!.value).toEqual(Buffer.from("raw"));
    expect(plan.ledger.length + plan.duplicates + plan.rejections.length).toBe(records.length);
  });

  it("given a double spend in one batch, when planned, then the first move applies and the second is state_conflict", () => {
    const plan = planChunk(
      recordsOf([mintOf(), moveOf(), moveOf({ to_wallet: "carol", next_state: "s1x" })]),
      none,
      new Set(),
      window,
    );
    expect(plan.ledger).toHaveLength(2);
    expect(plan.rejections.map((r) => r.reason)).toEqual(["state_conflict"]);
    expect(plan.balanceDeltas.get("USD")?.get("bob")).toBe(1000n);
    expect(plan.balanceDeltas.get("USD")?.get("carol")).toBeUndefined();
  });

  it("given records out of offset order, when planned, then the planner refuses (an assertion)", () => {
    const records = recordsOf([mintOf(), moveOf()]).reverse();
    expect(() => planChunk(records, none, new Set(), window)).toThrow(/increasing offset order/);
  });
});
