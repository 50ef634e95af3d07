// kafkajs clients from configuration: brokers, TLS, SASL. The partitioner is always the
// Java-compatible murmur2 one, so producers in any language route a token to the same partition.
import { readFileSync } from "node:fs";
import { Kafka, logLevel, Partitioners, type SASLOptions } from "kafkajs";
import type { Config } from "./config.ts";

export const javaCompatiblePartitioner = Partitioners.DefaultPartitioner;

function saslOf(config: Config): SASLOptions | undefined {
  const mechanism = config.TALLY_KAFKA_SASL_MECHANISM;
  if (mechanism === "") return undefined;
  const credentials = {
    username: config.TALLY_KAFKA_SASL_USERNAME,
    password: config.TALLY_KAFKA_SASL_PASSWORD,
  };
  return { mechanism, ...credentials } as SASLOptions;
}

export function createKafka(config: Config, clientIdSuffix: string): Kafka {
  const ca = config.TALLY_KAFKA_SSL_CA_FILE;
  const sasl = saslOf(config);
  return new Kafka({
    clientId: `${config.TALLY_KAFKA_CLIENT_ID}-${clientIdSuffix}`,
    brokers: config.TALLY_KAFKA_BROKERS,
    ssl: config.TALLY_KAFKA_SSL ? (ca ? { ca: [readFileSync(ca, "utf8")] } : true) : false,
    ...(sasl ? { sasl } : {}),
    logLevel: logLevel.ERROR,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
  });
}
