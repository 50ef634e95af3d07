// What the applier's integration tests (incarnation, poison records, drain states) do to the real
// stack besides running `tally`: tokens placed on a chosen partition, records sent to an explicit
// partition, rows read across the shards, the topic deleted and re-created under its name, the
// consumer group's state, and the topic's Kafka id.
import { execFile } from "node:child_process";
import { afterEach } from "vitest";
import type { TransferEvent } from "../../services/common/event.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { keyPartitioner } from "../../services/common/partitioner.ts";
import { createPool, type Pool } from "../../services/common/pg.ts";
import { shardOf } from "../../services/common/shards.ts";
import { fetchTopicId } from "../../services/common/topic-id.ts";
import { TransferProducer } from "../../services/producer/producer.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import type { TallyProcess } from "./process.ts";
import { dropTestStack, repoRoot, restoreStack, type TestStack } from "./stack.ts";
import { waitUntil } from "./wait.ts";

/** `count` token ids starting with `prefix` whose key the Java-compatible partitioner puts on `partition`. */
export function tokensOn(stack: TestStack, partition: number, count: number, prefix: string): string[] {
  const partitionOf = keyPartitioner(stack.config.TALLY_PARTITIONS);
  const tokens: string[] = [];
  for (let k = 0; tokens.length < count; k++) {
    const id = `${prefix}-${k}`;
    if (partitionOf(Buffer.from(id)) === partition) tokens.push(id);
  }
  return tokens;
}

/** The partition the Java-compatible partitioner gives a token (as producers and the applier do). */
export const homePartitionOf = (stack: TestStack, tokenId: string): number =>
  keyPartitioner(stack.config.TALLY_PARTITIONS)(Buffer.from(tokenId));

/** The shard a partition's rows live on. */
export const shardOfPartition = (stack: TestStack, partition: number): number =>
  shardOf(partition, stack.config.TALLY_PG_SHARDS.length);

/** Sends events through Tally's producer (each on its key's partition); returns where each landed. */
export async function sendEvents(
  stack: TestStack,
  events: readonly TransferEvent[],
): Promise<{ partition: number; offset: bigint }[]> {
  const producer = new TransferProducer(stack.config);
  await producer.connect();
  try {
    const results = await producer.send(events);
    return results.map((r, k) => {
      if (!r.ok) throw new Error(`event ${k} was refused by the producer: ${JSON.stringify(r.problems)}`);
      return { partition: r.partition, offset: BigInt(r.offset) };
    });
  } finally {
    await producer.disconnect();
  }
}

/** The framed Avro bytes Tally's producer would send for `event` (the schema registered if need be). */
export async function encodeEvent(stack: TestStack, event: TransferEvent): Promise<Buffer> {
  const producer = new TransferProducer(stack.config);
  await producer.connect();
  try {
    return producer.encode(event);
  } finally {
    await producer.disconnect();
  }
}

/** One record sent as given to an explicit partition, whatever its key's partition; returns its offset. */
export async function sendToPartition(
  stack: TestStack,
  record: { partition: number; key: Buffer; value: Buffer },
): Promise<bigint> {
  const producer = createKafka(stack.config, "test-raw").producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const [answer] = await producer.send({
      topic: stack.config.TALLY_TOPIC,
      acks: -1,
      messages: [{ key: record.key, value: record.value, partition: record.partition }],
    });
    if (answer === undefined || answer.partition !== record.partition)
      throw new Error(`no answer for partition ${record.partition}`);
    return BigInt(answer.baseOffset!);
  } finally {
    await producer.disconnect();
  }
}

/** Runs `work` with a one-connection pool on each shard, in shard order. */
export async function onShards<T>(
  stack: TestStack,
  work: (pool: Pool, shard: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = [];
  for (const [shard, url] of stack.config.TALLY_PG_SHARDS.entries()) {
    const pool = createPool(stack.config, url, "test", 1);
    try {
      results.push(await work(pool, shard));
    } finally {
      await pool.end();
    }
  }
  return results;
}

/** Runs `work` with a one-connection pool on one shard. */
export async function onShard<T>(
  stack: TestStack,
  shard: number,
  work: (pool: Pool) => Promise<T>,
): Promise<T> {
  const pool = createPool(stack.config, stack.config.TALLY_PG_SHARDS[shard]!, "test", 1);
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/** The rows of `sql` on every shard, concatenated. */
export async function shardRows<T extends Record<string, unknown>>(
  stack: TestStack,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  return (await onShards(stack, async (pool) => (await pool.query<T>(sql, params)).rows)).flat();
}

export type OffsetsRow = {
  partition: number;
  next_offset: string;
  first_offset: string;
  applied_count: string;
  duplicate_count: string;
  rejected_count: string;
  skipped_count: string;
  topic_id: string | null;
};

/** applier_offsets of the test's group and topic, every column a test compares, by partition. */
export async function offsetsRows(stack: TestStack): Promise<OffsetsRow[]> {
  const rows = await shardRows<OffsetsRow>(
    stack,
    `SELECT "partition", next_offset::text, first_offset::text, applied_count::text, duplicate_count::text,
            rejected_count::text, skipped_count::text, topic_id
       FROM applier_offsets WHERE "group" = $1 AND topic = $2`,
    [stack.config.TALLY_GROUP, stack.config.TALLY_TOPIC],
  );
  return rows.sort((a, b) => a.partition - b.partition);
}

/** Kafka's id of the test's topic now. */
export function topicIdNow(stack: TestStack): Promise<string | null> {
  return fetchTopicId(createKafka(stack.config, "test-admin"), stack.config.TALLY_TOPIC);
}

/** Deletes the test's topic, waits until Kafka no longer lists it, and creates it again (empty). */
export async function recreateTopic(stack: TestStack): Promise<void> {
  const topic = stack.config.TALLY_TOPIC;
  const oldId = await topicIdNow(stack);
  const admin = createKafka(stack.config, "test-admin").admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [topic] });
    await waitUntil(`topic ${topic} deleted`, async () => !(await admin.listTopics()).includes(topic));
  } finally {
    await admin.disconnect();
  }
  // A deletion Kafka still completes answers "already exists" or "marked for deletion", and a create
  // may fail after it took effect: done once the topic has an id other than the old one.
  await waitUntil(`topic ${topic} created again`, async () => {
    await ensureTopic(stack.config).catch(() => null);
    const id = await topicIdNow(stack).catch(() => null);
    return id !== null && id !== oldId;
  });
}

/** Deletes every record of `partition` below `offset` (what retention does). */
export async function deleteRecordsBelow(stack: TestStack, partition: number, offset: bigint): Promise<void> {
  const admin = createKafka(stack.config, "test-admin").admin();
  await admin.connect();
  try {
    // kafkajs finds the partitions' leaders in metadata it must have loaded for the topic first.
    await admin.fetchTopicMetadata({ topics: [stack.config.TALLY_TOPIC] });
    await admin.deleteTopicRecords({
      topic: stack.config.TALLY_TOPIC,
      partitions: [{ partition, offset: offset.toString() }],
    });
  } finally {
    await admin.disconnect();
  }
}

/** The topic's log range per partition: low (log start) and high (the next offset). */
export async function logRanges(stack: TestStack): Promise<Map<number, { low: bigint; high: bigint }>> {
  const admin = createKafka(stack.config, "test-admin").admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(stack.config.TALLY_TOPIC);
    return new Map(offsets.map((o) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]));
  } finally {
    await admin.disconnect();
  }
}

/** The consumer group's state as the coordinator reports it, and its member count. */
export async function groupState(stack: TestStack): Promise<{ state: string; members: number }> {
  const admin = createKafka(stack.config, "test-admin").admin();
  await admin.connect();
  try {
    const [group] = (await admin.describeGroups([stack.config.TALLY_GROUP])).groups;
    return { state: group!.state, members: group!.members.length };
  } finally {
    await admin.disconnect();
  }
}

/** Exit code given by tallyBounded to a command that had to be killed: it did not exit by itself. */
export const hungCode = -2;

/**
 * `bin/tally <args>` as stack.ts's tally() runs it, with a hang guard: a command that does not exit
 * by itself within `hangGuardMs` (a connection left open keeps Node alive) is killed and answers
 * hungCode, with a note in stderr, instead of holding the test until its timeout with no clue.
 */
export function tallyBounded(
  args: string[],
  env: NodeJS.ProcessEnv,
  hangGuardMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      `${repoRoot}bin/tally`,
      args,
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
        maxBuffer: 64 << 20,
        timeout: hangGuardMs,
        killSignal: "SIGKILL",
      },
      (error, stdout, stderr) => {
        const e = error as (Error & { code?: number | string; killed?: boolean }) | null;
        if (e?.killed) {
          const note = `tally ${args.join(" ")} did not exit within ${hangGuardMs} ms; killed (output above)\n`;
          resolve({ code: hungCode, stdout, stderr: `${stdout}${stderr}${note}` });
          return;
        }
        resolve({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, stdout, stderr });
      },
    );
  });
}

/** After each test: its processes killed (and reaped), its topic and databases dropped. */
export async function endOfTest(processes: TallyProcess[], stack: TestStack | null): Promise<void> {
  for (const p of processes) {
    p.signal("SIGKILL");
    await p.exited;
  }
  await restoreStack(); // a server a failed or timed-out test left stopped
  if (stack) await dropTestStack(stack);
}

/**
 * Registers, in the calling spec file, endOfTest after every case: the processes given to `track`
 * killed, the stack given to `use` dropped. Both return what they were given.
 */
export function endedAfterEach(): {
  track: (p: TallyProcess) => TallyProcess;
  use: (s: TestStack) => TestStack;
} {
  let stack: TestStack | null = null;
  const started: TallyProcess[] = [];
  afterEach(async () => {
    await endOfTest(started.splice(0), stack);
    stack = null;
  });
  return {
    track: (p) => {
      started.push(p);
      return p;
    },
    use: (s) => {
      stack = s;
      return s;
    },
  };
}
