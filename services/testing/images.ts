// The images startTally runs. Where no image registry answers (these machines), the defaults are
// built locally by `make images` (infra/images/build.sh); where one answers, the public images are
// the defaults. Tally's own image is always built locally: by `make images` in Tally's repository,
// or by @tally/testing itself from the recipe it ships (tally-image.ts). Every image is a setting:
// an option of startTally or a TALLY_TEST_IMAGE_* variable.
import { request } from "node:https";
import { fileURLToPath } from "node:url";
import { tallyVersion } from "../common/version.ts";

export type Images = { kafka: string; registry: string; postgres: string; tally: string };

/** Built by infra/images/build.sh; `debian` and `jre` are only build stages of the others. */
export const localImages = {
  debian: "localhost/tally-debian:bookworm-min",
  jre: "localhost/tally-jre:25",
  postgres: "localhost/tally-postgres:15",
  kafka: "localhost/tally-kafka:4.3.1",
  registry: "localhost/tally-apicurio:3.3.3",
  tally: `localhost/tally:${tallyVersion}`,
} as const;

/** Tally's own image is always built locally: it is the code under test. */
export const publicImages: Images = {
  postgres: "docker.io/library/postgres:15",
  kafka: "docker.io/apache/kafka:4.3.1",
  registry: "docker.io/apicurio/apicurio-registry:3.3.3",
  tally: localImages.tally,
};

export const imageVariables = {
  kafka: "TALLY_TEST_IMAGE_KAFKA",
  registry: "TALLY_TEST_IMAGE_REGISTRY",
  postgres: "TALLY_TEST_IMAGE_POSTGRES",
  tally: "TALLY_TEST_IMAGE_TALLY",
} as const satisfies Record<keyof Images, string>;

const registryProbeTimeoutMs = 3_000;

/** Docker Hub answers 401 to an anonymous /v2/ when it is reachable at all. */
export function imageRegistryAnswers(timeoutMs = registryProbeTimeoutMs): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request("https://registry-1.docker.io/v2/", { method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 401 || res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

export type ImagesMode = "auto" | "local" | "public";

/** TALLY_TEST_IMAGES: auto (public where a registry answers), local or public. */
export function imagesMode(env: NodeJS.ProcessEnv = process.env): ImagesMode {
  const mode = env.TALLY_TEST_IMAGES ?? "auto";
  if (mode !== "auto" && mode !== "local" && mode !== "public")
    throw new Error(`TALLY_TEST_IMAGES=${JSON.stringify(mode)} is invalid: auto, local or public`);
  return mode;
}

/** Options first, then TALLY_TEST_IMAGE_* variables, then the defaults for this machine. */
export async function resolveImages(
  options: Partial<Images> = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<Images> {
  const mode = imagesMode(env);
  const given = (key: keyof Images) => options[key] ?? env[imageVariables[key]];
  const allGiven = (Object.keys(imageVariables) as (keyof Images)[]).every((k) => given(k) !== undefined);
  const usePublic = mode === "public" || (mode === "auto" && !allGiven && (await imageRegistryAnswers()));
  const defaults: Images = usePublic ? publicImages : localImages;
  return {
    kafka: given("kafka") ?? defaults.kafka,
    registry: given("registry") ?? defaults.registry,
    postgres: given("postgres") ?? defaults.postgres,
    tally: given("tally") ?? defaults.tally,
  };
}

// `node services/testing/images.ts` prints the local names for infra/images/build.sh.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [name, image] of Object.entries(localImages)) console.log(`${name}=${image}`);
}
