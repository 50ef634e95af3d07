// The containers provider's stack for the whole run: PostgreSQL, Kafka and Apicurio Registry in
// containers on one network, on host ports picked once (a stopped and started container answers
// where it did). The test files find them through the state file (test/support/provider.ts);
// everything is removed at the end, also when the start fails half-way.
import { randomUUID } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { Network, type StartedNetwork, type StartedTestContainer } from "testcontainers";
import { pickPorts, startComponents } from "../../services/testing/components.ts";
import {
  containerEngine,
  instanceLabels,
  removeInstance,
  requireLocalImages,
} from "../../services/testing/engine.ts";
import { resolveImages } from "../../services/testing/images.ts";
import { type ContainerStackState, containerStackStateFile } from "../support/provider.ts";

export default async function setup(): Promise<() => Promise<void>> {
  const startedMs = Date.now();
  const client = await containerEngine();
  const images = await resolveImages();
  await requireLocalImages(client, [images.kafka, images.registry, images.postgres]);
  const instanceId = `suite-${randomUUID()}`;
  const containers: StartedTestContainer[] = [];
  let network: StartedNetwork | null = null;
  const teardown = async () => {
    for (const container of containers.reverse()) await container.stop({ timeout: 10_000 }).catch(() => {});
    await removeInstance(client, instanceId);
    await network?.stop().catch(() => {});
    rmSync(containerStackStateFile, { force: true });
  };
  try {
    network = await new Network().start();
    const components = await startComponents({
      network,
      images,
      labels: instanceLabels(instanceId),
      ports: await pickPorts(),
      host: client.info.containerRuntime.host,
      started: (c) => containers.push(c),
    });
    const state: ContainerStackState = {
      env: {
        TALLY_LOCAL_PG_PORT: String(components.ports.postgres),
        TALLY_KAFKA_BROKERS: components.host.kafkaBrokers,
        TALLY_SCHEMA_REGISTRY_URL: components.host.registryUrl,
      },
      containers: {
        postgres: components.postgres.getId(),
        kafka: components.kafka.getId(),
        registry: components.registry.getId(),
      },
    };
    mkdirSync(dirname(containerStackStateFile), { recursive: true });
    writeFileSync(containerStackStateFile, `${JSON.stringify(state, null, 2)}\n`);
    process.stderr.write(
      `containers: stack up in ${Date.now() - startedMs} ms (${images.postgres}, ${images.kafka}, ${images.registry})\n`,
    );
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
