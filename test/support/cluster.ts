// The multi-server cluster of `make up-cluster` for fault tests: per-test topic and databases on
// its servers, control of its parts (kill a broker, crash a shard's server, stop the registry), a
// producer at a steady rate that accounts for every resend, and an independent recount of the topic.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { Kafka, type Kafka as KafkaClient, logLevel } from "kafkajs";
import { expect } from "vitest";
import { assert } from "../../services/common/assert.ts";
import { transferEventType } from "../../services/common/avro.ts";
import { type Config, loadConfig } from "../../services/common/config.ts";
import type { TransferEvent } from "../../services/common/event.ts";
import { sleep } from "../../services/common/retry.ts";
import { type SendResult, TransferProducer } from "../../services/producer/producer.ts";
import type { LoadRun } from "../../tools/load/load.ts";
import { faultLoad } from "./pipeline.ts";
import { repoRoot, type TestStack } from "./stack.ts";

const run = promisify(execFile);
export const clusterEnvFile = `${repoRoot}.local/cluster.env`;

/** The cluster's settings as `make up-cluster` wrote them; fails with the command to run if absent. */
export function clusterEnv(): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(clusterEnvFile, "utf8");
  } catch {
    throw new Error(`${clusterEnvFile} is missing: start the cluster first (make up-cluster)`);
  }
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const [name, ...rest] = line.split("=");
    if (name?.startsWith("TALLY_")) env[name] = rest.join("=");
  }
  return env;
}

/** A unique topic and unique databases on each of the cluster's servers, for one test. */
export function clusterTestStack(label: string, overrides: Record<string, string> = {}): TestStack {
  const name = `c${label}_${randomBytes(3).toString("hex")}`;
  const base = clusterEnv();
  const renamed = (url: string, database: string) => {
    const u = new URL(url);
    u.pathname = `/${database}`;
    return u.toString();
  };
  const shards = (base.TALLY_PG_SHARDS ?? "").split(",").filter((u) => u !== "");
  assert(shards.length >= 2, "the cluster has a server per shard, at least two");
  const env: NodeJS.ProcessEnv = {
    ...base,
    TALLY_TOPIC: name,
    TALLY_GROUP: `${name}-applier`,
    TALLY_PG_SHARDS: shards.map((url, k) => renamed(url, `${name}_shard_${k}`)).join(","),
    TALLY_PG_VIEWS: renamed(base.TALLY_PG_VIEWS ?? "", `${name}_views`),
    TALLY_LOG_LEVEL: "warn",
    TALLY_KAFKA_SESSION_TIMEOUT_MS: "6000",
    ...overrides,
  };
  return { config: loadConfig(env), env, name };
}

export type ClusterPart = `kafka-${number}` | `pg-shard-${number}` | "pg-views" | "registry";

/** `infra/stack.sh cluster-start|cluster-stop <part> [kill|immediate]`. */
export async function clusterCtl(
  verb: "start" | "stop",
  part: ClusterPart,
  how: "" | "kill" | "immediate" = "",
): Promise<void> {
  const args = [`${repoRoot}infra/stack.sh`, `cluster-${verb}`, part, ...(how ? [how] : [])];
  await run("bash", args, { maxBuffer: 16 << 20 });
}

/**
 * A client for the test's own watching (lag, leaders, members, recount): silent, since connection
 * errors to a killed broker are the point of the test, not news. The cluster is plaintext.
 */
export function quietKafka(config: Config, suffix: string): KafkaClient {
  return new Kafka({
    clientId: `tally-test-${suffix}`,
    brokers: config.TALLY_KAFKA_BROKERS,
    logLevel: logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
  });
}

/** `infra/stack.sh up-cluster`: starts what is not running (a no-op of seconds when all is). */
export async function clusterUp(): Promise<void> {
  await run("bash", [`${repoRoot}infra/stack.sh`, "up-cluster"], { maxBuffer: 16 << 20 });
}

/** The node id of a partition's leader, from the cluster's metadata. */
export async function leaderOf(stack: TestStack, partition: number): Promise<number> {
  const admin = quietKafka(stack.config, "leader").admin();
  await admin.connect();
  try {
    const [topic] = (await admin.fetchTopicMetadata({ topics: [stack.config.TALLY_TOPIC] })).topics;
    const found = topic?.partitions.find((p) => p.partitionId === partition);
    assert(found !== undefined && found.leader >= 0, `partition ${partition} has a leader`);
    return found.leader;
  } finally {
    await admin.disconnect();
  }
}

export type SteadyLoadOptions = { eventsPerSecond: number; seconds: number; seed: number };

// Ten sends a second keep the pace smooth; a resend after a failed send is bounded.
const sendsPerSecond = 10;
const resendAttemptsMax = 10;

/**
 * The generator's load, produced at a fixed rate in the background. A send that fails after the
 * producer's own retries is sent again, whole, by a new producer (a new idempotence id, so Kafka
 * cannot drop copies that already landed): every event so resent is counted, and the recount of
 * the topic must find at most that many extra copies.
 */
export class SteadyLoad {
  readonly load: LoadRun;
  /** times each transfer_id was generated (the generator's own duplicates included) */
  readonly generated = new Map<string, number>();
  /**
   * The ids the token rules reject (double spends), by a model of those rules run over the events
   * in generated order, apart from the generator's own bookkeeping (checked against its outcome).
   */
  readonly rejectedIds = new Set<string>();
  private readonly tokenStates = new Map<string, string>();
  resentEvents = 0;
  /** why sends failed, one line each (a resend follows each) */
  readonly sendFailures: string[] = [];
  sentEvents = 0;
  private readonly stack: TestStack;
  private readonly options: SteadyLoadOptions;
  private running: Promise<void> | null = null;
  private cancelled = false;

  constructor(stack: TestStack, options: SteadyLoadOptions) {
    this.stack = stack;
    this.options = options;
    this.load = faultLoad(options.eventsPerSecond * options.seconds, options.seed);
  }

  get events(): number {
    return this.options.eventsPerSecond * this.options.seconds;
  }

  start(): void {
    assert(this.running === null, "a steady load starts once");
    this.running = this.produce();
    this.running.catch(() => {}); // awaited by done(); this only keeps it from going unhandled
  }

  /** Resolves when every event is acknowledged by Kafka (acks=all). */
  async done(): Promise<void> {
    assert(this.running !== null, "started before done()");
    await this.running;
    expect(this.sentEvents).toBe(this.events);
    expect(this.rejectedIds.size).toBe(this.load.outcome.rejected.state_conflict);
  }

  /** Stops producing after the send in flight (a failed test's cleanup); never throws. */
  async cancel(): Promise<void> {
    this.cancelled = true;
    await this.running?.catch(() => {});
  }

  private async produce(): Promise<void> {
    const chunkEvents = Math.ceil(this.options.eventsPerSecond / sendsPerSecond);
    let producer = await this.connect();
    const startedMs = performance.now();
    try {
      let scheduled = 0;
      for (const chunk of this.load.chunks(chunkEvents)) {
        if (this.cancelled) return;
        for (const event of chunk) this.model(event);
        for (let attempt = 1; ; attempt++) {
          let results: SendResult[];
          try {
            results = await producer.send(chunk);
          } catch (error) {
            this.sendFailures.push(String((error as Error).message).slice(0, 300));
            if (attempt >= resendAttemptsMax) throw error;
            // Order and idempotence end with this producer: a new one sends the whole chunk again.
            this.resentEvents += chunk.length;
            await producer.disconnect().catch(() => {});
            producer = await this.connect();
            continue;
          }
          assert(
            results.every((r) => r.ok),
            "the generator makes only well-formed events",
          );
          break;
        }
        this.sentEvents += chunk.length;
        scheduled += chunk.length;
        const aheadMs = startedMs + (scheduled / this.options.eventsPerSecond) * 1000 - performance.now();
        if (aheadMs > 0) await sleep(aheadMs);
      }
    } finally {
      await producer.disconnect();
    }
  }

  /** Mint, move or burn advance the token's state; a known id is a duplicate; else a double spend. */
  private model(event: TransferEvent): void {
    const id = event.transfer_id;
    const seen = this.generated.get(id) ?? 0;
    this.generated.set(id, seen + 1);
    if (seen > 0) return;
    const current = this.tokenStates.get(event.token_id);
    if (event.prev_state === null ? current === undefined : current === event.prev_state)
      this.tokenStates.set(event.token_id, event.next_state);
    else this.rejectedIds.add(id);
  }

  private async connect(): Promise<TransferProducer> {
    const producer = new TransferProducer(this.stack.config, { clientIdSuffix: "steady" });
    await producer.connect();
    return producer;
  }
}

/**
 * Reads the whole topic back, independently of Tally: how often each transfer_id is in it. Every
 * generated id must be there at least as often as generated (nothing lost); the copies beyond that
 * (extra) can only come from resends (nothing doubled by Kafka or the producer on its own).
 */
export async function recountTopic(
  stack: TestStack,
  steady: SteadyLoad,
): Promise<{ duplicates: number; rejected: number }> {
  const kafka = quietKafka(stack.config, "recount");
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map(
    (await admin.fetchTopicOffsets(stack.config.TALLY_TOPIC)).map((o) => [o.partition, BigInt(o.high)]),
  );
  await admin.disconnect();
  const counts = new Map<string, number>();
  const consumer = kafka.consumer({ groupId: `${stack.name}-recount`, maxBytes: 8 << 20 });
  await consumer.connect();
  await consumer.subscribe({ topic: stack.config.TALLY_TOPIC, fromBeginning: true });
  const remaining = new Set([...ends].filter(([, high]) => high > 0n).map(([p]) => p));
  const finished = new Promise<void>((resolve) => {
    if (remaining.size === 0) resolve();
    void consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) {
          assert(message.value !== null, "every produced record has a value");
          // Confluent framing: magic byte and a 4-byte schema id before the Avro body.
          const event = transferEventType.fromBuffer(message.value.subarray(5)) as { transfer_id: string };
          counts.set(event.transfer_id, (counts.get(event.transfer_id) ?? 0) + 1);
        }
        if (BigInt(batch.lastOffset()) + 1n >= (ends.get(batch.partition) ?? 0n))
          remaining.delete(batch.partition);
        if (remaining.size === 0) resolve();
      },
    });
  });
  const recountMsMax = 120_000;
  const cancel = new AbortController();
  const timeout = sleep(recountMsMax, cancel.signal).then(() => {
    if (!cancel.signal.aborted)
      throw new Error(`recount: the topic was not read to its end within ${recountMsMax} ms`);
  });
  try {
    await Promise.race([finished, timeout]);
  } finally {
    cancel.abort();
    await consumer.disconnect();
  }
  let inTopic = 0;
  for (const n of counts.values()) inTopic += n;
  expect(inTopic).toBe(Number([...ends.values()].reduce((a, b) => a + b, 0n)));
  // A copy of an applied event is a duplicate; a copy of a double spend is rejected again.
  const extra = { duplicates: 0, rejected: 0 };
  const missing: string[] = [];
  for (const [id, times] of steady.generated) {
    const found = counts.get(id) ?? 0;
    if (found < times) missing.push(id);
    const copies = Math.max(0, found - times);
    if (steady.rejectedIds.has(id)) extra.rejected += copies;
    else extra.duplicates += copies;
  }
  expect(missing).toEqual([]);
  expect([...counts.keys()].filter((id) => !steady.generated.has(id))).toEqual([]);
  expect(extra.duplicates + extra.rejected).toBeLessThanOrEqual(steady.resentEvents);
  return extra;
}
