// The peer of `tally bench-peer` as configuration: the tunings tried, the worker and connector
// properties rendered from the templates in infra/peer/, the JDBC URL, and the target table.
// Pure (no I/O beyond reading the templates): unit tested.
import { readFileSync } from "node:fs";
import { assert } from "../../services/common/assert.ts";
import { shardDdl } from "../../services/storage/ddl.ts";

export const peerDir = new URL("../../infra/peer/", import.meta.url).pathname;
/** Where infra/peer/peer.sh puts the fetched jars; the worker's plugin.path. */
export const peerPluginPath = new URL("../../.local/peer/plugins", import.meta.url).pathname;
export const peerTable = "transfers";
/** The versions infra/peer/peer.sh and its poms fetch (a unit test checks they agree). */
export const peerVersions = { connect: "4.3.1", sink: "3.6.0.Final", converter: "2.6.13.Final" } as const;
/** What infra/peer/peer.sh gives the JVM unless PEER_HEAP_OPTS says otherwise. */
export const peerHeapOptionsDefault = "-Xms256M -Xmx2G";

/**
 * The table the sink writes: Tally's ledger shape (day-partitioned, every record inserted), or the
 * shape where the sink is fastest and does the most for itself: a plain table keyed by transfer_id,
 * upserted (a duplicate overwrites its row instead of adding one).
 */
export type PeerShape = "ledger" | "keyed-upsert";
export const peerShapes: readonly PeerShape[] = ["ledger", "keyed-upsert"];

/** One way to tune the sink: the knobs its users turn (tasks, batch size, poll size, writer). */
export type PeerSetting = {
  name: string;
  /** absent in peer.json files written before the keyed shape existed: those are "ledger" */
  shape: PeerShape;
  tasksMax: number;
  batchSize: number;
  /** the sink consumer's max.poll.records: one put() is at most this many records */
  maxPollRecords: number;
  /** Debezium's UNNEST writer (one INSERT ... SELECT FROM UNNEST per batch) or JDBC batching */
  writer: "unnest" | "rewrite";
};

/** Fetch sizes that beat the defaults for Node's consumer here (STACK.md); the same for Java's. */
export const peerFetchMaxBytes = 24 * 1024 * 1024;
export const peerPartitionFetchMaxBytes = 4 * 1024 * 1024;

/**
 * The tunings tried on each shape, from what STACK.md verified (2 tasks, batches of 3,000) to a
 * task per partition with larger batches, and JDBC batching rewritten to multi-row INSERTs instead
 * of UNNEST; named `<shape>-tasks<n>-batch<n>-<writer>`.
 */
export function peerSettingsFor(partitions: number): PeerSetting[] {
  const setting = (
    shape: PeerShape,
    tasksMax: number,
    batchSize: number,
    writer: PeerSetting["writer"],
  ): PeerSetting => ({
    name: `${shape}-tasks${tasksMax}-batch${batchSize}-${writer}`,
    shape,
    tasksMax,
    batchSize,
    maxPollRecords: batchSize,
    writer,
  });
  return peerShapes.flatMap((shape) => [
    setting(shape, 2, 3_000, "unnest"),
    setting(shape, partitions, 5_000, "unnest"),
    setting(shape, 2, 5_000, "rewrite"),
  ]);
}

/**
 * What `bench-peer` tries without --settings: two tunings per shape, the two fastest into the
 * ledger on 2026-11-22 (within 6 % of the third), and the UNNEST writer into the keyed table,
 * which the sink documents as compatible with upsert (one statement per batch).
 */
export function peerDefaultSettingNames(partitions: number): string[] {
  return [
    "ledger-tasks2-batch5000-rewrite",
    "ledger-tasks2-batch3000-unnest",
    "keyed-upsert-tasks2-batch3000-unnest",
    `keyed-upsert-tasks${partitions}-batch5000-unnest`,
  ];
}

/** The settings whose names are listed, in the order given (none: `defaults`); unknown names are an error. */
export function pickSettings(
  all: readonly PeerSetting[],
  names: readonly string[] | undefined,
  defaults: readonly string[] = all.map((s) => s.name),
): PeerSetting[] {
  if (names === undefined || names.length === 0) return pickSettings(all, defaults);
  return names.map((name) => {
    const found = all.find((s) => s.name === name);
    if (!found)
      throw new RangeError(`unknown peer setting ${name}; known: ${all.map((s) => s.name).join(", ")}`);
    return found;
  });
}

/** Replaces every ${name}; a placeholder without a value is an error, never left in. */
export function renderTemplate(template: string, values: Record<string, string | number | boolean>): string {
  return template.replace(/\$\{([A-Za-z][A-Za-z0-9]*)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new RangeError(`template placeholder \${${name}} has no value`);
    return String(value);
  });
}

/** key=value lines of a .properties file; comments and blank lines skipped, no escapes. */
export function parseProperties(text: string): Record<string, string> {
  const properties: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const at = line.indexOf("=");
    if (at < 1) throw new RangeError(`not a key=value line: ${JSON.stringify(line)}`);
    properties[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return properties;
}

const templateOf = (name: string) => readFileSync(`${peerDir}${name}`, "utf8");

/** The registry's own v2 API, which the Apicurio converter speaks, from the ccompat URL Tally uses. */
export function converterRegistryUrl(ccompatUrl: string): string {
  const url = new URL(ccompatUrl);
  const match = /^(.*)\/apis\/ccompat\/v\d+\/?$/.exec(url.pathname);
  if (!match)
    throw new RangeError(`the registry URL must end in /apis/ccompat/v7 (Apicurio); got ${url.pathname}`);
  url.pathname = `${match[1]}/apis/registry/v2`;
  return url.toString();
}

export type Jdbc = { url: string; username: string; password: string };

/** postgres://user:password@host:port/db → the JDBC URL and credentials; the writer's URL options. */
export function jdbcOf(postgresUrl: string, writer: PeerSetting["writer"]): Jdbc {
  const u = new URL(postgresUrl);
  assert(u.protocol === "postgres:" || u.protocol === "postgresql:", "a postgres:// URL");
  // JDBC batching pays only when the driver rewrites it into multi-row INSERTs; the plain writer
  // binds strings for every column type, which PostgreSQL must then cast (STACK.md).
  const options = writer === "rewrite" ? "?reWriteBatchedInserts=true&stringtype=unspecified" : "";
  return {
    url: `jdbc:postgresql://${u.hostname}:${u.port || "5432"}${u.pathname}${options}`,
    username: decodeURIComponent(u.username || "postgres"),
    password: decodeURIComponent(u.password),
  };
}

export type WorkerValues = {
  brokers: string;
  restPort: number;
  registryUrl: string;
  offsetsFile: string;
  pluginPath?: string;
};

export function workerProperties(setting: PeerSetting, values: WorkerValues): string {
  return renderTemplate(templateOf("worker.properties"), {
    pluginPath: peerPluginPath,
    ...values,
    maxPollRecords: setting.maxPollRecords,
    fetchMaxBytes: peerFetchMaxBytes,
    partitionFetchMaxBytes: peerPartitionFetchMaxBytes,
  });
}

/**
 * The keyed shape's connector keys over the template's (insert, no key): upsert on transfer_id
 * taken from the record's value, and the reduction buffer, which folds the records of a batch that
 * share a key into one (an exact duplicate in the same batch would otherwise make PostgreSQL's
 * ON CONFLICT DO UPDATE touch a row twice in one statement, an error).
 */
export const keyedUpsertProperties = {
  "insert.mode": "upsert",
  "primary.key.mode": "record_value",
  "primary.key.fields": "transfer_id",
  "use.reduction.buffer": "true",
} as const;

export function connectorConfig(setting: PeerSetting, topic: string, jdbc: Jdbc): Record<string, string> {
  const text = renderTemplate(templateOf("connector.properties"), {
    tasksMax: setting.tasksMax,
    topic,
    jdbcUrl: jdbc.url,
    username: jdbc.username,
    password: jdbc.password,
    table: peerTable,
    batchSize: setting.batchSize,
    unnest: setting.writer === "unnest",
  });
  const properties = parseProperties(text);
  return setting.shape === "keyed-upsert" ? { ...properties, ...keyedUpsertProperties } : properties;
}

function replaced(text: string, from: string, to: string): string {
  assert(text.includes(from), `the ledger DDL has no "${from}" (storage/ddl.ts changed?)`);
  return text.replace(from, to);
}

/**
 * Tally's ledger table, day-partitioned the same, with three differences the sink needs:
 * transfer_id is text (Debezium's UNNEST writer fails on a uuid column, STACK.md); schema_id has a
 * default (the sink has no field for it); inserted_at records when each row was written
 * (clock_timestamp(), per row), which times the first and the last row exactly.
 */
export function peerLedgerDdl(): string {
  const ledger = shardDdl[0]!;
  assert(ledger.includes(`CREATE TABLE IF NOT EXISTS ${peerTable} (`), "shardDdl[0] is the ledger");
  return replaced(
    replaced(ledger, "transfer_id uuid NOT NULL", "transfer_id text NOT NULL"),
    "schema_id int NOT NULL",
    "schema_id int NOT NULL DEFAULT 0,\n     inserted_at timestamptz NOT NULL DEFAULT clock_timestamp()",
  );
}

/**
 * The keyed shape: the same columns in one plain table (no day partitions), transfer_id its
 * primary key. inserted_at is set when a row is first inserted; an upsert of a duplicate leaves it.
 */
export function peerKeyedDdl(): string {
  const ledger = peerLedgerDdl();
  return replaced(
    replaced(ledger, "transfer_id text NOT NULL", "transfer_id text PRIMARY KEY"),
    " PARTITION BY RANGE (occurred_at)",
    "",
  );
}

/**
 * What was produced: the peer must land exactly these rows, every event into the ledger shape, one
 * per distinct transfer_id (exact duplicates share one) into the keyed shape.
 */
export type Produced = {
  events: number;
  amountTotal: bigint;
  distinctIds: number;
  distinctAmountTotal: bigint;
  days: Set<number>;
};

/** The rows and the sum of their amounts the shape must end with. */
export function expectedOf(produced: Produced, shape: PeerShape): { rows: number; amountTotal: bigint } {
  return shape === "keyed-upsert"
    ? { rows: produced.distinctIds, amountTotal: produced.distinctAmountTotal }
    : { rows: produced.events, amountTotal: produced.amountTotal };
}

export const peerDdlOf = (shape: PeerShape) => (shape === "keyed-upsert" ? peerKeyedDdl() : peerLedgerDdl());
