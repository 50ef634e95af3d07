// Where the producer sends and how it authenticates: its own small options, and fromEnv() for a
// service that keeps them in TALLY_* variables. fromEnv reads only the variables named here and
// ignores every other one (a host service may have TALLY_* settings of its own).
import {
  ConfigError,
  type KafkaSettings,
  type RegistrySettings,
  type RetrySettings,
  type SaslMechanism,
  type TopicSettings,
} from "../common/connection-settings.ts";

export type ProducerConnection = {
  /** host:port of one or more brokers */
  brokers: string[];
  /** the schema registry's base URL (Confluent-compatible API), e.g. http://127.0.0.1:8081/apis/ccompat/v7 */
  registryUrl: string;
  registryUsername?: string;
  registryPassword?: string;
  /** the transfers topic; "transfers" when absent */
  topic?: string;
  /** kafkajs client id prefix; "tally" when absent */
  clientId?: string;
  /** TLS to the brokers; `caFile` (PEM) when the brokers' certificates are not signed by a system CA */
  tls?: boolean | { caFile: string };
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
  /** bounded retries of a send and of the schema registration; 120 attempts, at most 5 s apart */
  retryAttemptsMax?: number;
  retryBackoffMsMax?: number;
};

export type ProducerSettings = KafkaSettings & RegistrySettings & RetrySettings & TopicSettings;

const topicPattern = /^[A-Za-z0-9._-]{1,249}$/;
const retryAttemptsMaxDefault = 120;
const retryBackoffMsMaxDefault = 5_000;

/** The settings the clients take; throws ConfigError naming the option that is wrong. */
export function producerSettingsOf(connection: ProducerConnection): ProducerSettings {
  const { brokers, registryUrl } = connection;
  if (!Array.isArray(brokers) || brokers.length === 0 || brokers.some((b) => !/^[^\s:,]+:\d{1,5}$/.test(b)))
    throw new ConfigError("brokers must be a non-empty list of host:port");
  if (!/^https?:\/\/[^\s]+$/.test(registryUrl ?? ""))
    throw new ConfigError("registryUrl must be an http:// or https:// URL");
  if (/^https?:\/\/[^/]*@/.test(registryUrl))
    throw new ConfigError(
      "registryUrl must not hold credentials: give registryUsername and registryPassword",
    );
  const topic = connection.topic ?? "transfers";
  if (!topicPattern.test(topic)) throw new ConfigError("topic must be a Kafka topic name");
  const tls = connection.tls ?? false;
  const sasl = connection.sasl;
  if (sasl && (sasl.username === "" || sasl.password === ""))
    throw new ConfigError("sasl needs a username and a password");
  return {
    TALLY_KAFKA_BROKERS: brokers,
    TALLY_KAFKA_CLIENT_ID: connection.clientId ?? "tally",
    TALLY_KAFKA_SSL: tls !== false,
    TALLY_KAFKA_SSL_CA_FILE: typeof tls === "object" ? tls.caFile : "",
    TALLY_KAFKA_SASL_MECHANISM: sasl?.mechanism ?? "",
    TALLY_KAFKA_SASL_USERNAME: sasl?.username ?? "",
    TALLY_KAFKA_SASL_PASSWORD: sasl?.password ?? "",
    TALLY_SCHEMA_REGISTRY_URL: registryUrl,
    TALLY_SCHEMA_REGISTRY_USERNAME: connection.registryUsername ?? "",
    TALLY_SCHEMA_REGISTRY_PASSWORD: connection.registryPassword ?? "",
    TALLY_TOPIC: topic,
    TALLY_RETRY_ATTEMPTS_MAX: wholeIn(
      "retryAttemptsMax",
      connection.retryAttemptsMax,
      1,
      100_000,
      retryAttemptsMaxDefault,
    ),
    TALLY_RETRY_BACKOFF_MS_MAX: wholeIn(
      "retryBackoffMsMax",
      connection.retryBackoffMsMax,
      10,
      600_000,
      retryBackoffMsMaxDefault,
    ),
  };
}

function wholeIn(
  name: string,
  value: number | undefined,
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (!(Number.isSafeInteger(value) && value >= min && value <= max))
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}`);
  return value;
}

const saslMechanisms: readonly string[] = ["plain", "scram-sha-256", "scram-sha-512"];

/**
 * The connection from TALLY_KAFKA_BROKERS (comma-separated), TALLY_SCHEMA_REGISTRY_URL (and
 * _USERNAME, _PASSWORD), TALLY_TOPIC, TALLY_KAFKA_CLIENT_ID, TALLY_KAFKA_SSL (true/false/1/0),
 * TALLY_KAFKA_SSL_CA_FILE, TALLY_KAFKA_SASL_MECHANISM (and _USERNAME, _PASSWORD),
 * TALLY_RETRY_ATTEMPTS_MAX and TALLY_RETRY_BACKOFF_MS_MAX. Absent ones take the service's defaults
 * (the local stack: 127.0.0.1:19092, http://127.0.0.1:18081/apis/ccompat/v7, transfers); any other variable is ignored.
 */
export function fromEnv(env: Record<string, string | undefined> = process.env): ProducerConnection {
  const text = (name: string) => (env[name] ?? "").trim();
  const flag = (name: string) => {
    const value = text(name);
    if (!["", "true", "false", "1", "0"].includes(value))
      throw new ConfigError(`${name} must be true or false`);
    return value === "true" || value === "1";
  };
  const whole = (name: string) => {
    const value = text(name);
    if (value === "") return undefined;
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new ConfigError(`${name} must be a whole number`);
    return n;
  };
  const mechanism = text("TALLY_KAFKA_SASL_MECHANISM");
  if (mechanism !== "" && !saslMechanisms.includes(mechanism))
    throw new ConfigError("TALLY_KAFKA_SASL_MECHANISM must be plain, scram-sha-256 or scram-sha-512");
  const caFile = text("TALLY_KAFKA_SSL_CA_FILE");
  const tlsOn = flag("TALLY_KAFKA_SSL");
  if (caFile !== "" && !tlsOn)
    throw new ConfigError("TALLY_KAFKA_SSL_CA_FILE is set but TALLY_KAFKA_SSL is false");
  const connection: ProducerConnection = {
    brokers: (text("TALLY_KAFKA_BROKERS") || "127.0.0.1:19092").split(",").map((b) => b.trim()),
    registryUrl: text("TALLY_SCHEMA_REGISTRY_URL") || "http://127.0.0.1:18081/apis/ccompat/v7",
    registryUsername: text("TALLY_SCHEMA_REGISTRY_USERNAME"),
    registryPassword: env.TALLY_SCHEMA_REGISTRY_PASSWORD ?? "",
    topic: text("TALLY_TOPIC") || "transfers",
    clientId: text("TALLY_KAFKA_CLIENT_ID") || "tally",
    tls: tlsOn ? (caFile === "" ? true : { caFile }) : false,
    retryAttemptsMax: whole("TALLY_RETRY_ATTEMPTS_MAX"),
    retryBackoffMsMax: whole("TALLY_RETRY_BACKOFF_MS_MAX"),
  };
  if (mechanism !== "") {
    connection.sasl = {
      mechanism: mechanism as SaslMechanism,
      username: text("TALLY_KAFKA_SASL_USERNAME"),
      password: env.TALLY_KAFKA_SASL_PASSWORD ?? "",
    };
  }
  producerSettingsOf(connection); // every problem is reported now, not at connect()
  return connection;
}
