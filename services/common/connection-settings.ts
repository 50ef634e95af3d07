// What a Kafka client and a schema registry client need, and nothing else: the producer package
// builds these from its own options, the services take them from the whole configuration (a
// Config has every one of these fields, checked in config.ts). No zod, no PostgreSQL here.
export class ConfigError extends Error {
  override name = "ConfigError";
}

export type SaslMechanism = "plain" | "scram-sha-256" | "scram-sha-512";

export type KafkaSettings = {
  TALLY_KAFKA_BROKERS: string[];
  TALLY_KAFKA_CLIENT_ID: string;
  TALLY_KAFKA_SSL: boolean;
  /** "" for the system's certificate authorities */
  TALLY_KAFKA_SSL_CA_FILE: string;
  /** "" for no SASL */
  TALLY_KAFKA_SASL_MECHANISM: SaslMechanism | "";
  TALLY_KAFKA_SASL_USERNAME: string;
  TALLY_KAFKA_SASL_PASSWORD: string;
};

export type RegistrySettings = {
  TALLY_SCHEMA_REGISTRY_URL: string;
  /** "" for no authentication */
  TALLY_SCHEMA_REGISTRY_USERNAME: string;
  TALLY_SCHEMA_REGISTRY_PASSWORD: string;
};

export type RetrySettings = { TALLY_RETRY_ATTEMPTS_MAX: number; TALLY_RETRY_BACKOFF_MS_MAX: number };

export type TopicSettings = { TALLY_TOPIC: string };
