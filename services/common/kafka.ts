// kafkajs clients from configuration: brokers, TLS, SASL. The partitioner is always the
// Java-compatible murmur2 one, so producers in any language route a token to the same partition.
import { readFileSync } from "node:fs";
import {
  type ICustomPartitioner,
  Kafka,
  type logCreator,
  logLevel,
  Partitioners,
  type SASLOptions,
} from "kafkajs";
import { ConfigError, type KafkaSettings } from "./connection-settings.ts";
import { partitionOfKey } from "./partitioner.ts";
// Install cheaper readers of record offsets and timestamps on kafkajs' decoding (see each module).
import "./kafka-long-memo.ts";
import "./kafka-varlong.ts";

/**
 * kafkajs' partitioner interface over partitionOfKey: a keyed message goes where the Java client
 * would put it; a message with a partition keeps it; a keyless one takes kafkajs' default choice.
 */
export const javaCompatiblePartitioner: ICustomPartitioner = () => {
  const keyless = Partitioners.DefaultPartitioner();
  return (args) => {
    const { message, partitionMetadata } = args;
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key === null || key === undefined) return keyless(args);
    return partitionOfKey(Buffer.isBuffer(key) ? key : Buffer.from(String(key)), partitionMetadata.length);
  };
};

const pemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The CA bundle's certificates, one PEM string each (Node's `ca` takes an array). A path that
 * cannot be read, or a file that holds no PEM certificate (a PKCS12 truststore given by mistake),
 * stops the command as bad configuration, not as a connection error after retries.
 */
export function caCertificatesOf(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(`TALLY_KAFKA_SSL_CA_FILE=${JSON.stringify(path)} cannot be read (${why})`);
  }
  const certificates = text.match(pemCertificate) ?? [];
  if (certificates.length === 0) {
    throw new ConfigError(
      `TALLY_KAFKA_SSL_CA_FILE=${JSON.stringify(path)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  }
  return certificates;
}

/**
 * kafkajs' `ssl` option: false, true (the system's CAs), or our CA bundle. kafkajs sets the TLS
 * server name (SNI and the name checked) to the broker's host when it is a name; for an IP it
 * leaves it out and Node checks the IP against the certificate's IP entries.
 */
function sslOf(config: KafkaSettings): boolean | { ca: string[] } {
  const caFile = config.TALLY_KAFKA_SSL_CA_FILE;
  if (!config.TALLY_KAFKA_SSL) {
    // A CA without TLS would be silently ignored and the connection made in plaintext.
    if (caFile !== "") throw new ConfigError("TALLY_KAFKA_SSL_CA_FILE is set but TALLY_KAFKA_SSL is false");
    return false;
  }
  return caFile === "" ? true : { ca: caCertificatesOf(caFile) };
}

function saslOf(config: KafkaSettings): SASLOptions | undefined {
  const mechanism = config.TALLY_KAFKA_SASL_MECHANISM;
  if (mechanism === "") return undefined;
  const credentials = {
    username: config.TALLY_KAFKA_SASL_USERNAME,
    password: config.TALLY_KAFKA_SASL_PASSWORD,
  };
  return { mechanism, ...credentials } as SASLOptions;
}

/** The options given to kafkajs, apart from the client id: exported for tests. */
export function kafkaSecurityOptions(config: KafkaSettings): {
  ssl: boolean | { ca: string[] };
  sasl?: SASLOptions;
} {
  const sasl = saslOf(config);
  return { ssl: sslOf(config), ...(sasl ? { sasl } : {}) };
}

// What kafkajs logs at ERROR while a consumer group rebalances or its coordinator moves: answers a
// group member gets many times in a normal rebalance, retried by kafkajs itself. Shown to a user at
// ERROR they read as failures; what does fail (a crash, an exhausted retry) still reaches ERROR.
const routineGroupAnswers = [
  /group is rebalancing/i,
  /coordinator is not available/i,
  /not the correct coordinator/i,
  /coordinator is loading/i,
  /coordinator is not aware of this member/i,
  /rebalance in progress/i,
];

/** True for a kafkajs error entry that is routine group chatter (see routineGroupAnswers). */
export function isRoutineGroupChatter(message: string, error: unknown): boolean {
  const text = `${message} ${typeof error === "string" ? error : ""}`;
  return routineGroupAnswers.some((pattern) => pattern.test(text));
}

const levelNames: Record<number, string> = { 1: "error", 2: "warn", 4: "info", 5: "debug" };

/** kafkajs' entries as one JSON line each on stderr, the routine group chatter left out. */
export const kafkaLogCreator: logCreator =
  () =>
  ({ namespace, level, log }) => {
    const { message, timestamp: _timestamp, logger: _logger, ...fields } = log;
    if (level === logLevel.ERROR && isRoutineGroupChatter(message, fields.error)) return;
    const line = {
      level: levelNames[level] ?? level,
      time: Date.now(),
      name: "kafkajs",
      namespace,
      msg: message,
    };
    process.stderr.write(`${JSON.stringify({ ...line, ...fields })}\n`);
  };

export function createKafka(config: KafkaSettings, clientIdSuffix: string): Kafka {
  return new Kafka({
    logCreator: kafkaLogCreator,
    clientId: `${config.TALLY_KAFKA_CLIENT_ID}-${clientIdSuffix}`,
    brokers: config.TALLY_KAFKA_BROKERS,
    ...kafkaSecurityOptions(config),
    logLevel: logLevel.ERROR,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
  });
}
