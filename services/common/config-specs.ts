// The table of TALLY_* settings (config.ts reads it): each variable's schema, its default, and whether
// its value is a secret or a URL that may hold one; with the schemas of PostgreSQL and registry URLs.
import { z } from "zod";

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

// A "," always separates the URLs of TALLY_PG_SHARDS, so a "," in a password must be written %2C;
// a raw one splits the URL in two, and the error says so without showing either half.
const specialInPasswordHint = 'write "/", "?", "#" and "@" in a password as %2F, %3F, %23 and %40';
const commaInPasswordHint = `${specialInPasswordHint}; a "," separates the URLs, so write one in a password as %2C`;

/**
 * What is wrong with a PostgreSQL URL, in words that never quote any part of it (null if nothing),
 * and whether the way a password is written may be the cause.
 */
function postgresUrlProblem(text: string): { problem: string; passwordMayCause: boolean } | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { problem: "not a URL", passwordMayCause: true };
  }
  if (!/^postgres(ql)?:$/.test(url.protocol))
    return { problem: "not a postgres:// URL", passwordMayCause: false };
  // A raw "/", "?" or "#" in a password ends the host part early: the rest of the password would be
  // read as a path, a query or a fragment, and a "#" fragment is never meaningful to PostgreSQL.
  if (text.includes("#") || hasAtAfterHost(text)) {
    return { problem: 'an "@" or a "#" after the host', passwordMayCause: true };
  }
  const database = databaseNameOrNull(url);
  if (database === null || !databaseNamePattern.test(database)) {
    return { problem: "a database name of [a-z0-9_] after the host", passwordMayCause: false };
  }
  return null;
}

function hasAtAfterHost(text: string): boolean {
  const afterScheme = text.slice(text.indexOf("//") + 2);
  const hostEnd = afterScheme.search(/[/?#\\]/);
  return hostEnd >= 0 && afterScheme.indexOf("@", hostEnd) >= 0;
}

/** A list's hint covers the "," too; it is given once after the problems, not once per URL. */
const postgresUrl = (inList: boolean) =>
  z.string().superRefine((text, context) => {
    const found = postgresUrlProblem(text);
    if (found === null) return;
    const hint = found.passwordMayCause ? (inList ? commaInPasswordHint : specialInPasswordHint) : undefined;
    context.addIssue({ code: "custom", message: found.problem, params: { hint } });
  });

function databaseNameOrNull(url: URL): string | null {
  try {
    return decodeURIComponent(url.pathname.replace(/^\//, ""));
  } catch {
    return null; // a malformed %-escape
  }
}

// Credentials in the registry URL would be echoed by fetch's own errors: they have settings of their own.
const registryUrl = z.string().superRefine((text, context) => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    context.addIssue({ code: "custom", message: "a URL" });
    return;
  }
  if (url.username !== "" || url.password !== "") {
    context.addIssue({
      code: "custom",
      message: "a URL without credentials: give them as TALLY_SCHEMA_REGISTRY_USERNAME and _PASSWORD",
    });
  }
});

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const controlCharacterPattern = /[\u0000-\u001f\u007f]/;
// SASLprep (SCRAM) prohibits control characters, and a line break in a secret is a file of two lines.
const secretText = z
  .string()
  .refine((text) => !controlCharacterPattern.test(text), "no control characters (a line break inside?)");

function localPgUrl(env: NodeJS.ProcessEnv, database: string): string {
  const port = env.TALLY_LOCAL_PG_PORT ?? "5432";
  return `postgres://postgres@127.0.0.1:${port}/${database}`;
}

/** Read by `make up` (infra/stack.sh), not by the tally command; allowed in its environment. */
export const stackVariables = new Set(["TALLY_LOCAL_PG_PORT", "TALLY_STACK_PG", "TALLY_JAVA21_HOME"]);

/** Each entry: variable, schema, default (a function of the environment), whether it is a secret. */
export function specs(env: NodeJS.ProcessEnv) {
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
    TALLY_KAFKA_SASL_PASSWORD: { schema: secretText, fallback: "", secret: true },
    TALLY_SCHEMA_REGISTRY_URL: {
      schema: registryUrl,
      fallback: "http://127.0.0.1:18081/apis/ccompat/v7",
      url: true,
    },
    TALLY_SCHEMA_REGISTRY_USERNAME: { schema: z.string(), fallback: "" },
    TALLY_SCHEMA_REGISTRY_PASSWORD: { schema: secretText, fallback: "", secret: true },
    TALLY_TOPIC: { schema: z.string().regex(kafkaTopicPattern, "a Kafka topic name"), fallback: "transfers" },
    TALLY_PARTITIONS: { schema: positiveInt(1, 1024), fallback: "6" },
    // The dead-letter topic `tally dlq-relay` publishes every rejection to; empty = off.
    TALLY_DLQ_TOPIC: {
      schema: z.union([
        z.literal(""),
        z.string().regex(kafkaTopicPattern, "a Kafka topic name, or empty (off)"),
      ]),
      fallback: "",
    },
    TALLY_DLQ_POLL_MS: { schema: positiveInt(10, 600_000), fallback: "1000" },
    TALLY_REPLICATION_FACTOR: { schema: positiveInt(1, 16), fallback: "1" },
    TALLY_GROUP: { schema: z.string().regex(kafkaTopicPattern, "a group id"), fallback: "tally-applier" },
    TALLY_PG_SHARDS: {
      schema: z
        .string()
        .transform((s) => s.split(",").map((u) => u.trim()))
        .pipe(z.array(postgresUrl(true)).min(1, "at least one URL").max(64, "at most 64 URLs")),
      fallback: [0, 1].map((k) => localPgUrl(env, `tally_shard_${k}`)).join(","),
      url: true,
    },
    TALLY_PG_VIEWS: { schema: postgresUrl(false), fallback: localPgUrl(env, "tally_views"), url: true },
    TALLY_PG_SSL_MODE: { schema: z.enum(["disable", "require", "verify-full"]), fallback: "disable" },
    TALLY_PG_SSL_CA_FILE: { schema: z.string(), fallback: "" },
    TALLY_PG_POOL_MAX: { schema: positiveInt(1, 100), fallback: "4" },
    TALLY_TOKEN_CACHE_MAX: { schema: positiveInt(1_000, 100_000_000), fallback: "200000" },
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
    TALLY_PROJECT_REST_PERCENT: { schema: positiveInt(0, 1_000), fallback: "100" },
    TALLY_SHUTDOWN_MS_MAX: { schema: positiveInt(100, 600_000), fallback: "20000" },
    TALLY_KAFKA_SESSION_TIMEOUT_MS: { schema: positiveInt(6_000, 300_000), fallback: "30000" },
    TALLY_METRICS_PORT: { schema: positiveInt(0, 65_535), fallback: "0" },
    TALLY_METRICS_HOST: { schema: z.string().min(1), fallback: "127.0.0.1" },
    TALLY_LOG_LEVEL: {
      schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
      fallback: "info",
    },
  } satisfies Record<string, { schema: z.ZodType; fallback: string; secret?: boolean; url?: boolean }>;
}

export type Specs = ReturnType<typeof specs>;
export type Config = { [K in keyof Specs]: z.output<Specs[K]["schema"]> };

export const isSecret = (spec: object): boolean => "secret" in spec && spec.secret === true;
/** A URL setting may hold a password whose characters cannot be told apart from the URL's: never echoed. */
export const isUrl = (spec: object): boolean => "url" in spec && spec.url === true;
