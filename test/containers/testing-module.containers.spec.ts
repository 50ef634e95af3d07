// tally/testing itself: what a user sees when there is no engine, when a start fails half-way,
// that it builds Tally's image from the recipe it ships, and that a started Tally serves the CLI
// from the host and leaves nothing behind when stopped.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { promisify } from "node:util";
import { GenericContainer, getContainerRuntimeClient, ImageName, Wait } from "testcontainers";
import { describe, expect, it } from "vitest";
import { tallyVersion } from "../../services/common/version.ts";
import { localImages } from "../../services/testing/images.ts";
import { startTally } from "../../services/testing/index.ts";
import { ensureTallyImage } from "../../services/testing/tally-image.ts";
import { repoRoot, tally } from "../support/stack.ts";

const run = promisify(execFile);
// A plain node process resolves "@tally/testing" to the workspace's TypeScript sources with this
// (vitest sets it for the test files themselves); without it, to the compiled dist/.
const sourceConditions = "--conditions=tally-source";

async function textOf(stream: Readable): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

/** Ids of the running containers that tally/testing started (any instance, the suite's too). */
async function tallyContainerIds(): Promise<string[]> {
  const client = await getContainerRuntimeClient();
  return (await client.container.list())
    .filter((c) => c.Labels?.["tally.testing"] === "true")
    .map((c) => c.Id)
    .sort();
}

describe("@tally/testing", () => {
  it("given no container engine, when startTally runs, then it fails at once saying so and what to do", async () => {
    const script = 'import { startTally } from "@tally/testing"; await startTally();';
    const result = await run(process.execPath, [sourceConditions, "--input-type=module", "-e", script], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HOME: "/nonexistent", DOCKER_HOST: "unix:///nonexistent/docker.sock" },
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code?: number; stderr?: string }) => ({ code: error.code, stderr: error.stderr ?? "" }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "ContainerEngineError: no container engine answers (DOCKER_HOST=unix:///nonexistent/docker.sock",
    );
    expect(result.stderr).toContain("infra/containers/engine.sh ensure");
  });

  it("given a bad setting, when startTally runs, then it fails before the engine is ever called, naming the variable", async () => {
    // A stand-in engine that only counts the connections made to it (and hangs up on each): the
    // bad setting must be refused before startTally talks to any engine, so before any container
    // could be created, let alone started and removed.
    const dir = await mkdtemp(join(tmpdir(), "tally-engine-"));
    const socket = join(dir, "engine.sock");
    let connections = 0;
    const engine = createServer((c) => {
      connections++;
      c.destroy();
    });
    await new Promise<void>((resolve) => engine.listen(socket, resolve));
    const startWith = async (settings: Record<string, string>) => {
      const script = `import { startTally } from "@tally/testing"; await startTally({ settings: ${JSON.stringify(settings)} });`;
      return run(process.execPath, [sourceConditions, "--input-type=module", "-e", script], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH, HOME: "/nonexistent", DOCKER_HOST: `unix://${socket}` },
        timeout: 60_000,
      }).then(
        () => ({ code: 0, stderr: "" }),
        (error: { code?: number; stderr?: string }) => ({ code: error.code, stderr: error.stderr ?? "" }),
      );
    };
    try {
      const bad = await startWith({ TALLY_BATCH_EVENTS_MAX: "0" });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('TALLY_BATCH_EVENTS_MAX="0" is invalid');
      expect(connections).toBe(0);
      // The stand-in does see a start that gets as far as the engine: the count above can fail.
      const good = await startWith({ TALLY_BATCH_EVENTS_MAX: "100" });
      expect(good.code).toBe(1);
      expect(good.stderr).toContain("ContainerEngineError");
      expect(connections).toBeGreaterThan(0);
    } finally {
      await new Promise<void>((resolve) => engine.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("given Kafka failing while PostgreSQL starts beside it, then the error names Kafka and nothing is left running", async () => {
    const before = await tallyContainerIds();
    // An image with no Kafka in it: its container exits at once, PostgreSQL's start is under way.
    const broken = startTally({ shards: 1, partitions: 1, images: { kafka: localImages.debian } });
    await expect(broken).rejects.toThrow(/^kafka failed to start: /);
    expect(await tallyContainerIds()).toEqual(before);
  });

  it("given no Tally image under its name, when the module builds it from the recipe it ships, then the image runs the tally command", async () => {
    // What the package's image/ folder holds (services/testing/build-extra.sh), made here in a
    // temporary folder, built under a throwaway name on the base this machine's defaults use.
    const recipeDir = await mkdtemp(join(tmpdir(), "tally-recipe-"));
    const name = `localhost/tally-selfbuilt:${randomUUID().slice(0, 8)}`;
    const client = await getContainerRuntimeClient();
    const steps: string[] = [];
    try {
      await run(process.execPath, [join(repoRoot, "infra/images/bundle.mjs"), recipeDir], {
        timeout: 60_000,
      });
      await copyFile(join(repoRoot, "infra/images/tally.Containerfile"), join(recipeDir, "Containerfile"));
      await ensureTallyImage(client, name, { recipeDir, onProgress: (l) => steps.push(l) });
      expect(steps).toEqual([
        expect.stringMatching(/^building Tally's image localhost\/tally-selfbuilt:\w+ on /),
      ]);
      const container = await new GenericContainer(name)
        .withCommand(["--version"])
        .withWaitStrategy(Wait.forOneShotStartup())
        .start();
      const output = await textOf(await container.logs());
      await container.stop();
      expect(output.trim()).toBe(tallyVersion);
      // Present now: a second call builds nothing.
      await ensureTallyImage(client, name, { recipeDir, onProgress: (l) => steps.push(l) });
      expect(steps).toHaveLength(1);
    } finally {
      if (await client.image.exists(ImageName.fromString(name)))
        await client.container.dockerode.getImage(name).remove({ force: true });
      await rm(recipeDir, { recursive: true, force: true });
    }
  });

  it("given a started Tally, when the CLI on the host uses its env, then it answers; when stopped, nothing of it remains", async () => {
    const before = await tallyContainerIds();
    const steps: string[] = [];
    const started = await startTally({
      shards: 1,
      partitions: 2,
      appliers: 1,
      onProgress: (l) => steps.push(l),
    });
    try {
      expect(steps).toHaveLength(4);
      expect(steps[3]).toMatch(/^tally\/testing: projector ready, producer connected \(\d+\.\d s\)$/);
      const running = await tallyContainerIds();
      // Kafka, the registry, PostgreSQL, one applier and the projector.
      expect(running.filter((id) => !before.includes(id))).toHaveLength(5);
      const sent = await started.producer.send([
        {
          transfer_id: crypto.randomUUID(),
          batch_id: null,
          token_id: "t-1",
          asset: "EUR",
          amount: 10n ** 30n,
          from_wallet: null,
          to_wallet: "w-1",
          prev_state: null,
          next_state: "a",
          occurred_at: Date.now(),
        },
      ]);
      expect(sent).toEqual([{ ok: true, partition: expect.any(Number), offset: "0" }]);
      await started.waitUntilCaughtUp();
      const cli = await tally(["balance", "w-1"], started.env);
      expect(cli.code).toBe(0);
      expect(cli.stdout).toContain("1000000000000000000000000000000");
      const metrics = await fetch(started.appliers[0]!.metricsUrl).then((r) => r.text());
      expect(metrics).toMatch(/tally_records_total\{outcome="applied"\} 1\b/);
    } finally {
      await started.stop();
    }
    expect(await tallyContainerIds()).toEqual(before);
  });
});
