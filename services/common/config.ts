// The one configuration module: every setting comes from a TALLY_* variable, is validated at start,
// and a bad value stops the command with a message naming the variable and what it expected.
// Secrets (the passwords, and any password inside a URL) never appear in a message: a secret's value
// and a URL setting's value are not echoed, and `tally env` masks them (see maskUrlPassword).
import { readFileSync } from "node:fs";
import type { z } from "zod";
import { type Config, isSecret, isUrl, type Specs, specs, stackVariables } from "./config-specs.ts";
import {
  ConfigError,
  type KafkaSettings,
  type RegistrySettings,
  type RetrySettings,
  type TopicSettings,
} from "./connection-settings.ts";

export type { Config };
export { ConfigError };

export function databaseNameOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ""));
}

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
