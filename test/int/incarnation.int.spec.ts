// Stored offsets belong to one incarnation of the topic (its Kafka topic id). A topic deleted and
// re-created, records deleted before they were applied, a row from before topic ids were kept, a
// topic re-created under a running applier: the applier never skips silently; it stops with exit 1
// naming the topic, the partition and the stored offset, and `tally offsets` shows and decides.
import { describe, expect, it } from "vitest";
import { migrate } from "../../services/storage/migrate.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import {
  deleteRecordsBelow,
  endedAfterEach,
  logRanges,
  type OffsetsRow,
  offsetsRows,
  recreateTopic,
  sendEvents,
  shardRows,
  tallyBounded,
  tokensOn,
  topicIdNow,
} from "../support/applier-process.ts";
import { mintOf } from "../support/events.ts";
import { startApplier, waitForApplied } from "../support/pipeline.ts";
import { type TestStack, testStack } from "../support/stack.ts";

const { track, use } = endedAfterEach();

const partitionsOf = (s: TestStack) => [...Array(s.config.TALLY_PARTITIONS).keys()];

/** One mint per token, each token on its own key's partition: `perPartition` records on every partition. */
async function produceMints(s: TestStack, perPartition: number, prefix: string): Promise<string[]> {
  const tokens = partitionsOf(s).flatMap((p) => tokensOn(s, p, perPartition, `${prefix}-p${p}`));
  const events = tokens.map((token) =>
    mintOf({ token_id: token, to_wallet: `w-${token}`, occurred_at: Date.now() }),
  );
  const placed = await sendEvents(s, events);
  for (const [k, token] of tokens.entries())
    expect(placed[k]!.partition, `token ${token}`).toBe(Number(/-p(\d+)-/.exec(token)![1]));
  return tokens;
}

/** The topic with `perPartition` mints on every partition, all applied by `tally apply --until-caught-up`. */
async function appliedStack(label: string, perPartition: number): Promise<TestStack> {
  const stack = use(testStack(label));
  await migrate(stack.config);
  await ensureTopic(stack.config);
  await produceMints(stack, perPartition, "old");
  const run = await tallyBounded(["apply", "--until-caught-up"], stack.env);
  expect(run.code, run.stderr).toBe(0);
  const rows = await offsetsRows(stack);
  expect(rows.map((r) => [r.partition, r.next_offset, r.applied_count])).toEqual(
    partitionsOf(stack).map((p) => [p, String(perPartition), String(perPartition)]),
  );
  return stack;
}

/** What the ledger holds: the offsets rows, the ledger's and the token states' row counts. */
async function ledgerSnapshot(s: TestStack) {
  const ledger = await shardRows<{ n: string }>(s, "SELECT count(*)::text n FROM transfers");
  const tokens = await shardRows<{ n: string }>(s, "SELECT count(*)::text n FROM token_state");
  const rejected = await shardRows<{ n: string }>(s, "SELECT count(*)::text n FROM rejected_transfers");
  const sum = (rows: { n: string }[]) => rows.reduce((acc, r) => acc + BigInt(r.n), 0n);
  return {
    offsets: await offsetsRows(s),
    ledgerRows: sum(ledger),
    tokenRows: sum(tokens),
    rejectedRows: sum(rejected),
  };
}

const byPartition = (rows: OffsetsRow[]) => new Map(rows.map((r) => [r.partition, r]));

// Each case runs up to six commands, each under a hang guard of its own: room for them all.
describe("offsets bound to the topic's incarnation", { timeout: 400_000 }, () => {
  it("given the topic deleted and re-created with fewer records, when apply runs, then it exits 1 naming topic, partition, stored offset and `tally offsets`; show names the problem; reset --to-earliest refuses", async () => {
    const s = await appliedStack("increc", 5);
    const before = await ledgerSnapshot(s);
    const oldId = before.offsets[0]!.topic_id;

    // When: the same name, a new incarnation, one record a partition (the stored offsets say 5).
    await recreateTopic(s);
    const newId = await topicIdNow(s);
    expect(newId).not.toBe(oldId);
    await produceMints(s, 1, "new");
    const apply = await tallyBounded(["apply", "--until-caught-up"], s.env);

    // Then: exit 1, and the message names the topic, a partition, its stored offset and what to run.
    expect(apply.code, apply.stderr).toBe(1);
    // (the offsets were stored with the first incarnation's id, one id for every partition)
    expect(oldId).toMatch(/^[\w-]{22}$/);
    expect(new Set(before.offsets.map((r) => r.topic_id))).toEqual(new Set([oldId]));
    const named = new RegExp(
      `tally: topic ${s.config.TALLY_TOPIC} partition (\\d+): the stored offsets \\(next (\\d+)\\) ` +
        `belong to topic id (\\S+), but the topic now has id (\\S+) `,
    ).exec(apply.stderr);
    expect(named, apply.stderr).not.toBeNull();
    const [, partition, storedNext, storedId, nowId] = named!;
    expect(storedNext).toBe(byPartition(before.offsets).get(Number(partition))!.next_offset);
    expect([storedId, nowId]).toEqual([oldId, newId]);
    expect(apply.stderr).toContain("`tally offsets show`");
    expect(apply.stderr).toContain("`tally offsets reset --to-earliest --confirm`");
    // ...and nothing moved: the ledger and the offsets are as they were.
    expect(await ledgerSnapshot(s)).toEqual(before);

    // `tally offsets show`: exit 1, every partition compared and its problem named.
    const show = await tallyBounded(["offsets", "show"], s.env);
    expect(show.code, show.stderr).toBe(1);
    const lines = show.stdout.trim().split("\n");
    expect(lines).toHaveLength(s.config.TALLY_PARTITIONS);
    for (const [p, line] of lines.entries()) {
      expect(line).toContain(
        `partition ${p} shard ${p % 2}: stored next 5 (topic id ${oldId}); log 0..1 (topic id ${newId})`,
      );
      expect(line).toContain("PROBLEM:");
      expect(line).toContain("(deleted and re-created?)");
    }

    // `tally offsets reset --to-earliest --confirm`: moving back is refused, exit 1, nothing changed.
    const reset = await tallyBounded(["offsets", "reset", "--to-earliest", "--confirm"], s.env);
    expect(reset.code, reset.stderr).toBe(1);
    const resetLines = reset.stdout.trim().split("\n");
    expect(resetLines).toEqual(
      partitionsOf(s).map(
        (p) =>
          `partition ${p}: NOT changed: moving back from 5 to 0 would mix two incarnations' records in one ledger; ` +
          "apply the new topic with its own TALLY_GROUP and databases",
      ),
    );
    expect(await ledgerSnapshot(s)).toEqual(before);
  });

  it("given records deleted before they were applied, when apply runs, then it exits 1 naming them; reset --to-earliest moves forward, counts them skipped, and the rest applies and verifies", async () => {
    const s = await appliedStack("incdel", 5);
    // Given: six more records a partition, of which the first four are deleted (retention) unapplied.
    const extra = await produceMints(s, 6, "more");
    for (const p of partitionsOf(s)) await deleteRecordsBelow(s, p, 9n);
    expect([...(await logRanges(s)).values()]).toEqual(partitionsOf(s).map(() => ({ low: 9n, high: 11n })));
    const before = await ledgerSnapshot(s);

    const apply = await tallyBounded(["apply", "--until-caught-up"], s.env);
    expect(apply.code, apply.stderr).toBe(1);
    expect(apply.stderr).toMatch(
      new RegExp(
        `tally: topic ${s.config.TALLY_TOPIC} partition \\d+: records 5\\.\\.8 were deleted from the log ` +
          "\\(retention\\) before they were applied; nothing was skipped",
      ),
    );
    expect(apply.stderr).toContain("`tally offsets reset --to-earliest --confirm`");
    expect(await ledgerSnapshot(s)).toEqual(before);

    // When: the operator moves forward to the log's start.
    const reset = await tallyBounded(["offsets", "reset", "--to-earliest", "--confirm"], s.env);
    expect(reset.code, reset.stdout + reset.stderr).toBe(0);
    const topicId = await topicIdNow(s);
    expect(reset.stdout.trim().split("\n")).toEqual(
      partitionsOf(s).map(
        (p) =>
          `changed: partition ${p} shard ${p % 2}: stored next 9 (topic id ${topicId}); log 9..11 (topic id ${topicId}); ok`,
      ),
    );
    expect(reset.stderr).toContain("offsets reset by an operator");
    // Then: the four deleted records of each partition are counted skipped, nothing else moved.
    const afterReset = await offsetsRows(s);
    expect(afterReset.map((r) => [r.partition, r.next_offset, r.applied_count, r.skipped_count])).toEqual(
      partitionsOf(s).map((p) => [p, "9", "5", "4"]),
    );
    expect(afterReset.reduce((sum, r) => sum + BigInt(r.skipped_count), 0n)).toBe(4n * 4n);

    // ...and the rest applies: exactly the two records a partition still in the log.
    const again = await tallyBounded(["apply", "--until-caught-up"], s.env);
    expect(again.code, again.stderr).toBe(0);
    const done = await offsetsRows(s);
    expect(done.map((r) => [r.partition, r.next_offset, r.applied_count, r.skipped_count])).toEqual(
      partitionsOf(s).map((p) => [p, "11", "7", "4"]),
    );
    const applied = new Set(
      (await shardRows<{ token_id: string }>(s, "SELECT token_id FROM transfers")).map((r) => r.token_id),
    );
    for (const p of partitionsOf(s)) {
      const ofPartition = extra.filter((t) => t.startsWith(`more-p${p}-`));
      expect(ofPartition.map((t) => applied.has(t))).toEqual([false, false, false, false, true, true]);
    }
    const project = await tallyBounded(["project", "--until-caught-up"], s.env);
    expect(project.code, project.stderr).toBe(0);
    const verify = await tallyBounded(["verify"], s.env);
    expect(verify.code, verify.stdout).toBe(0);
  });

  it("given a legacy offsets row without a topic id, when apply runs, then the row adopts the topic's id and applies on", async () => {
    const s = await appliedStack("inclegacy", 3);
    await shardRows(s, "UPDATE applier_offsets SET topic_id = NULL RETURNING 1");
    expect((await offsetsRows(s)).map((r) => r.topic_id)).toEqual(partitionsOf(s).map(() => null));
    await produceMints(s, 2, "after");

    const apply = await tallyBounded(["apply", "--until-caught-up"], s.env);

    expect(apply.code, apply.stderr).toBe(0);
    const topicId = await topicIdNow(s);
    expect(
      (await offsetsRows(s)).map((r) => [r.partition, r.topic_id, r.next_offset, r.applied_count]),
    ).toEqual(partitionsOf(s).map((p) => [p, topicId, "5", "5"]));
  });

  it("given the topic re-created under a running applier with a log already past the stored offsets, then the periodic check stops it with exit 1 and nothing of the new log is applied", async () => {
    const s = await appliedStack("incrun", 5);
    const applier = startApplier(s);
    track(applier);
    await applier.waitForLine(
      "every partition assigned",
      (l) =>
        l.msg === "partitions assigned; sought to stored offsets" && (l.partitions as number[]).length === 4,
    );
    await waitForApplied(s, 20n);
    const before = await ledgerSnapshot(s);
    const oldId = before.offsets[0]!.topic_id;

    // When: deleted, re-created, and eight records a partition (past the stored 5) while it runs.
    await recreateTopic(s);
    await produceMints(s, 8, "new");
    const newId = await topicIdNow(s);

    // Then: it stops by itself, exit 1, with a message an operator can act on.
    expect(await applier.exited).toBe(1);
    const stderr = applier.stderrTail();
    const changed = new RegExp(
      `tally: topic ${s.config.TALLY_TOPIC} partition \\d+: the stored offsets \\(next \\d+\\) belong to ` +
        `topic id ${oldId}, but the topic now has id ${newId} `,
    );
    const deleted = new RegExp(`tally: topic ${s.config.TALLY_TOPIC} was deleted while the applier ran`);
    expect(changed.test(stderr) || deleted.test(stderr), stderr).toBe(true);
    expect(stderr).toContain("`tally offsets show`");
    // ...and not one record of the new incarnation was applied under the old one's offsets.
    expect(await ledgerSnapshot(s)).toEqual(before);
  });
});
