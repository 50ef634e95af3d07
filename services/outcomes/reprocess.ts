// `tally reprocess` as a library call: rejections whose cause is fixed are produced again, key and
// bytes as they were consumed, in (partition, offset) order, so each token's records go out in their
// original order; the normal rules then decide. Each rejection is re-driven at most once: its row
// records where the copy landed, after Kafka acknowledged it. A crash between the ack and that record
// leaves the row unmarked, and the next run re-drives it once more: the copy then meets its own
// first copy, a duplicate by transfer id (or the same rejection again).

import type { Config } from "../common/config.ts";
import type { Logger } from "../common/log.ts";
import type { Client } from "../common/pg.ts";
import { createRegistry } from "../common/registry.ts";
import { filterConditions, type RejectionFilter } from "./filters.ts";
import { type RejectionReason, schemaReasons } from "./reasons.ts";
import type { Coordinates } from "./records.ts";
import { type Candidate, type Precheck, planRedrive } from "./redrive-plan.ts";
import { RedriveProducer } from "./redrive-producer.ts";
import { SchemaCheck } from "./schema-check.ts";
import { type OutcomeSource, withSource } from "./sources.ts";

export type ReprocessOptions = {
  /** the reasons to re-drive (reasonsOf: the defaults unless named), the time and token filters */
  filter: RejectionFilter & { reasons: readonly RejectionReason[] };
  /** at most this many re-driven in this run; null: all */
  limit: number | null;
  dryRun: boolean;
  /** rows read per query; bounds memory */
  pageSize?: number;
  logger?: Logger;
};

export type ReprocessEntry = {
  shard: number;
  from: Coordinates;
  reason: RejectionReason;
  /** where the copy landed; null in a dry run */
  to: { partition: number; offset: bigint } | null;
};
export type HeldEntry = { shard: number; from: Coordinates; reason: RejectionReason; why: string };

export type ReprocessReport = {
  dryRun: boolean;
  reasons: readonly RejectionReason[];
  redriven: number;
  held: number;
  /** the first `listedMax` of each */
  redrivenList: ReprocessEntry[];
  heldList: HeldEntry[];
  limitReached: boolean;
};

export const listedMax = 1000;
const pageSizeDefault = 500;
/** pg_try_advisory_lock(key, hashtext(topic)): one reprocess per topic at a time, per shard. */
export const reprocessLockKey = 0x7a11_0014;

export async function reprocess(config: Config, options: ReprocessOptions): Promise<ReprocessReport> {
  const report: ReprocessReport = {
    dryRun: options.dryRun,
    reasons: options.filter.reasons,
    redriven: 0,
    held: 0,
    redrivenList: [],
    heldList: [],
    limitReached: false,
  };
  const schemas = new SchemaCheck(createRegistry(config));
  const producer = new RedriveProducer(config);
  const send = (messages: Candidate[]) => producer.send(messages);
  try {
    await withSource(config, async (source) => {
      let budget = options.limit ?? Number.POSITIVE_INFINITY;
      for (const [shard, pool] of source.shards.entries()) {
        const client = await pool.connect();
        try {
          if (!options.dryRun) await lock(client, source, shard);
          try {
            budget = await reprocessShard(client, shard, source, options, budget, schemas, send, report);
          } finally {
            if (!options.dryRun)
              await client.query("SELECT pg_advisory_unlock($1::int, hashtext($2))", [
                reprocessLockKey,
                source.topic,
              ]);
          }
        } finally {
          client.release();
        }
        if (budget <= 0) break;
      }
    });
  } finally {
    await producer.close();
  }
  return report;
}

async function lock(client: Client, source: OutcomeSource, shard: number): Promise<void> {
  const result = await client.query<{ locked: boolean }>(
    "SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS locked",
    [reprocessLockKey, source.topic],
  );
  if (!result.rows[0]?.locked)
    throw new Error(
      `another tally reprocess of topic ${source.topic} is running (shard ${shard}): try again after it`,
    );
}

type RawRow = {
  kafka_partition: number;
  kafka_offset_text: string;
  reason: string;
  raw_key: Buffer | null;
  raw_value: Buffer | null;
};

/** One shard, page by page in (partition, offset) order; answers the budget left. */
async function reprocessShard(
  client: Client,
  shard: number,
  source: OutcomeSource,
  options: ReprocessOptions,
  budgetIn: number,
  schemas: SchemaCheck,
  send: (messages: Candidate[]) => Promise<{ partition: number; offset: bigint }[]>,
  report: ReprocessReport,
): Promise<number> {
  const pageSize = options.pageSize ?? pageSizeDefault;
  const heldKeys = new Set<string>();
  let after: { partition: number; offset: bigint } = { partition: -1, offset: -1n };
  let budget = budgetIn;
  while (budget > 0) {
    const params: unknown[] = [];
    const conditions = filterConditions(options.filter, params);
    conditions.push("redriven_at IS NULL");
    params.push(after.partition, after.offset.toString(), pageSize);
    const page = await client.query<RawRow>(
      `SELECT kafka_partition, kafka_offset::text AS kafka_offset_text, reason, raw_key, raw_value
         FROM rejected_transfers
        WHERE ${conditions.join(" AND ")} AND (kafka_partition, kafka_offset) > ($${params.length - 2}::int, $${params.length - 1}::bigint)
        ORDER BY kafka_partition, kafka_offset LIMIT $${params.length}`,
      params,
    );
    if (page.rows.length === 0) break;
    const candidates: Candidate[] = page.rows.map((r) => ({
      partition: r.kafka_partition,
      offset: BigInt(r.kafka_offset_text),
      reason: r.reason as RejectionReason,
      key: r.raw_key,
      value: r.raw_value,
    }));
    const last = candidates[candidates.length - 1]!;
    after = { partition: last.partition, offset: last.offset };
    const prechecks = await precheck(schemas, candidates);
    const { planned, budgetLeft } = planRedrive(
      candidates,
      (c) => prechecks.get(c) ?? null,
      heldKeys,
      budget,
    );
    budget = budgetLeft;
    const from = (c: Candidate): Coordinates => ({
      topic: source.topic,
      partition: c.partition,
      offset: c.offset,
    });
    for (const p of planned) {
      if (p.action !== "hold") continue;
      report.held++;
      if (report.heldList.length < listedMax)
        report.heldList.push({ shard, from: from(p.candidate), reason: p.candidate.reason, why: p.why });
    }
    const toSend = planned.flatMap((p) => (p.action === "redrive" ? [p.candidate] : []));
    if (toSend.length > 0) {
      const placements = options.dryRun ? null : await send(toSend);
      if (placements !== null) await recordRedriven(client, source.topic, toSend, placements);
      for (const [k, c] of toSend.entries()) {
        report.redriven++;
        const placed = placements?.[k];
        if (report.redrivenList.length < listedMax)
          report.redrivenList.push({
            shard,
            from: from(c),
            reason: c.reason,
            to: placed ? { partition: placed.partition, offset: placed.offset } : null,
          });
      }
      options.logger?.info(
        { shard, redriven: toSend.length, dryRun: options.dryRun },
        "reprocess: page re-driven",
      );
    }
    // The limit spent: more may remain (later pages, later shards); the next run goes on from there.
    if (budget <= 0) report.limitReached = true;
    if (page.rows.length < pageSize) break;
  }
  return budget;
}

/** For the reasons a writer schema decided: is the schema there now, and readable? */
async function precheck(
  schemas: SchemaCheck,
  candidates: readonly Candidate[],
): Promise<Map<Candidate, Precheck>> {
  const answers = new Map<Candidate, Precheck>();
  for (const c of candidates) if (schemaReasons.has(c.reason)) answers.set(c, await schemas.check(c.value));
  return answers;
}

/** After Kafka's ack: where each copy landed. A row already marked is left as it is. */
async function recordRedriven(
  client: Client,
  topic: string,
  sent: readonly Candidate[],
  placements: readonly { partition: number; offset: bigint }[],
): Promise<void> {
  await client.query(
    `UPDATE rejected_transfers r
        SET redriven_at = now(), redriven_to_partition = u.to_partition, redriven_to_offset = u.to_offset
       FROM unnest($2::int[], $3::bigint[], $4::int[], $5::bigint[]) AS u(p, o, to_partition, to_offset)
      WHERE r.topic = $1 AND r.kafka_partition = u.p AND r.kafka_offset = u.o AND r.redriven_at IS NULL`,
    [
      topic,
      sent.map((c) => c.partition),
      sent.map((c) => c.offset.toString()),
      placements.map((p) => p.partition),
      placements.map((p) => p.offset.toString()),
    ],
  );
}
