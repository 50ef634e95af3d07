// What Tally stands on, in containers on one network: PostgreSQL, Kafka (one KRaft node) and
// Apicurio Registry with its storage in that PostgreSQL. Each binds a host port picked once, so a
// container stopped and started again (the fault tests) answers where it did. Waits are a log
// line plus the listening port: health checks do not run under podman here (STACK.md).
import { type AddressInfo, createServer, type Server } from "node:net";
import pg from "pg";
import { GenericContainer, type StartedNetwork, type StartedTestContainer, Wait } from "testcontainers";
import { allStarted, LogTail, pullPolicyOf, startNamed } from "./engine.ts";

export type ComponentImages = { kafka: string; registry: string; postgres: string };

/** Host ports: the ones given, or free ones picked now (pickPorts). */
export type ComponentPorts = { kafka: number; registry: number; postgres: number };

export type Components = {
  network: StartedNetwork;
  postgres: StartedTestContainer;
  kafka: StartedTestContainer;
  registry: StartedTestContainer;
  /** Seen from the host (tests, producers on the host). */
  host: { kafkaBrokers: string; registryUrl: string; postgresUrl: (database: string) => string };
  /** Seen from containers on the network (Tally's own processes). */
  internal: { kafkaBrokers: string; registryUrl: string; postgresUrl: (database: string) => string };
  ports: ComponentPorts;
};

export const aliases = { postgres: "postgres", kafka: "kafka", registry: "registry" } as const;
const kafkaInternalPort = 19092;
const registryDatabase = "tally_registry";
const ccompatPath = "/apis/ccompat/v7";
// Cold on 2 busy cores: PostgreSQL 2-4 s, Kafka 4-8 s, Apicurio 5-15 s; a generous bound.
export const componentStartupTimeoutMs = 120_000;
// Any fixed id works for a one-node cluster (base64 of 16 bytes); the data lives in the container.
const kafkaClusterId = "dGFsbHktdGVzdGluZy0wMQ";

// Ports this process has handed out: a stack keeps its ports for its whole life (a restarted
// container binds them again), so a later stack of the same process must never get one of them,
// even after the engine let go of it for a moment during a restart.
const portsHandedOut = new Set<number>();
const portAttemptsMax = 50;

/**
 * Host ports for one stack: the ones given, the others picked by the OS with their probe sockets
 * all held open together, so the picks of one call differ from each other, and never one that an
 * earlier call of this process handed out or that is among the given ones.
 */
export async function pickPorts(given: Partial<ComponentPorts> = {}): Promise<ComponentPorts> {
  const names = ["kafka", "registry", "postgres"] as const;
  const taken = new Set<number>([...portsHandedOut, ...names.flatMap((n) => given[n] ?? [])]);
  const held: Server[] = [];
  const picked: Partial<ComponentPorts> = {};
  try {
    for (const name of names) {
      if (given[name] !== undefined) continue;
      for (let attempt = 1; picked[name] === undefined; attempt++) {
        if (attempt > portAttemptsMax)
          throw new Error(`no free host port for ${name} after ${portAttemptsMax} tries`);
        const probe = await listening();
        held.push(probe);
        const port = (probe.address() as AddressInfo).port;
        if (!taken.has(port)) picked[name] = port;
        taken.add(port);
      }
    }
  } finally {
    await Promise.all(held.map((probe) => new Promise((resolve) => probe.close(resolve))));
  }
  const ports = { ...picked, ...given } as ComponentPorts;
  for (const name of names) portsHandedOut.add(ports[name]);
  return ports;
}

function listening(): Promise<Server> {
  const probe = createServer();
  return new Promise((resolve, reject) => {
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => resolve(probe));
  });
}

/** Where a component runs: its image, the network, the labels of its instance. */
export type Placement = { image: string; network: StartedNetwork; labels: Record<string, string> };

function base({ image, network, labels }: Placement, alias: string): GenericContainer {
  return new GenericContainer(image)
    .withNetwork(network)
    .withNetworkAliases(alias)
    .withLabels(labels)
    .withPullPolicy(pullPolicyOf(image))
    .withStartupTimeout(componentStartupTimeoutMs);
}

export function postgresContainer(placement: Placement, hostPort: number): GenericContainer {
  return (
    base(placement, aliases.postgres)
      .withExposedPorts({ container: 5432, host: hostPort })
      // The public image reads it; the local one is made with trust authentication already.
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust" })
      // The public image prints the line once for its init server too, which listens on no TCP
      // port: the port check tells the two apart.
      .withWaitStrategy(
        Wait.forAll([
          Wait.forLogMessage(/database system is ready to accept connections/),
          Wait.forListeningPorts(),
        ]),
      )
  );
}

/** The Apache image's KAFKA_* convention (the local image follows it too). */
export function kafkaEnvironment(advertisedHost: string, hostPort: number): Record<string, string> {
  return {
    CLUSTER_ID: kafkaClusterId,
    KAFKA_NODE_ID: "1",
    KAFKA_PROCESS_ROLES: "broker,controller",
    // HOST is what the host's clients are told; INTERNAL what containers on the network are told.
    KAFKA_LISTENERS: `HOST://0.0.0.0:9092,INTERNAL://0.0.0.0:${kafkaInternalPort},CONTROLLER://0.0.0.0:9093`,
    KAFKA_ADVERTISED_LISTENERS: `HOST://${advertisedHost}:${hostPort},INTERNAL://${aliases.kafka}:${kafkaInternalPort}`,
    KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: "HOST:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
    KAFKA_INTER_BROKER_LISTENER_NAME: "INTERNAL",
    KAFKA_CONTROLLER_LISTENER_NAMES: "CONTROLLER",
    KAFKA_CONTROLLER_QUORUM_VOTERS: "1@localhost:9093",
    // Topics come from `tally topics` with explicit partition counts, never by accident.
    KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false",
    KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "1",
    KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: "1",
    KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: "1",
    KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR: "1",
    KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR: "1",
    KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: "0",
    KAFKA_HEAP_OPTS: "-Xms256m -Xmx512m",
  };
}

export function kafkaContainer(
  placement: Placement,
  advertisedHost: string,
  hostPort: number,
): GenericContainer {
  return base(placement, aliases.kafka)
    .withExposedPorts({ container: 9092, host: hostPort })
    .withEnvironment(kafkaEnvironment(advertisedHost, hostPort))
    .withWaitStrategy(Wait.forAll([Wait.forLogMessage(/Kafka Server started/), Wait.forListeningPorts()]));
}

export function registryContainer(placement: Placement, hostPort: number): GenericContainer {
  return base(placement, aliases.registry)
    .withExposedPorts({ container: 8080, host: hostPort })
    .withEnvironment({
      QUARKUS_HTTP_HOST: "0.0.0.0",
      QUARKUS_HTTP_PORT: "8080",
      QUARKUS_HTTP_ACCESS_LOG_ENABLED: "false",
      APICURIO_STORAGE_KIND: "sql",
      APICURIO_STORAGE_SQL_KIND: "postgresql",
      APICURIO_DATASOURCE_URL: `jdbc:postgresql://${aliases.postgres}:5432/${registryDatabase}`,
      APICURIO_DATASOURCE_USERNAME: "postgres",
      APICURIO_DATASOURCE_PASSWORD: "",
      // The default pool (20 to 100) would eat PostgreSQL's connections.
      APICURIO_DATASOURCE_JDBC_INITIAL_SIZE: "2",
      APICURIO_DATASOURCE_JDBC_MIN_SIZE: "2",
      APICURIO_DATASOURCE_JDBC_MAX_SIZE: "8",
      // For the public image (the local one sets the same flags): a small JVM, and DNS answers
      // kept 1 s, since a restarted PostgreSQL container comes back on a new address.
      JAVA_OPTS_APPEND: "-Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dsun.net.inetaddr.ttl=1",
    })
    .withWaitStrategy(
      Wait.forAll([
        // Without its storage settings Apicurio keeps schemas in memory and ids die with it.
        Wait.forLogMessage(/Using postgresql SQL storage/),
        Wait.forLogMessage(/Listening on: http/),
        Wait.forListeningPorts(),
      ]),
    );
}

/** Apicurio creates its tables, not its database. */
export async function createDatabase(url: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE "${database}"`);
  } finally {
    await client.end();
  }
}

export type StartComponentsOptions = {
  network: StartedNetwork;
  images: ComponentImages;
  labels: Record<string, string>;
  ports: ComponentPorts;
  /** Where the host reaches the engine's published ports (testcontainers' runtime host). */
  host: string;
  /** Called with every container as soon as it runs, so a caller can stop them on failure. */
  started: (container: StartedTestContainer) => void;
};

/** PostgreSQL and Kafka side by side, then the registry (it needs its database first). */
export async function startComponents(options: StartComponentsOptions): Promise<Components> {
  const { network, images, labels, ports, host } = options;
  const at = (image: string): Placement => ({ image, network, labels });
  const track = (container: StartedTestContainer) => {
    options.started(container);
    return container;
  };
  const [postgres, kafka] = await allStarted<[StartedTestContainer, StartedTestContainer]>([
    startNamed<StartedTestContainer>(
      "postgres",
      postgresContainer(at(images.postgres), ports.postgres),
      new LogTail(),
    ).then(track),
    startNamed<StartedTestContainer>(
      "kafka",
      kafkaContainer(at(images.kafka), host, ports.kafka),
      new LogTail(),
    ).then(track),
  ]);
  const hostPostgresUrl = (database: string) => `postgres://postgres@${host}:${ports.postgres}/${database}`;
  await createDatabase(hostPostgresUrl("postgres"), registryDatabase);
  const registry = track(
    await startNamed<StartedTestContainer>(
      "registry",
      registryContainer(at(images.registry), ports.registry),
      new LogTail(),
    ),
  );
  return {
    network,
    postgres,
    kafka,
    registry,
    ports,
    host: {
      kafkaBrokers: `${host}:${ports.kafka}`,
      registryUrl: `http://${host}:${ports.registry}${ccompatPath}`,
      postgresUrl: hostPostgresUrl,
    },
    internal: {
      kafkaBrokers: `${aliases.kafka}:${kafkaInternalPort}`,
      registryUrl: `http://${aliases.registry}:8080${ccompatPath}`,
      postgresUrl: (database) => `postgres://postgres@${aliases.postgres}:5432/${database}`,
    },
  };
}
