// What every container of the testing module shares: the engine (with a clear error when none
// answers), images that exist before anything starts, labels for cleaning up, the last lines of a
// container's log for error messages.
import type { Readable } from "node:stream";
import {
  type ContainerRuntimeClient,
  type GenericContainer,
  getContainerRuntimeClient,
  ImageName,
  type ImagePullPolicy,
  PullPolicy,
} from "testcontainers";

export class ContainerEngineError extends Error {
  override name = "ContainerEngineError";
}

export class TallyStartError extends Error {
  override name = "TallyStartError";
}

const instanceLabel = "tally.testing.instance";

/** Every container of one startTally carries them (besides testcontainers' own labels). */
export function instanceLabels(instanceId: string): Record<string, string> {
  return { "tally.testing": "true", [instanceLabel]: instanceId };
}

/**
 * Removes whatever still runs of one instance: a container whose start failed before testcontainers
 * handed it over (e.g. its ports never showed as bound) would otherwise be left running.
 */
export async function removeInstance(client: ContainerRuntimeClient, instanceId: string): Promise<void> {
  for (const info of await client.container.list()) {
    if (info.Labels?.[instanceLabel] !== instanceId) continue;
    await client.container
      .getById(info.Id)
      .remove({ force: true, v: true })
      .catch(() => {});
  }
}

const engineHelp =
  "start Docker, or podman's API service and point DOCKER_HOST at it; in Tally's repository " +
  '`make test-containers` does it, or: bash infra/containers/engine.sh ensure && eval "$(bash ' +
  "infra/containers/engine.sh env | sed 's/^/export /')\"";

/** The engine testcontainers found, or an error that says what to do. */
export async function containerEngine(): Promise<ContainerRuntimeClient> {
  try {
    return await getContainerRuntimeClient();
  } catch (error) {
    const where = process.env.DOCKER_HOST ? `DOCKER_HOST=${process.env.DOCKER_HOST}` : "DOCKER_HOST unset";
    const why = error instanceof Error ? error.message : String(error);
    throw new ContainerEngineError(`no container engine answers (${where}: ${why}); ${engineHelp}`, {
      cause: error,
    });
  }
}

/** Locally built images (localhost/...) are never pulled; public ones are pulled when missing. */
export function pullPolicyOf(image: string): ImagePullPolicy {
  return isLocalImage(image) ? PullPolicy.neverPull() : PullPolicy.defaultPolicy();
}

const isLocalImage = (image: string) => image.startsWith("localhost/");

/** Fails before any container starts if a locally built image is missing, naming the fix. */
export async function requireLocalImages(client: ContainerRuntimeClient, images: string[]): Promise<void> {
  const missing: string[] = [];
  for (const image of images.filter(isLocalImage)) {
    if (!(await client.image.exists(ImageName.fromString(image)))) missing.push(image);
  }
  if (missing.length > 0) {
    throw new TallyStartError(
      `image${missing.length > 1 ? "s" : ""} not found: ${missing.join(", ")}; build ` +
        "them with `make images` (infra/images/build.sh) in Tally's repository, or name other images " +
        "(startTally's images option, TALLY_TEST_IMAGE_* variables)",
    );
  }
}

const logTailLines = 40;

/** Keeps the last lines a container printed, for the error message when it fails to start. */
export class LogTail {
  private lines: string[] = [];
  private partial = "";

  consume = (stream: Readable): void => {
    stream.on("data", (chunk: Buffer | string) => {
      const parts = (this.partial + chunk.toString()).split("\n");
      this.partial = parts.pop() ?? "";
      this.lines.push(...parts);
      if (this.lines.length > logTailLines) this.lines.splice(0, this.lines.length - logTailLines);
    });
  };

  text(): string {
    const all = [...this.lines, ...(this.partial ? [this.partial] : [])];
    return all.length === 0 ? "  | (no output)" : all.map((l) => `  | ${l}`).join("\n");
  }
}

/** Starts a container; a failure names the component, the reason and the last lines of its log. */
export async function startNamed<T>(
  component: string,
  container: GenericContainer,
  tail: LogTail,
): Promise<T> {
  try {
    return (await container.withLogConsumer(tail.consume).start()) as T;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new TallyStartError(
      `${component} failed to start: ${why}\n${component} log (last lines):\n${tail.text()}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Like Promise.all, but waits for every start to end before failing: a container still starting
 * when another failed would otherwise be handed over after the teardown had run, and keep running.
 */
export async function allStarted<T extends readonly unknown[]>(
  starts: { [K in keyof T]: Promise<T[K]> },
): Promise<T> {
  const settled = await Promise.allSettled(starts);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
