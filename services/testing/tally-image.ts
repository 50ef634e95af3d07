// Tally's image where it is missing: @tally/testing ships the recipe (image/Containerfile, the
// one of infra/images/tally.Containerfile), the bundled tally command (image/tally.mjs) and the
// event schemas (image/schemas/), put there by build-extra.sh when the package is built. Building
// adds the Node binary running this process, so no Tally checkout and no registry holding Tally's
// image is needed: only a base image (Debian's, or the locally made one where no registry answers).
import { chmod, copyFile, cp, mkdtemp, rm, stat } from "node:fs/promises";
import { arch, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ContainerRuntimeClient, GenericContainer, ImageName } from "testcontainers";
import { TallyStartError } from "./engine.ts";
import { imageRegistryAnswers, imagesMode, localImages } from "./images.ts";

/** The base where an image registry answers, as infra/images/build.sh picks it too. */
export const publicBaseImage = "docker.io/library/debian:bookworm-slim";

/**
 * The package's image/ folder: from dist/services/testing/ it is three levels up. Run from the
 * TypeScript sources (Tally's own repository) there is none, and `make images` builds the image.
 */
export const shippedRecipeDir = fileURLToPath(new URL("../../../image/", import.meta.url));

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

export async function shippedRecipe(dir: string = shippedRecipeDir): Promise<string | null> {
  const complete =
    (await isFile(join(dir, "Containerfile"))) &&
    (await isFile(join(dir, "tally.mjs"))) &&
    (await isFile(join(dir, "schemas", "transfer-event.avsc")));
  return complete ? dir : null;
}

export type TallyImageBuild = {
  /** The folder with Containerfile, tally.mjs and schemas/ (default: the package's image/). */
  recipeDir?: string;
  /** The base image (default: Debian's where a registry answers, else localImages.debian). */
  base?: string;
  env?: NodeJS.ProcessEnv;
  onProgress?: (line: string) => void;
};

async function chooseBase(client: ContainerRuntimeClient, env: NodeJS.ProcessEnv): Promise<string> {
  const mode = imagesMode(env);
  const usePublic = mode === "public" || (mode === "auto" && (await imageRegistryAnswers()));
  if (usePublic) return publicBaseImage;
  if (!(await client.image.exists(ImageName.fromString(localImages.debian)))) {
    throw new TallyStartError(
      `Tally's image is missing and cannot be built here: no image registry answers for ${publicBaseImage} ` +
        `and the local base ${localImages.debian} is missing too (infra/images/build.sh debian makes it)`,
    );
  }
  return localImages.debian;
}

/**
 * Builds Tally's image under `name` unless it exists. Only for local names (localhost/...): any
 * other name is the user's image in a registry, pulled like the other images.
 */
export async function ensureTallyImage(
  client: ContainerRuntimeClient,
  name: string,
  options: TallyImageBuild = {},
): Promise<void> {
  if (!name.startsWith("localhost/") || (await client.image.exists(ImageName.fromString(name)))) return;
  const recipe = await shippedRecipe(options.recipeDir);
  if (recipe === null) {
    throw new TallyStartError(
      `image not found: ${name}; build it with \`make images\` (infra/images/build.sh) in Tally's ` +
        "repository, or name another image (startTally's images.tally option, TALLY_TEST_IMAGE_TALLY); " +
        "this copy of @tally/testing has no image/ folder to build it from",
    );
  }
  // The Node binary goes into a Linux container: only a Linux host's own binary runs there.
  if (process.platform !== "linux" || arch() !== "x64") {
    throw new TallyStartError(
      `image not found: ${name}; @tally/testing builds it with this process's Node binary, which ` +
        `must be Linux x64 (this is ${process.platform} ${arch()}): build it on such a machine and ` +
        "name it with TALLY_TEST_IMAGE_TALLY",
    );
  }
  const env = options.env ?? process.env;
  const base = options.base ?? (await chooseBase(client, env));
  options.onProgress?.(`building Tally's image ${name} on ${base} with Node ${process.version}`);
  const context = await mkdtemp(join(tmpdir(), "tally-image-"));
  try {
    await cp(recipe, context, { recursive: true });
    await copyFile(process.execPath, join(context, "node"));
    await chmod(join(context, "node"), 0o755);
    await chmod(join(context, "tally.mjs"), 0o644);
    await GenericContainer.fromDockerfile(context, "Containerfile")
      .withBuildArgs({ BASE: base })
      .build(name, { deleteOnExit: false });
  } catch (error) {
    if (error instanceof TallyStartError) throw error;
    const why = error instanceof Error ? error.message : String(error);
    throw new TallyStartError(`building Tally's image ${name} on ${base} failed: ${why}`, { cause: error });
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}
