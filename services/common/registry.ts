// The schema registry's Confluent-compatible API. Writer schemas are fetched by id over node:http so
// that every answer is sorted precisely: Confluent's "schema not found" (error_code 40403) is an
// unknown schema (a rejection); any other 404, a 5xx, garbage, a timeout or a refused connection
// is transient (retry, never move on, never cache); a schema Tally cannot parse is incompatible (a
// rejection). Registration stays with @kafkajs/confluent-schema-registry.
import { SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import type avro from "avsc";
import { avroForSchemaOptions, avroTypeOf, transferEventSchemaText } from "./avro.ts";
import type { RegistrySettings, TopicSettings } from "./connection-settings.ts";
import { TransientError } from "./retry.ts";

/** Where and how to ask the registry; `timeoutMs` bounds one request, answer included. */
export type RegistryEndpoint = { baseUrl: string; headers: Record<string, string>; timeoutMs: number };

/** A schema GET on a healthy registry takes milliseconds; 5 s also keeps a drain short. */
export const registryTimeoutMs = 5_000;
/** Confluent's error code for "schema not found" on /schemas/ids/<id> (Apicurio answers it too). */
const schemaNotFoundCode = 40403;

export function registryEndpointOf(config: RegistrySettings): RegistryEndpoint {
  return {
    baseUrl: config.TALLY_SCHEMA_REGISTRY_URL.replace(/\/+$/, ""),
    headers: authHeader(config),
    timeoutMs: registryTimeoutMs,
  };
}

/** What the registry holds under a schema id: its text and type, or nothing (40403). */
export type SchemaAnswer = { found: true; schema: string; schemaType: string } | { found: false };

/** Anything that answers schema ids: the registry client below, or a test's stub. */
export type WriterSchemaSource = { schemaById(schemaId: number): Promise<SchemaAnswer> };

/** Registers a schema under a subject (or finds it there) and nothing else; see registerSchema. */
export type Register = (
  schema: { type?: SchemaType; schema: string },
  options: { subject: string },
) => Promise<{ id: number }>;

/**
 * The library client (encode, decode, getSchema) with Tally's register in place of its own, plus
 * schemaById for decoding. The library's register compares the subject's compatibility with a
 * level of its own (BACKWARD unless told) and refuses to register when they differ, and it sets
 * that level on a first registration: every producer would have set the subject's compatibility.
 */
export type Registry = Omit<SchemaRegistry, "register"> & WriterSchemaSource & { register: Register };

export function createRegistry(config: RegistrySettings): Registry {
  const username = config.TALLY_SCHEMA_REGISTRY_USERNAME;
  const client = new SchemaRegistry(
    {
      host: config.TALLY_SCHEMA_REGISTRY_URL,
      // Tally's own backoff decides how long to keep trying; the client's retries would hide it.
      retry: { retries: 0 },
      ...(username ? { auth: { username, password: config.TALLY_SCHEMA_REGISTRY_PASSWORD } } : {}),
    },
    // A getter, so that every schema the client parses gets options of its own (see avro.ts).
    {
      get [SchemaType.AVRO]() {
        return avroForSchemaOptions();
      },
    },
  );
  const endpoint = registryEndpointOf(config);
  const register: Register = async (schema, { subject }) => ({
    id: await registerSchema(endpoint, subject, schema.schema, schema.type ?? SchemaType.AVRO),
  });
  return Object.assign(client, {
    schemaById: (schemaId: number) => schemaById(endpoint, schemaId),
    register,
  }) as Registry;
}

/** A registry's refusal with its Confluent error code, e.g. 409 for a schema the subject's level refuses. */
export class RegistryAnswerError extends Error {
  override name = "RegistryAnswerError";
  readonly status: number;
  readonly errorCode: number | null;
  constructor(message: string, status: number, errorCode: number | null) {
    super(message);
    this.status = status;
    this.errorCode = errorCode;
  }
}

/**
 * POST <base>/subjects/<subject>/versions: the schema's id under the subject, registered if new.
 * The registry applies the subject's compatibility; this never reads or sets it.
 */
export async function registerSchema(
  endpoint: RegistryEndpoint,
  subject: string,
  schema: string,
  schemaType: string = SchemaType.AVRO,
): Promise<number> {
  const url = `${endpoint.baseUrl}/subjects/${encodeURIComponent(subject)}/versions`;
  // Confluent's default type is AVRO, and older registries refuse the field for it.
  const body = schemaType === SchemaType.AVRO ? { schema } : { schema, schemaType };
  const answer = await request(endpoint, url, "POST", body);
  const id = parseJsonObject(answer.text)?.id;
  if (answer.status === 200 && typeof id === "number") return id;
  throw registryError("POST", url, answer);
}

/** GET <base>/schemas/ids/<id>, sorted: found, not found (40403), or TransientError for the rest. */
export async function schemaById(endpoint: RegistryEndpoint, schemaId: number): Promise<SchemaAnswer> {
  const url = `${endpoint.baseUrl}/schemas/ids/${schemaId}`;
  const answer = await request(endpoint, url, "GET");
  return classifySchemaAnswer(url, answer.status, answer.text);
}

/** The pure half of schemaById: an HTTP answer to GET <base>/schemas/ids/<id>, sorted. */
export function classifySchemaAnswer(url: string, status: number, body: string): SchemaAnswer {
  const parsed = parseJsonObject(body);
  if (status === 200 && typeof parsed?.schema === "string") {
    const schemaType = typeof parsed.schemaType === "string" ? parsed.schemaType : "AVRO";
    return { found: true, schema: parsed.schema, schemaType };
  }
  if (status === 404 && parsed?.error_code === schemaNotFoundCode) return { found: false };
  // Anything else is not the registry saying "no such schema": a wrong base URL (a 404 without
  // 40403), a proxy's page, an overloaded or restarting registry, missing credentials.
  const hint =
    status === 404 ? " (a 404 without error_code 40403: is the base the Confluent-compatible API?)" : "";
  throw new TransientError(`registry: GET ${url} answered ${status}${hint}: ${excerpt(body)}`, "registry");
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function parseJsonObject(text: string): Record<string, unknown> | null {
  const value = parseJson(text);
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : null;
}

const excerpt = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}…` : text);

export class UnknownSchemaError extends Error {
  override name = "UnknownSchemaError";
}

/** The registry has the schema, but Tally cannot parse it (not Avro, a decimal of scale 2, ...). */
export class IncompatibleSchemaError extends Error {
  override name = "IncompatibleSchemaError";
}

/** The writer type of a found schema; IncompatibleSchemaError when it is not Avro Tally can parse. */
export function writerTypeOfAnswer(schemaId: number, answer: SchemaAnswer & { found: true }): avro.Type {
  if (answer.schemaType !== "AVRO")
    throw new IncompatibleSchemaError(`schema id ${schemaId} is ${answer.schemaType}, not AVRO`);
  try {
    return avroTypeOf(answer.schema);
  } catch (error) {
    throw new IncompatibleSchemaError(`schema id ${schemaId} cannot be parsed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The writer type of a schema id: UnknownSchemaError, IncompatibleSchemaError or TransientError. */
export async function writerTypeOf(source: WriterSchemaSource, schemaId: number): Promise<avro.Type> {
  const answer = await source.schemaById(schemaId);
  if (!answer.found) throw new UnknownSchemaError(`schema id ${schemaId} is not in the registry`);
  return writerTypeOfAnswer(schemaId, answer);
}

function authHeader(config: RegistrySettings): Record<string, string> {
  const username = config.TALLY_SCHEMA_REGISTRY_USERNAME;
  if (!username) return {};
  const token = Buffer.from(`${username}:${config.TALLY_SCHEMA_REGISTRY_PASSWORD}`).toString("base64");
  return { authorization: `Basic ${token}` };
}

export const subjectOf = (topic: string) => `${topic}-value`;

/**
 * The level `tally topics` gives a subject with none of its own. The applier reads every writer
 * through a pinned reader schema and producers upgrade before appliers, so old readers must read
 * new data and new readers old data, across every version: BACKWARD alone would accept a v2 that
 * drops a field the pinned reader needs, and every v2 record would then be rejected.
 */
export const tallyCompatibility = "FULL_TRANSITIVE";
/** Confluent's "subject not found" and "subject has no compatibility of its own". */
const noSubjectConfigCodes = new Set([40401, 40408]);

export type SubjectCompatibility = { level: string; setByTally: boolean };

/**
 * Gives the subject FULL_TRANSITIVE when it has no compatibility of its own, and never overwrites
 * one an operator set (whatever it is: NONE included). Called by `tally topics` only, before the
 * first registration; producers never set a compatibility.
 */
export async function ensureSubjectCompatibility(
  config: RegistrySettings,
  subject: string,
): Promise<SubjectCompatibility> {
  const endpoint = registryEndpointOf(config);
  const own = await subjectCompatibilityOf(endpoint, subject);
  if (own !== null) return { level: own, setByTally: false };
  const url = `${endpoint.baseUrl}/config/${encodeURIComponent(subject)}`;
  const answer = await request(endpoint, url, "PUT", { compatibility: tallyCompatibility });
  if (answer.status !== 200) throw registryError("PUT", url, answer);
  return { level: tallyCompatibility, setByTally: true };
}

/** The subject's own compatibility level; null when it has none (it follows the global default). */
export async function subjectCompatibilityOf(
  endpoint: RegistryEndpoint,
  subject: string,
): Promise<string | null> {
  const url = `${endpoint.baseUrl}/config/${encodeURIComponent(subject)}`;
  const answer = await request(endpoint, url, "GET");
  const body = parseJsonObject(answer.text);
  if (answer.status === 404 && noSubjectConfigCodes.has(body?.error_code as number)) return null;
  const level = body?.compatibilityLevel;
  if (answer.status !== 200 || typeof level !== "string") throw registryError("GET", url, answer);
  // Apicurio answers 200 NONE both for a subject set to NONE and for one with no rule at all (where
  // Confluent answers 40408); only its own API tells the two apart.
  if (level === "NONE" && (await apicurioHasNoRule(endpoint, subject))) return null;
  return level;
}

/** True only when Apicurio's own API says the subject's artifact has no compatibility rule. */
async function apicurioHasNoRule(endpoint: RegistryEndpoint, subject: string): Promise<boolean> {
  const ccompat = /\/apis\/ccompat\/v\d+$/;
  if (!ccompat.test(endpoint.baseUrl)) return false;
  const artifact = `/groups/default/artifacts/${encodeURIComponent(subject)}/rules`;
  const url = endpoint.baseUrl.replace(ccompat, `/apis/registry/v3${artifact}`);
  const answer = await request(endpoint, url, "GET").catch(() => null);
  const rules: unknown = answer?.status === 200 ? parseJson(answer.text) : null;
  // Anything unexpected counts as "has a rule": the operator's setting is kept, never overwritten.
  return Array.isArray(rules) && !rules.includes("COMPATIBILITY");
}

type HttpAnswer = { status: number; text: string };

async function request(
  endpoint: RegistryEndpoint,
  url: string,
  method: string,
  body?: unknown,
): Promise<HttpAnswer> {
  const headers: Record<string, string> = {
    accept: "application/vnd.schemaregistry.v1+json, application/json",
    "content-type": "application/vnd.schemaregistry.v1+json",
    ...endpoint.headers,
  };
  try {
    return await httpExchange(
      url,
      method,
      headers,
      body === undefined ? undefined : JSON.stringify(body),
      endpoint.timeoutMs,
    );
  } catch (error) {
    const e = error as { name?: string; code?: string; message?: string };
    const why = e.name === "AbortError" ? `no answer within ${endpoint.timeoutMs} ms` : (e.code ?? e.message);
    throw new TransientError(`registry: ${method} ${url} failed: ${why}`, "registry", { cause: error });
  }
}

/**
 * One HTTP exchange, the answer read whole, all of it within `timeoutMs`. node:http rather than
 * fetch(): fetch loads Node's bundled undici on first use, 40 to 60 ms of CPU that every applier
 * paid at its first schema id (Node 24.21), for one small GET per schema id in its life.
 */
function httpExchange(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  timeoutMs: number,
): Promise<HttpAnswer> {
  const target = new URL(url);
  const { request } =
    target.protocol === "https:"
      ? process.getBuiltinModule("node:https")
      : process.getBuiltinModule("node:http");
  return new Promise((resolve, reject) => {
    const outgoing = request(
      target,
      { method, headers, signal: AbortSignal.timeout(timeoutMs) },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("error", reject);
        answer.on("end", () =>
          resolve({ status: answer.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
      },
    );
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

/** A 5xx is the registry's own trouble (transient); any other answer is a refusal to report. */
function registryError(method: string, url: string, answer: HttpAnswer): Error {
  const message = `registry: ${method} ${url} answered ${answer.status}: ${excerpt(answer.text)}`;
  if (answer.status >= 500) return new TransientError(message, "registry");
  const errorCode = parseJsonObject(answer.text)?.error_code;
  return new RegistryAnswerError(message, answer.status, typeof errorCode === "number" ? errorCode : null);
}

/** Registers a TransferEvent schema version under `<topic>-value` (or finds it); returns its id. */
export async function registerTransferSchema(
  config: TopicSettings,
  registry: Pick<Registry, "register">,
  schemaText: string = transferEventSchemaText,
): Promise<number> {
  const subject = subjectOf(config.TALLY_TOPIC);
  const { id } = await registry.register({ type: SchemaType.AVRO, schema: schemaText }, { subject });
  return id;
}
