// The one configuration module: every setting comes from a TALLY_* variable, is validated at start,
// and a bad value stops the command with a message naming the variable and what it expected.
// Secrets (the passwords, and any password inside a URL) never appear in a message: a secret's value
// and a URL setting's value are not echoed, and `tally env` masks them (see maskUrlPassword).
import { readFileSync } from "node:fs";
import { z } from "zod";
import {
  ConfigError,
  type KafkaSettings,
  type RegistrySettings,
  type RetrySettings,
  type TopicSettings,
} from "./connection-settings.ts";

export { ConfigError };

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

export function databaseNameOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ""));
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

/**
 * The parameters node-postgres reads from a URL's query to set up TLS, overriding the `ssl` option
 * it is given: TLS belongs to TALLY_PG_SSL_MODE and TALLY_PG_SSL_CA_FILE, so a URL must not set
 * them (crossCheck), and pg.ts removes them before a URL reaches node-postgres.
 */
export const pgUrlTlsParameters = [
  "sslmode",
  "ssl",
  "sslrootcert",
  "sslcert",
  "sslkey",
  "sslnegotiation",
  "uselibpqcompat",
] as const;

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

type Specs = ReturnType<typeof specs>;
export type Config = { [K in keyof Specs]: z.output<Specs[K]["schema"]> };

const isSecret = (spec: object): boolean => "secret" in spec && spec.secret === true;
/** A URL setting may hold a password whose characters cannot be told apart from the URL's: never echoed. */
const isUrl = (spec: object): boolean => "url" in spec && spec.url === true;

/** How a bad value is shown in a ConfigError: only when it cannot hold a secret. */
function shownValue(spec: object, raw: string): string {
  if (isSecret(spec)) return "(hidden)";
  if (isUrl(spec)) return "(not shown: a URL may hold a password)";
  return JSON.stringify(raw);
}

/** A zod issue in words; an issue of one URL of a list says which (counted from 1), never its text. */
function issueText(spec: object, issue: z.core.$ZodIssue): string {
  const [index] = issue.path;
  return isUrl(spec) && typeof index === "number" ? `URL ${index + 1}: ${issue.message}` : issue.message;
}

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
      const { issues } = parsed.error;
      const hints = new Set(
        issues.map((issue) => (issue.code === "custom" ? issue.params?.hint : undefined)),
      );
      hints.delete(undefined);
      const why = [...issues.map((issue) => issueText(spec, issue)), ...hints].join("; ");
      problems.push(`${name}=${shownValue(spec, raw)} is invalid: ${why}`);
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
  if (config.TALLY_DLQ_TOPIC === config.TALLY_TOPIC) {
    throw new ConfigError("TALLY_DLQ_TOPIC must not be TALLY_TOPIC: rejections would be consumed again");
  }
  if (config.TALLY_PG_SHARDS.includes(config.TALLY_PG_VIEWS)) {
    throw new ConfigError("TALLY_PG_VIEWS must not be one of TALLY_PG_SHARDS");
  }
  const tlsProblems = pgUrlTlsProblems(config);
  if (tlsProblems.length > 0) throw new ConfigError(`bad configuration:\n  ${tlsProblems.join("\n  ")}`);
}

// Values of TLS parameters that are keywords, not paths or secrets, so a message may quote them.
const tlsKeywords = new Set(
  ["disable", "allow", "prefer", "require", "verify-ca", "verify-full", "no-verify"].concat(
    ["true", "false", "0", "1", "postgres", "direct"], // ssl=, uselibpqcompat=, sslnegotiation=
  ),
);

/**
 * A URL whose query sets TLS would override TALLY_PG_SSL_MODE inside node-postgres (sslmode=disable
 * turning verify-full off): a conflict is an error. The one parameter allowed is an sslmode that
 * says what TALLY_PG_SSL_MODE says.
 */
function pgUrlTlsProblems(config: Config): string[] {
  const urls: [string, string][] = [
    ...config.TALLY_PG_SHARDS.map((url, k): [string, string] => [`TALLY_PG_SHARDS URL ${k + 1}`, url]),
    ["TALLY_PG_VIEWS", config.TALLY_PG_VIEWS],
  ];
  const mode = config.TALLY_PG_SSL_MODE;
  const problems: string[] = [];
  for (const [where, url] of urls) {
    const query = new URL(url).searchParams;
    for (const key of pgUrlTlsParameters) {
      const values = query.getAll(key);
      if (values.length === 0 || (key === "sslmode" && values.every((v) => v === mode))) continue;
      const shown = values.every((v) => tlsKeywords.has(v)) ? `${key}=${values.join(",")}` : key;
      problems.push(
        `${where} sets ${shown} in its query, which would override TALLY_PG_SSL_MODE=${mode}: ` +
          "PostgreSQL TLS is set by TALLY_PG_SSL_MODE and TALLY_PG_SSL_CA_FILE; remove it from the URL",
      );
    }
  }
  return problems;
}

/** The effective settings as `export NAME='value'` lines, secrets masked. */
export function configAsExports(config: Config, env: NodeJS.ProcessEnv = process.env): string[] {
  const all = specs(env);
  return Object.keys(all).map((name) => {
    const spec = all[name as keyof Specs];
    const value = config[name as keyof Config];
    const values = Array.isArray(value) ? value : [String(value)];
    // A URL setting is masked value by value, so that a password with a space or a quote is masked
    // whole; anything else goes through the free-text masking in case a URL was put there.
    const masked = values.map((v) => (isUrl(spec) ? maskOneUrl(v) : maskUrlPassword(v))).join(",");
    const shown = isSecret(spec) && masked !== "" ? mask : masked;
    return `export ${name}='${shown.replaceAll("'", "'\\''")}'`;
  });
}

const mask = "********";
const urlInTextPattern = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"<>]*/g;

/** Masks the password of every URL in a text (a log line, an error message): see maskOneUrl. */
export function maskUrlPassword(text: string): string {
  return text.replace(urlInTextPattern, maskOneUrl);
}

/**
 * Masks a URL's password whatever its characters. The password runs from the user's ":" to the
 * LAST "@" of the URL, not the first, since a raw "@" may be part of it; so an "@" elsewhere (in a
 * query) can hide more than the password, never less. A `password` query parameter hides the rest
 * of the query, since a raw "&" may be part of it too.
 */
export function maskOneUrl(url: string): string {
  const afterScheme = url.indexOf("://") + 3;
  const at = url.lastIndexOf("@");
  const colon = url.indexOf(":", afterScheme);
  const userMasked =
    at > afterScheme && colon >= 0 && colon < at ? `${url.slice(0, colon + 1)}${mask}${url.slice(at)}` : url;
  const queryStart = userMasked.indexOf("?", afterScheme);
  if (queryStart < 0) return userMasked;
  const parameters = userMasked.slice(queryStart + 1).split("&");
  const passwordAt = parameters.findIndex(isPasswordParameter);
  if (passwordAt < 0) return userMasked;
  const kept = [...parameters.slice(0, passwordAt), `password=${mask}`];
  return `${userMasked.slice(0, queryStart + 1)}${kept.join("&")}`;
}

/** node-postgres reads the query decoded, so `pass%77ord=` is a password too. */
function isPasswordParameter(parameter: string): boolean {
  const key = parameter.split("=")[0]!.replaceAll("+", " ");
  let decoded = key;
  try {
    decoded = decodeURIComponent(key);
  } catch {
    // a malformed escape: compare it as written
  }
  return decoded.trim().toLowerCase() === "password";
}

// The narrow settings the producer and the clients take are parts of the whole configuration.
type IsPartOf<Part, Whole extends Part> = Whole;
export type ConfigCoversClients = IsPartOf<
  KafkaSettings & RegistrySettings & RetrySettings & TopicSettings,
  Config
>;
