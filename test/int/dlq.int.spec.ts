// The dead-letter relay on the real stack: rejections (double spends, records that are not Avro)
// applied by `tally apply`, published by `tally dlq-relay`, which is SIGKILLed on its first
// published batch and run again. Then the dead-letter topic is read back whole: every rejection is
// there at least once, with its original key, value and the Connect-style and Tally headers, and the
// repeats (a batch acknowledged by Kafka but not yet checkpointed when the kill landed) are at most
// one batch. Also `tally verify` records its result and the projector exports it.
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../services/common/config.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { TransferProducer } from "../../services/producer/producer.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { topics } from "../../services/topics/topics.ts";
import { onShards, sendEvents } from "../support/applier-process.ts";
import { mintOf, moveOf } from "../support/events.ts";
import { sampleValue, scrapeUntil, waitReady } from "../support/metrics.ts";
import { startProjector } from "../support/pipeline.ts";
import { freePort } from "../support/ports.ts";
import { startTallyProcess, type TallyProcess } from "../support/process.ts";
import { dropTestStack, type TestStack, tally, testStack } from "../support/stack.ts";

const doubleSpends = 600;
const notAvro = 60;
const batchMax = 10;

const base = testStack("dlq");
const dlqTopic = `${base.name}.dlq`;
const s: TestStack = {
  ...base,
  env: { ...base.env, TALLY_DLQ_TOPIC: dlqTopic },
  config: loadConfig({ ...base.env, TALLY_DLQ_TOPIC: dlqTopic }),
};
const started: TallyProcess[] = [];

type StoredRejection = {
  kafka_partition: number;
  kafka_offset: string;
  reason: string;
  detail: string;
  schema_id: number | null;
  transfer_id: string | null;
  raw_key: Buffer | null;
  raw_value: Buffer | null;
};

type Letter = {
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
};

/** Every record of the dead-letter topic, from its start to its end now. */
async function readDeadLetters(): Promise<Letter[]> {
  const kafka = createKafka(s.config, "test-dlq-reader");
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(dlqTopic).finally(() => admin.disconnect());
  const total = ends.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  const consumer = kafka.consumer({ groupId: `${base.name}-dlq-reader` });
  const letters: Letter[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: dlqTopic, fromBeginning: true });
    let done: () => void = () => {};
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        letters.push({ partition, key: message.key, value: message.value, headers });
        if (letters.length >= total) done();
      },
    });
    if (total > 0) await all;
  } finally {
    await consumer.disconnect();
  }
  return letters;
}

afterAll(async () => {
  for (const p of started) p.signal("SIGKILL");
  await Promise.all(started.map((p) => p.exited));
  const admin = createKafka(s.config, "test-admin").admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [dlqTopic] }).catch(() => undefined);
  await admin.disconnect();
  await dropTestStack(s);
});

describe("tally dlq-relay", () => {
  it("given rejections and a relay SIGKILLed mid-run, when it runs again, then every rejection is on the dead-letter topic at least once, repeats at most one batch", async () => {
    await migrate(s.config);
    await topics(s.config);
    const now = Date.now();
    const mints = Array.from({ length: doubleSpends }, (_, k) =>
      mintOf({ token_id: `tok-${k}`, occurred_at: now }),
    );
    const spends = mints.map((m) =>
      moveOf({ token_id: m.token_id, prev_state: "nowhere", occurred_at: now }),
    );
    await sendEvents(s, [...mints, ...spends]);
    const producer = new TransferProducer(s.config, { schemaId: 0 });
    await producer.connect();
    await producer
      .sendRaw(
        Array.from({ length: notAvro }, (_, k) => ({ key: `tok-${k}`, value: Buffer.from(`not avro ${k}`) })),
      )
      .finally(() => producer.disconnect());
    const apply = await tally(["apply", "--until-caught-up"], s.env);
    expect(apply.code, apply.stderr).toBe(0);

    const stored = (
      await onShards(s, (pool) =>
        pool
          .query<StoredRejection>(
            `SELECT kafka_partition, kafka_offset::text AS kafka_offset, reason, detail, schema_id, transfer_id,
                    raw_key, raw_value FROM rejected_transfers WHERE topic = $1`,
            [s.config.TALLY_TOPIC],
          )
          .then((r) => r.rows),
      )
    ).flat();
    const total = doubleSpends + notAvro;
    expect(stored.length).toBe(total);
    const reasons = new Map<string, number>();
    for (const r of stored) reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
    expect(Object.fromEntries(reasons)).toEqual({ state_conflict: doubleSpends, undecodable: notAvro });

    // The first run is killed on its first batch Kafka acknowledged (a debug line logged before the
    // checkpoint moves), acted on as the line is read: whether the checkpoint wins the race decides
    // whether that batch is repeated.
    const first = startTallyProcess(s.env, "dlq-relay", ["--batch-max", String(batchMax)], {
      env: { TALLY_LOG_LEVEL: "debug" },
    });
    started.push(first);
    first.onLine((line) => {
      if (line.msg === "dlq: batch acknowledged") first.signal("SIGKILL");
    });
    expect(await first.exited).toBe(-1);
    const checkpointed = async () =>
      (
        await onShards(s, (pool) =>
          pool
            .query<{ n: string }>(
              "SELECT coalesce(sum(published_count), 0)::text AS n FROM dlq_checkpoints WHERE dlq_topic = $1",
              [dlqTopic],
            )
            .then((r) => Number(r.rows[0]!.n)),
        )
      ).reduce((a, b) => a + b, 0);
    const atKill = await checkpointed();
    // Killed mid-run: part of the rejections, not all, were checkpointed.
    expect(atKill).toBeLessThan(total);

    const second = await tally(["dlq-relay", "--until-caught-up", "--batch-max", String(batchMax)], s.env);
    expect(second.code, second.stderr).toBe(0);
    expect(await checkpointed()).toBe(total);

    const letters = await readDeadLetters();
    const byCoordinates = new Map<string, Letter[]>();
    for (const l of letters) {
      const at = `${l.headers["__connect.errors.partition"]}/${l.headers["__connect.errors.offset"]}`;
      byCoordinates.set(at, [...(byCoordinates.get(at) ?? []), l]);
    }
    const repeats = letters.length - byCoordinates.size;
    process.stderr.write(
      `dlq: ${total} rejections; ${atKill} checkpointed when SIGKILL landed; ${letters.length} dead-letter records, ` +
        `${byCoordinates.size} distinct, ${repeats} repeated (batch ${batchMax})\n`,
    );
    expect(byCoordinates.size).toBe(total);
    expect(repeats).toBeLessThanOrEqual(batchMax);
    expect(repeats).toBeGreaterThanOrEqual(0);

    const partitionsOfDlq = s.config.TALLY_PARTITIONS;
    for (const r of stored) {
      const copies = byCoordinates.get(`${r.kafka_partition}/${r.kafka_offset}`);
      expect(copies, `rejection ${r.kafka_partition}/${r.kafka_offset}`).toBeDefined();
      for (const l of copies!) {
        expect(l.partition).toBe(r.kafka_partition % partitionsOfDlq);
        expect(l.key).toEqual(r.raw_key);
        expect(l.value).toEqual(r.raw_value);
        expect(l.headers).toMatchObject({
          "__connect.errors.topic": s.config.TALLY_TOPIC,
          "__connect.errors.partition": String(r.kafka_partition),
          "__connect.errors.offset": r.kafka_offset,
          "__connect.errors.connector.name": s.config.TALLY_GROUP,
          "__connect.errors.stage": r.reason === "undecodable" ? "VALUE_CONVERTER" : "TASK_PUT",
          "__connect.errors.exception.class.name": `tally.rejected.${r.reason}`,
          "__connect.errors.exception.message": `${r.reason}: ${r.detail}`,
          "tally.reason": r.reason,
          "tally.detail": r.detail,
        });
        if (r.schema_id === null) expect(l.headers).not.toHaveProperty("tally.schema_id");
        else expect(l.headers["tally.schema_id"]).toBe(String(r.schema_id));
        if (r.transfer_id !== null) expect(l.headers["tally.transfer_id"]).toBe(r.transfer_id);
      }
    }
    // Within a source partition, the dead-letter records keep the rejections' offset order.
    for (let p = 0; p < partitionsOfDlq; p++) {
      const offsets = letters
        .filter((l) => l.headers["__connect.errors.partition"] === String(p))
        .map((l) => BigInt(l.headers["__connect.errors.offset"]!));
      const firstSeen = offsets.filter((o, k) => offsets.indexOf(o) === k);
      expect(firstSeen).toEqual([...firstSeen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    }
  });

  it("given a tally verify run, then the projector exports its result from verify_runs", async () => {
    const project = await tally(["project", "--until-caught-up"], s.env);
    expect(project.code, project.stderr).toBe(0);
    const verify = await tally(["verify", "--json"], s.env);
    expect(verify.code, verify.stdout).toBe(0);
    const port = await freePort();
    const projector = startProjector(s, [], { TALLY_METRICS_PORT: String(port) });
    started.push(projector);
    await waitReady(port);
    const samples = await scrapeUntil(port, "the verify gauges", (x) =>
      x.some((m) => m.name === "tally_verify_last_ok"),
    );
    expect(sampleValue(samples, "tally_verify_last_ok")).toBe(1);
    const lastSuccess = sampleValue(samples, "tally_verify_last_success_timestamp_seconds");
    expect(Math.abs(lastSuccess - Date.now() / 1000)).toBeLessThan(120);
    expect(sampleValue(samples, "tally_verify_last_run_timestamp_seconds")).toBe(lastSuccess);
    projector.signal("SIGTERM");
    expect(await projector.exited).toBe(0);
  });
});
