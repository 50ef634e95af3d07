// A demo run's identity (topic, group and databases named <prefix>_<UTC time>) and the earlier
// runs of a prefix: found by name on Kafka, the registry and every PostgreSQL server, and removed
// but for the newest few.
import type { Config } from "../../services/common/config.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { createPool } from "../../services/common/pg.ts";

// ---- the run's identity

/** One demo run's names: `<prefix>_<yyyymmddhhmmss>` (`_<n>` added when that second is taken). */
export type DemoIdentity = {
  runId: string;
  topic: string;
  group: string;
  shards: string[];
  views: string;
};

/** The run id for a start at `nowMs` (UTC), not one of `taken`. */
export function demoRunId(nowMs: number, taken: Iterable<string> = []): string {
  const stamp = new Date(nowMs).toISOString().replace(/\D/g, "").slice(0, 14);
  const used = new Set(taken);
  if (!used.has(stamp)) return stamp;
  let n = 1;
  while (used.has(`${stamp}_${n}`)) n += 1;
  return `${stamp}_${n}`;
}

/** The same server and credentials, another database. */
function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** The run's names on the servers of `config`: as many shards as it has, each on its server. */
export function demoIdentity(config: Config, prefix: string, runId: string): DemoIdentity {
  const name = `${prefix}_${runId}`;
  return {
    runId,
    topic: name,
    group: name,
    shards: config.TALLY_PG_SHARDS.map((url, k) => withDatabase(url, `${name}_shard_${k}`)),
    views: withDatabase(config.TALLY_PG_VIEWS, `${name}_views`),
  };
}

/** The TALLY_* settings that point a command at the run. */
export function identityEnv(identity: DemoIdentity): Record<string, string> {
  return {
    TALLY_TOPIC: identity.topic,
    TALLY_GROUP: identity.group,
    TALLY_PG_SHARDS: identity.shards.join(","),
    TALLY_PG_VIEWS: identity.views,
  };
}

export function configOf(config: Config, identity: DemoIdentity): Config {
  return {
    ...config,
    TALLY_TOPIC: identity.topic,
    TALLY_GROUP: identity.group,
    TALLY_PG_SHARDS: identity.shards,
    TALLY_PG_VIEWS: identity.views,
  };
}

/** Which run a name of this prefix belongs to: `<prefix>_<run id><suffix>`, or undefined. */
function runIdOf(prefix: string, name: string, suffix: RegExp): string | undefined {
  const match = new RegExp(`^${prefix}_(\\d{14}(?:_\\d+)?)${suffix.source}$`).exec(name);
  return match?.[1];
}

/** Newest first: by time, then by the `_<n>` of runs started in the same second. */
export function newestFirst(runIds: Iterable<string>): string[] {
  const key = (id: string): [string, number] => {
    const [stamp, n] = id.split("_");
    return [stamp!, Number(n ?? 0)];
  };
  return [...runIds].sort((a, b) => {
    const [sa, na] = key(a);
    const [sb, nb] = key(b);
    return sa === sb ? nb - na : sb.localeCompare(sa);
  });
}

// ---- earlier runs: found by name on Kafka, the registry and every PostgreSQL server of the config

type DemoRun = {
  runId: string;
  topic?: string;
  group?: string;
  subject?: string;
  /** maintenance URL of a server → databases of the run on it */
  databases: Map<string, string[]>;
};

/** The server's maintenance database, where databases are listed, created and dropped. */
function maintenanceUrl(url: string): string {
  return withDatabase(url, "postgres");
}

export async function listDemoRuns(config: Config, prefix: string): Promise<DemoRun[]> {
  const runs = new Map<string, DemoRun>();
  const runOf = (runId: string) => {
    const run: DemoRun = runs.get(runId) ?? { runId, databases: new Map() };
    runs.set(runId, run);
    return run;
  };
  const admin = createKafka(config, "demo-admin").admin();
  await admin.connect();
  try {
    for (const topic of await admin.listTopics()) {
      const runId = runIdOf(prefix, topic, /()/);
      if (runId) runOf(runId).topic = topic;
    }
    for (const { groupId } of (await admin.listGroups()).groups) {
      const runId = runIdOf(prefix, groupId, /()/);
      if (runId) runOf(runId).group = groupId;
    }
  } finally {
    await admin.disconnect();
  }
  for (const subject of await registrySubjects(config)) {
    const runId = runIdOf(prefix, subject, /-value/);
    if (runId) runOf(runId).subject = subject;
  }
  const servers = new Set([...config.TALLY_PG_SHARDS, config.TALLY_PG_VIEWS].map(maintenanceUrl));
  for (const server of servers) {
    const pool = createPool(config, server, "tally-demo", 1);
    try {
      const { rows } = await pool.query<{ datname: string }>(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
        [`${prefix}_`],
      );
      for (const { datname } of rows) {
        const runId = runIdOf(prefix, datname, /_(?:shard_\d+|views)/);
        if (!runId) continue;
        const databases = runOf(runId).databases;
        databases.set(server, [...(databases.get(server) ?? []), datname]);
      }
    } finally {
      await pool.end();
    }
  }
  const byId = new Map([...runs.values()].map((r) => [r.runId, r]));
  return newestFirst(byId.keys()).map((id) => byId.get(id)!);
}

/**
 * Removes every run of `prefix` but the newest `keep`: its databases first (a database still in
 * use, e.g. by a `bin/tally` someone points at it, is not forced: that run is kept whole and said
 * so), then its topic, consumer group and schema subject. Each removal is announced on a line.
 */
export async function removeDemoRuns(
  config: Config,
  prefix: string,
  keep: number,
  log: (line: string) => void = console.log,
): Promise<{ removed: string[]; kept: string[] }> {
  const runs = await listDemoRuns(config, prefix);
  const old = runs.slice(keep);
  const removed: string[] = [];
  if (old.length === 0) return { removed, kept: runs.map((r) => r.runId) };
  const newest = runs.slice(0, keep).map((r) => `${prefix}_${r.runId}`);
  log(
    `demo: removing ${old.length} earlier demo run(s) of ${prefix}, keeping the newest ${keep}` +
      (newest.length > 0 ? ` (${newest.join(", ")})` : ""),
  );
  for (const run of old) {
    const what: string[] = [];
    try {
      for (const [server, databases] of run.databases) {
        const pool = createPool(config, server, "tally-demo", 1);
        try {
          for (const database of databases) {
            await pool.query(`DROP DATABASE IF EXISTS "${database}"`);
            what.push(`database ${database}`);
          }
        } finally {
          await pool.end();
        }
      }
    } catch (error) {
      log(
        `demo: kept earlier run ${prefix}_${run.runId}: a database could not be dropped (${(error as Error).message})`,
      );
      continue;
    }
    const admin = createKafka(config, "demo-admin").admin();
    await admin.connect();
    try {
      if (run.topic) {
        await admin.deleteTopics({ topics: [run.topic] });
        what.push(`topic ${run.topic}`);
      }
      if (run.group) {
        // An empty group's offsets; nothing to do when the broker already forgot it.
        await admin.deleteGroups([run.group]).catch(() => {});
        what.push(`group ${run.group}`);
      }
    } finally {
      await admin.disconnect();
    }
    if (run.subject && (await deleteSubject(config, run.subject))) what.push(`schema subject ${run.subject}`);
    log(`demo: removed earlier run ${prefix}_${run.runId}: ${what.join(", ")}`);
    removed.push(run.runId);
  }
  return { removed, kept: runs.filter((r) => !removed.includes(r.runId)).map((r) => r.runId) };
}

function registryHeaders(config: Config): Record<string, string> {
  const username = config.TALLY_SCHEMA_REGISTRY_USERNAME;
  if (!username) return {};
  const token = Buffer.from(`${username}:${config.TALLY_SCHEMA_REGISTRY_PASSWORD}`).toString("base64");
  return { authorization: `Basic ${token}` };
}

async function registrySubjects(config: Config): Promise<string[]> {
  const response = await fetch(`${config.TALLY_SCHEMA_REGISTRY_URL}/subjects`, {
    headers: registryHeaders(config),
  });
  if (!response.ok)
    throw new Error(`registry: GET ${config.TALLY_SCHEMA_REGISTRY_URL}/subjects answered ${response.status}`);
  return (await response.json()) as string[];
}

/** Deletes a subject (soft, then permanently, as the Confluent API asks); false when the registry refused. */
async function deleteSubject(config: Config, subject: string): Promise<boolean> {
  const url = `${config.TALLY_SCHEMA_REGISTRY_URL}/subjects/${encodeURIComponent(subject)}`;
  const soft = await fetch(url, { method: "DELETE", headers: registryHeaders(config) });
  if (!soft.ok) return false;
  const hard = await fetch(`${url}?permanent=true`, { method: "DELETE", headers: registryHeaders(config) });
  return hard.ok;
}
