// Tally's own processes in containers of its image: one-off commands (migrate, topics) that must
// exit 0, and long-running ones (apply, project) that are ready when their /health/ready says so.
import { GenericContainer, type StartedNetwork, type StartedTestContainer, Wait } from "testcontainers";
import { LogTail, pullPolicyOf, startNamed } from "./engine.ts";

export type TallyRun = {
  image: string;
  network: StartedNetwork;
  labels: Record<string, string>;
  env: Record<string, string>;
};

export type TallyProcess = {
  name: string;
  container: StartedTestContainer;
  /** Prometheus metrics of this process, from the host. */
  metricsUrl: string;
};

const metricsPort = 9400;
// A one-off command on a cold machine: Node start, then Kafka and PostgreSQL round trips.
const commandTimeoutMs = 120_000;

function tallyContainer(run: TallyRun, args: string[]): GenericContainer {
  return new GenericContainer(run.image)
    .withNetwork(run.network)
    .withLabels(run.labels)
    .withPullPolicy(pullPolicyOf(run.image))
    .withEnvironment(run.env)
    .withCommand(args)
    .withStartupTimeout(commandTimeoutMs);
}

/** `tally <args>` to its end; a non-zero exit fails with the command's output. */
export async function runTallyOnce(run: TallyRun, args: string[]): Promise<void> {
  const container = await startNamed<StartedTestContainer>(
    `tally ${args.join(" ")}`,
    tallyContainer(run, args).withWaitStrategy(Wait.forOneShotStartup()),
    new LogTail(),
  );
  await container.stop();
}

/** `tally apply` or `tally project`, ready once it has its partitions or has done a round. */
export async function startTallyProcess(
  run: TallyRun,
  command: "apply" | "project",
  name: string,
): Promise<TallyProcess> {
  const container = await startNamed<StartedTestContainer>(
    name,
    tallyContainer(run, [command])
      .withEnvironment({ TALLY_METRICS_PORT: String(metricsPort), TALLY_METRICS_HOST: "0.0.0.0" })
      .withExposedPorts(metricsPort)
      .withWaitStrategy(Wait.forHttp("/health/ready", metricsPort).forStatusCode(200)),
    new LogTail(),
  );
  return {
    name,
    container,
    metricsUrl: `http://${container.getHost()}:${container.getMappedPort(metricsPort)}/metrics`,
  };
}
