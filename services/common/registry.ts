// Schema registry access through @kafkajs/confluent-schema-registry, with errors sorted into
// permanent (the schema id does not exist: a rejection) and transient (retry, do not move on).
import { SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import type avro from "avsc";
import { avroForSchemaOptions, transferEventSchemaText } from "./avro.ts";
import type { Config } from "./config.ts";
import { TransientError } from "./retry.ts";

export function createRegistry(config: Config): SchemaRegistry {
  const username = config.TALLY_SCHEMA_REGISTRY_USERNAME;
  return new SchemaRegistry(
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
}

export class UnknownSchemaError extends Error {
  override name = "UnknownSchemaError";
}

/** The writer type of a schema id; UnknownSchemaError for a 404, TransientError for the rest. */
export async function writerTypeOf(registry: SchemaRegistry, schemaId: number): Promise<avro.Type> {
  try {
    return (await registry.getSchema(schemaId)) as unknown as avro.Type;
  } catch (error) {
    const status = (error as { status?: number }).status;
    const message = String((error as Error).message ?? error);
    if (status === 404 && !/ECONNREFUSED/.test(message)) {
      throw new UnknownSchemaError(`schema id ${schemaId} is not in the registry`);
    }
    throw new TransientError(`registry: ${message}`, "registry", { cause: error });
  }
}

function authHeader(config: Config): Record<string, string> {
  const username = config.TALLY_SCHEMA_REGISTRY_USERNAME;
  if (!username) return {};
  const token = Buffer.from(`${username}:${config.TALLY_SCHEMA_REGISTRY_PASSWORD}`).toString("base64");
  return { authorization: `Basic ${token}` };
}

/** Sets the subject's compatibility; the client library has no call for a subject-level config. */
export async function setSubjectCompatibility(
  config: Config,
  subject: string,
  level: "BACKWARD",
): Promise<void> {
  const url = `${config.TALLY_SCHEMA_REGISTRY_URL}/config/${encodeURIComponent(subject)}`;
  const response = await fetch(url, {
    method: "PUT",
    headers: { "content-type": "application/vnd.schemaregistry.v1+json", ...authHeader(config) },
    body: JSON.stringify({ compatibility: level }),
  });
  if (!response.ok)
    throw new Error(`registry: PUT ${url} answered ${response.status}: ${await response.text()}`);
}

export const subjectOf = (topic: string) => `${topic}-value`;

/** Registers a TransferEvent schema version under `<topic>-value`, BACKWARD compatible; returns its id. */
export async function registerTransferSchema(
  config: Config,
  registry: SchemaRegistry,
  schemaText: string = transferEventSchemaText,
): Promise<number> {
  const subject = subjectOf(config.TALLY_TOPIC);
  await setSubjectCompatibility(config, subject, "BACKWARD");
  const { id } = await registry.register({ type: SchemaType.AVRO, schema: schemaText }, { subject });
  return id;
}
