// tally/testing's choices that need no engine: which images run, what Kafka is told to advertise,
// which host ports a stack gets, and when Tally's image is built from the package's recipe.
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { ContainerRuntimeClient } from "testcontainers";
import { describe, expect, it } from "vitest";
import { tallyVersion } from "../../services/common/version.ts";
import { kafkaEnvironment, pickPorts } from "../../services/testing/components.ts";
import { TallyStartError } from "../../services/testing/engine.ts";
import { localImages, publicImages, resolveImages } from "../../services/testing/images.ts";
import { ensureTallyImage, shippedRecipe } from "../../services/testing/tally-image.ts";

describe("resolveImages", () => {
  it("given TALLY_TEST_IMAGES=local, when nothing else is set, then the locally built images run", async () => {
    expect(await resolveImages({}, { TALLY_TEST_IMAGES: "local" })).toEqual({
      kafka: localImages.kafka,
      registry: localImages.registry,
      postgres: localImages.postgres,
      tally: localImages.tally,
    });
  });

  it("given an option and a variable, when resolved, then the option wins over the variable and the variable over the default", async () => {
    const images = await resolveImages(
      { kafka: "example.org/kafka:1" },
      {
        TALLY_TEST_IMAGES: "public",
        TALLY_TEST_IMAGE_KAFKA: "ignored/kafka:2",
        TALLY_TEST_IMAGE_POSTGRES: "my/pg:16",
      },
    );
    expect(images).toEqual({
      kafka: "example.org/kafka:1",
      registry: publicImages.registry,
      postgres: "my/pg:16",
      tally: localImages.tally,
    });
  });

  it("given a bad TALLY_TEST_IMAGES, when resolved, then the error names it and the choices", async () => {
    await expect(resolveImages({}, { TALLY_TEST_IMAGES: "remote" })).rejects.toThrow(
      'TALLY_TEST_IMAGES="remote" is invalid: auto, local or public',
    );
  });
});

describe("kafkaEnvironment", () => {
  it("given a host port, when the broker is configured, then the host and the network are told different listeners", () => {
    const env = kafkaEnvironment("127.0.0.1", 40123);
    expect(env.KAFKA_ADVERTISED_LISTENERS).toBe("HOST://127.0.0.1:40123,INTERNAL://kafka:19092");
    expect(env.KAFKA_INTER_BROKER_LISTENER_NAME).toBe("INTERNAL");
    expect(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe("false");
    expect(env.CLUSTER_ID).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});

describe("localImages", () => {
  it("given the version all packages carry, then Tally's image is named with it", () => {
    expect(localImages.tally).toBe(`localhost/tally:${tallyVersion}`);
  });
});

describe("pickPorts", () => {
  it("given many stacks in one process, when ports are picked, then no port is handed out twice", async () => {
    const all: number[] = [];
    for (let k = 0; k < 20; k++) {
      const ports = await pickPorts();
      all.push(ports.kafka, ports.registry, ports.postgres);
    }
    expect(new Set(all).size).toBe(all.length);
  });

  it("given some ports, when the others are picked, then the given ones are kept and never picked", async () => {
    const first = await pickPorts();
    const ports = await pickPorts({ kafka: first.kafka + 1 });
    expect(ports.kafka).toBe(first.kafka + 1);
    expect([ports.registry, ports.postgres]).not.toContain(first.kafka + 1);
    expect(ports.registry).not.toBe(ports.postgres);
  });
});

/** An engine that has no image at all and fails the test if asked to do anything else. */
const emptyEngine = { image: { exists: async () => false } } as unknown as ContainerRuntimeClient;

describe("ensureTallyImage", () => {
  it("given a complete recipe folder, then it is found; given one without the bundle, then not", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tally-recipe-unit-"));
    try {
      await mkdir(join(dir, "schemas"));
      await writeFile(join(dir, "Containerfile"), "FROM scratch\n");
      await writeFile(join(dir, "schemas", "transfer-event.avsc"), "{}");
      expect(await shippedRecipe(dir)).toBeNull();
      await writeFile(join(dir, "tally.mjs"), "");
      expect(await shippedRecipe(dir)).toBe(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("given a missing image and no recipe (Tally's sources), then the error says how to build it", async () => {
    const missing = ensureTallyImage(emptyEngine, "localhost/tally:nope", { recipeDir: "/nonexistent" });
    await expect(missing).rejects.toThrow(TallyStartError);
    await expect(missing).rejects.toThrow(
      /image not found: localhost\/tally:nope; build it with `make images`/,
    );
  });

  it("given an image name outside localhost/, then nothing is built (the engine pulls it as any other)", async () => {
    await expect(
      ensureTallyImage(emptyEngine, "registry.example.com/tally:1", { recipeDir: "/nonexistent" }),
    ).resolves.toBeUndefined();
  });
});

describe("@tally/testing's package.json", () => {
  /** The packages the module's entry point reaches, through every relative import. */
  function packagesReached(entry: string): Set<string> {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, "utf8");
      for (const [, spec] of text.matchAll(/^(?:import|export)\s(?!type\s)[^;]*?from\s+"([^"]+)"/gms)) {
        if (spec === undefined) continue;
        if (spec.startsWith(".")) visit(resolve(dirname(file), spec));
        else if (!spec.startsWith("node:") && !builtinModules.includes(spec))
          packages.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
      }
    };
    visit(entry);
    return packages;
  }

  it("given every module index.ts reaches, then each package they import is a dependency or a peer", () => {
    const manifest = JSON.parse(readFileSync("services/testing/package.json", "utf8"));
    const declared = new Set([
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
    ]);
    const missing = [...packagesReached(resolve("services/testing/index.ts"))].filter(
      (p) => !declared.has(p),
    );
    expect(missing).toEqual([]);
  });
});
