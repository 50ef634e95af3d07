// The one configuration module: every setting comes from a TALLY_* variable, is validated at start,
// and a bad value stops the command with a message naming the variable and what it expected.
import { readFileSync } from "node:fs";
import { z } from "zod";

export class ConfigError extends Error {
  override name = "ConfigError";
}

const kafkaTopicPattern = /^[A-Za-z0-9._-]{1,249}$/;
// Database names go into CREATE DATABASE, so they are held to plain identifiers.
const databaseNamePattern = /^[a-z_][a-z0-9_]{0,62}$/;

const positiveInt = (min: number, max: number) =>
  z.coerce
    .number({ error: `a whole number from ${min} to ${max}` })
    .int(`a whole number from ${min} to ${max}`)
    .min(min, `a whole number from ${min} to ${max}`)
    .max(max, `a whole number from ${min} to ${max}`);
const boolFlag = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

const postgresUrl = z
  .string()
  .url()
  .refine((u) => /^postgres(ql)?:$/.test(new URL(u).protocol), "a postgres:// URL")
  .refine((u) => databaseNamePattern.test(databaseNameOf(u)), "a database name of [a-z0-9_] after the host");

export function databaseNameOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ""));
}

function localPgUrl(env: NodeJS.ProcessEnv, database: string): string {
  const port = env.TALLY_LOCAL_PG_PORT ?? "5432";
  return `postgres://postgres@127.0.0.1:${port}/${database}`;
}

/** Read by `make up` (infra/stack.sh), not by the tally command; allowed in its environment. */
const stackVariables = new Set(["TALLY_LOCAL_PG_PORT", "TALLY_STACK_PG", "TALLY_JAVA21_HOME"]);

/** Each entry: variable, schema, default (a function of the environment), whether it is a secret. */
function specs(env: NodeJS.ProcessEnv) {
  return {
    TALLY_KAFKA_BROKERS: {
      schema: z
        .string()
        .transform((s) => s.split(",").map((b) => b.trim()))
        .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, "host:port")).min(1)),
      fallback: "127.0.0.1:19092",
    },
    TALLY_KAFKA_CLIENT_ID: { schema: z.string().min(1).max(100), fallback: "tally" },
    TALLY_KAFKA_SSL: { schema: boolFlag, fallback: "false" },
    TALLY_KAFKA_SSL_CA_FILE: { schema: z.string(), fallback: "" },
    TALLY_KAFKA_SASL_MECHANISM: {
      schema: z.enum(["", "plain", "scram-sha-256", "scram-sha-512"]),
      fallback: "",
    },
    TALLY_KAFKA_SASL_USERNAME: { schema: z.string(), fallback: "" },
    TALLY_KAFKA_SASL_PASSWORD: { schema: z.string(), fallback: "", secret: true },
    TALLY_SCHEMA_REGISTRY_URL: {
      schema: z.string().url(),
      fallback: "http://127.0.0.1:18081/apis/ccompat/v7",
    },
    TALLY_SCHEMA_REGISTRY_USERNAME: { schema: z.string(), fallback: "" },
    TALLY_SCHEMA_REGISTRY_PASSWORD: { schema: z.string(), fallback: "", secret: true },
    TALLY_TOPIC: { schema: z.string().regex(kafkaTopicPattern, "a Kafka topic name"), fallback: "transfers" },
    TALLY_PARTITIONS: { schema: positiveInt(1, 1024), fallback: "6" },
    TALLY_REPLICATION_FACTOR: { schema: positiveInt(1, 16), fallback: "1" },
    TALLY_GROUP: { schema: z.string().regex(kafkaTopicPattern, "a group id"), fallback: "tally-applier" },
    TALLY_PG_SHARDS: {
      schema: z
        .string()
        .transform((s) => s.split(",").map((u) => u.trim()))
        .pipe(z.array(postgresUrl).min(1).max(64)),
      fallback: [0, 1].map((k) => localPgUrl(env, `tally_shard_${k}`)).join(","),
    },
    TALLY_PG_VIEWS: { schema: postgresUrl, fallback: localPgUrl(env, "tally_views") },
    TALLY_PG_SSL_MODE: { schema: z.enum(["disable", "require", "verify-full"]), fallback: "disable" },
    TALLY_PG_SSL_CA_FILE: { schema: z.string(), fallback: "" },
    TALLY_PG_POOL_MAX: { schema: positiveInt(1, 100), fallback: "4" },
    TALLY_BATCH_EVENTS_MAX: { schema: positiveInt(1, 100_000), fallback: "5000" },
    // 4 MiB a fetch (1 MiB a partition): as fast as 24 MiB here, since applying, not fetching, is the
    // bottleneck, and a third of the heap (the fetched records are decoded into objects all at once).
    TALLY_FETCH_PARTITION_BYTES_MAX: { schema: positiveInt(1024, 256 << 20), fallback: String(1 << 20) },
    TALLY_FETCH_BYTES_MAX: { schema: positiveInt(1024, 1 << 30), fallback: String(4 << 20) },
    TALLY_RETRY_ATTEMPTS_MAX: { schema: positiveInt(1, 100_000), fallback: "120" },
    TALLY_RETRY_BACKOFF_MS_MAX: { schema: positiveInt(10, 600_000), fallback: "5000" },
    TALLY_DAYS_AHEAD: { schema: positiveInt(0, 366), fallback: "3" },
    TALLY_WINDOW_PAST_DAYS: { schema: positiveInt(0, 36_600), fallback: "400" },
    TALLY_WINDOW_FUTURE_DAYS: { schema: positiveInt(0, 366), fallback: "2" },
    TALLY_PROJECT_POLL_MS: { schema: positiveInt(10, 60_000), fallback: "200" },
    TALLY_PROJECT_DELTAS_MAX: { schema: positiveInt(100, 1_000_000), fallback: "50000" },
    TALLY_SHUTDOWN_MS_MAX: { schema: positiveInt(100, 600_000), fallback: "20000" },
    TALLY_KAFKA_SESSION_TIMEOUT_MS: { schema: positiveInt(6_000, 300_000), fallback: "30000" },
    TALLY_METRICS_PORT: { schema: positiveInt(0, 65_535), fallback: "0" },
    TALLY_METRICS_HOST: { schema: z.string().min(1), fallback: "127.0.0.1" },
    TALLY_LOG_LEVEL: {
      schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
      fallback: "info",
    },
  } satisfies Record<string, { schema: z.ZodType; fallback: string; secret?: boolean }>;
}

type Specs = ReturnType<typeof specs>;
export type Config = { [K in keyof Specs]: z.output<Specs[K]["schema"]> };

const isSecret = (spec: object): boolean => "secret" in spec && spec.secret === true;

/** A secret may come from a file instead (`<NAME>_FILE`), as orchestrators mount secrets. */
export const secretFileSuffix = "_FILE";

/** The secret's value from `<name>_FILE` if that is set; a problem is recorded, never the value. */
function secretFromFile(env: NodeJS.ProcessEnv, name: string, problems: string[]): string | undefined {
  const fileVariable = `${name}${secretFileSuffix}`;
  const path = env[fileVariable];
  if (path === undefined) return undefined;
  if (env[name] !== undefined) {
    problems.push(`${name} and ${fileVariable} are both set: give the secret one way`);
    return undefined;
  }
  try {
    // One trailing newline is what `echo` and most secret files add; it is not part of the secret.
    const text = readFileSync(path, "utf8").replace(/\r?\n$/, "");
    if (text === "") problems.push(`${fileVariable}=${JSON.stringify(path)} is empty`);
    return text;
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? String(error);
    problems.push(`${fileVariable}=${JSON.stringify(path)} cannot be read (${why})`);
    return undefined;
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const all = specs(env);
  const config: Record<string, unknown> = {};
  const problems: string[] = [];
  const secretNames = new Set(Object.keys(all).filter((name) => isSecret(all[name as keyof Specs])));
  for (const [name, spec] of Object.entries(all)) {
    const fromFile = secretNames.has(name) ? secretFromFile(env, name, problems) : undefined;
    const raw = fromFile ?? env[name] ?? spec.fallback;
    const parsed = (spec.schema as z.ZodType).safeParse(raw);
    if (parsed.success) {
      config[name] = parsed.data;
    } else {
      const why = parsed.error.issues.map((i) => i.message).join("; ");
      const shown = isSecret(spec) ? "(hidden)" : JSON.stringify(raw);
      problems.push(`${name}=${shown} is invalid: ${why}`);
    }
  }
  for (const name of Object.keys(env)) {
    const secretFile =
      name.endsWith(secretFileSuffix) && secretNames.has(name.slice(0, -secretFileSuffix.length));
    if (
      name.startsWith("TALLY_") &&
      !(name in all) &&
      !secretFile &&
      !stackVariables.has(name) &&
      !name.startsWith("TALLY_TEST_")
    ) {
      problems.push(`${name} is not a Tally setting (see README, "Configuration")`);
    }
  }
  if (problems.length > 0) throw new ConfigError(`bad configuration:\n  ${problems.join("\n  ")}`);
  const typed = config as Config;
  crossCheck(typed);
  return typed;
}

function crossCheck(config: Config): void {
  const sasl = config.TALLY_KAFKA_SASL_MECHANISM !== "";
  if (sasl && (config.TALLY_KAFKA_SASL_USERNAME === "" || config.TALLY_KAFKA_SASL_PASSWORD === "")) {
    throw new ConfigError(
      "TALLY_KAFKA_SASL_MECHANISM is set: TALLY_KAFKA_SASL_USERNAME and _PASSWORD are needed",
    );
  }
  if (new Set(config.TALLY_PG_SHARDS).size !== config.TALLY_PG_SHARDS.length) {
    throw new ConfigError("TALLY_PG_SHARDS lists the same database twice");
  }
  if (config.TALLY_PG_SHARDS.includes(config.TALLY_PG_VIEWS)) {
    throw new ConfigError("TALLY_PG_VIEWS must not be one of TALLY_PG_SHARDS");
  }
}

/** The effective settings as `export NAME='value'` lines, secrets masked. */
export function configAsExports(config: Config, env: NodeJS.ProcessEnv = process.env): string[] {
  const all = specs(env);
  return Object.keys(all).map((name) => {
    const spec = all[name as keyof Specs];
    const value = config[name as keyof Config];
    const text = Array.isArray(value) ? value.join(",") : String(value);
    const shown = isSecret(spec) && text !== "" ? "********" : maskUrlPassword(text);
    return `export ${name}='${shown.replaceAll("'", "'\\''")}'`;
  });
}

/** Masks the password part of every URL in a comma-separated list. */
export function maskUrlPassword(text: string): string {
  return text.replace(/(\w+:\/\/[^:/@\s,]+:)[^@\s,]*@/g, "$1********@");
}
