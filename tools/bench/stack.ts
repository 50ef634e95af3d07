// Every bench case runs on its own topic, consumer group and databases, named uniquely on the
// servers the base configuration points at, and removed afterwards unless the run keeps them.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { type Config, databaseNameOf, loadConfig } from "../../services/common/config.ts";
import { createKafka } from "../../services/common/kafka.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { topics } from "../../services/topics/topics.ts";

export type BenchStack = {
  name: string;
  config: Config;
  /** the TALLY_* settings that make a child process use this stack */
  env: Record<string, string>;
};

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A unique topic, group, shard databases and views database beside the base configuration's. */
export function benchStack(base: Config, label: string): BenchStack {
  const name = `bench_${label}_${randomBytes(3).toString("hex")}`;
  const env: Record<string, string> = {
    TALLY_TOPIC: name,
    TALLY_GROUP: `${name}-applier`,
    TALLY_PG_SHARDS: base.TALLY_PG_SHARDS.map((url, k) => withDatabase(url, `${name}_shard_${k}`)).join(","),
    TALLY_PG_VIEWS: withDatabase(base.TALLY_PG_VIEWS, `${name}_views`),
  };
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[0].startsWith("TALLY_") && entry[1] !== undefined,
    ),
  );
  return { name, config: loadConfig({ ...inherited, ...env }), env };
}

/** Databases, tables, day partitions, the topic and the schema: what `make demo` sets up. */
export async function setUpStack(stack: BenchStack): Promise<void> {
  await migrate(stack.config);
  await topics(stack.config);
}

/** Removes the topic, the group and the databases; each step on its own, so one failure spares the rest. */
export async function dropStack(stack: BenchStack): Promise<string[]> {
  const problems: string[] = [];
  const { config } = stack;
  const admin = createKafka(config, "bench-admin").admin();
  try {
    await admin.connect();
    if ((await admin.listTopics()).includes(config.TALLY_TOPIC))
      await admin.deleteTopics({ topics: [config.TALLY_TOPIC] });
    await admin.deleteGroups([config.TALLY_GROUP]).catch(() => {}); // absent when nothing consumed
  } catch (error) {
    problems.push(`topic ${config.TALLY_TOPIC}: ${(error as Error).message}`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
  for (const url of [...config.TALLY_PG_SHARDS, config.TALLY_PG_VIEWS]) {
    try {
      await dropDatabase(url);
    } catch (error) {
      problems.push(`database ${databaseNameOf(url)}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/** DROP DATABASE ... WITH (FORCE), from the server's maintenance database. */
export async function dropDatabase(url: string): Promise<void> {
  const name = databaseNameOf(url);
  if (!/^bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing to drop ${name}: not a bench database`);
  const client = new pg.Client({ connectionString: withDatabase(url, "postgres") });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** A database of its own for the ceiling and naive cases, on the first shard's server. */
export function scratchDatabaseUrl(base: Config, label: string): string {
  return withDatabase(base.TALLY_PG_SHARDS[0]!, `bench_${label}_${randomBytes(3).toString("hex")}`);
}
