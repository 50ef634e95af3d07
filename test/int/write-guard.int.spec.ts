// The write path's last guards: the stored offset only moves forward, whatever plan reaches it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyChunk } from "../../services/applier/apply-chunk.ts";
import { PartitionState } from "../../services/applier/partition-state.ts";
import { planChunk } from "../../services/applier/plan.ts";
import { OffsetFenceError, writeChunk } from "../../services/applier/write.ts";
import { AssertionError } from "../../services/common/assert.ts";
import { createPool, type Pool } from "../../services/common/pg.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { fixedNowMs, mintOf } from "../support/events.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";

let stack: TestStack;
let pool: Pool;
const ref = { group: "g", topic: "t", partition: 0 };

beforeAll(async () => {
  stack = testStack("wguard");
  await migrate(stack.config);
  pool = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, "test");
  await pool.query(
    `INSERT INTO applier_offsets ("group", topic, "partition", next_offset, first_offset) VALUES ('g', 't', 0, 20, 0)`,
  );
});
afterAll(async () => {
  await pool?.end();
  if (stack) await dropTestStack(stack);
});

const storedNext = async () =>
  (await pool.query<{ n: string }>(`SELECT next_offset::text n FROM applier_offsets WHERE "group" = 'g'`))
    .rows[0]!.n;

const recordAt = (offset: bigint) => {
  const event = mintOf({ occurred_at: fixedNowMs });
  return {
    offset,
    key: Buffer.from(event.token_id),
    value: Buffer.from("raw"),
    timestampMs: fixedNowMs,
    decoded: { ok: true as const, event, schemaId: 1 },
  };
};

describe("the stored offset only moves forward", () => {
  it("given a stored offset of 20, when a plan ending at 15 is written with the right expected offset, then it is fenced and nothing moves", async () => {
    const plan = planChunk([recordAt(14n)], () => undefined, new Set(), { pastDays: 30, futureDays: 1 });
    expect(plan.nextOffset).toBe(15n);
    await expect(writeChunk(pool, ref, 20n, plan)).rejects.toBeInstanceOf(OffsetFenceError);
    expect(await storedNext()).toBe("20");
    const ledger = await pool.query("SELECT 1 FROM transfers");
    expect(ledger.rowCount).toBe(0);
  });

  it("given a view at 20, when a chunk starting at 14 reaches applyChunk, then it refuses before any I/O", async () => {
    const state = new PartitionState(10);
    state.nextOffset = 20n;
    const noIo = new Proxy(
      {},
      {
        get: () => {
          throw new Error("no I/O expected");
        },
      },
    ) as never;
    const context = {
      shard: noIo,
      decoder: noIo,
      ref,
      window: { pastDays: 30, futureDays: 1 },
      partitionOfKey: () => 0,
    };
    const { decoded: _decoded, ...raw } = recordAt(14n);
    await expect(applyChunk(context, state, [raw])).rejects.toBeInstanceOf(AssertionError);
    expect(await storedNext()).toBe("20");
  });
});
