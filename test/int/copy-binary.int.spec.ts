// The binary COPY encoder against the real server: every value comes back as written.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyBinaryInto } from "../../services/applier/copy.ts";
import { BinaryCopyWriter } from "../../services/applier/copy-binary.ts";
import { createPool, type Pool } from "../../services/common/pg.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";

let stack: TestStack;
let pool: Pool;
beforeAll(async () => {
  stack = testStack("copy", { shards: "1" });
  await migrate(stack.config);
  pool = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, "test", 1);
  await pool.query(
    "CREATE TABLE probe (id uuid, amount numeric, at timestamptz, note text, n int, big bigint)",
  );
});
afterAll(async () => {
  await pool.end();
  await dropTestStack(stack);
});

describe("binary COPY", () => {
  const amounts = [
    0n,
    1n,
    9_999n,
    10_000n,
    10_001n,
    100_000_000n,
    2n ** 63n + 1n,
    10n ** 38n - 1n,
    -(10n ** 20n),
    10n ** 37n,
    2n ** 53n - 1n, // the largest amount on the Number fast path
    2n ** 53n,
    2n ** 53n + 1n,
  ];
  // Offsets and instants take a Number fast path when they are safe integers, BigInt otherwise.
  const bigOf = (k: number) => (k % 2 === 0 ? BigInt(k) * 1_000_000_007n : 2n ** 62n + BigInt(k));
  const atMs = Date.UTC(2026, 10, 22, 23, 59, 59, 999);
  const instantOf = (k: number) => (k === 3 ? Date.UTC(1999, 11, 31, 23, 59, 59, 999) : atMs - k);
  const uuidOf = (k: number) => `${String(k).padStart(8, "0")}-0000-4000-8000-${String(k).padStart(12, "0")}`;
  it("given numerics at the base-10000 edges, timestamps, uuids, NULLs and non-Latin text, when copied, then read back exactly", async () => {
    const writer = new BinaryCopyWriter(6, 16);
    amounts.forEach((amount, k) => {
      const id = k === 5 ? uuidOf(k).toUpperCase().replace("4000", "ABCD") : uuidOf(k);
      writer.row().uuid(id).numeric(amount).timestamptz(instantOf(k));
      writer
        .text(k % 2 === 0 ? `財布 "q" \\ ,${k}` : null)
        .int4(-k)
        .int8(bigOf(k));
    });
    const client = await pool.connect();
    await copyBinaryInto(client, "probe", ["id", "amount", "at", "note", "n", "big"], writer.finish());
    client.release();
    const rows = (
      await pool.query(
        "SELECT id::text, amount::text, (extract(epoch from at) * 1000)::bigint::text AS ms, note, n, big::text FROM probe ORDER BY id",
      )
    ).rows;
    expect(rows.map((r) => r.amount)).toEqual(amounts.map(String));
    expect(rows.map((r) => Number(r.ms))).toEqual(amounts.map((_, k) => instantOf(k)));
    expect(rows.map((r) => r.big)).toEqual(amounts.map((_, k) => String(bigOf(k))));
    expect(rows[5]!.id).toBe("00000005-0000-abcd-8000-000000000005");
    expect(rows[2]).toEqual({
      id: "00000002-0000-4000-8000-000000000002",
      amount: "9999",
      ms: String(atMs - 2),
      note: '財布 "q" \\ ,2',
      n: -2,
      big: String(2_000_000_014n),
    });
    expect(rows[1]!.note).toBeNull();
  });
});
