// The bench runs what Tally's image runs: the one esbuild bundle of the tally command
// (infra/images/bundle.mjs), built once per bench run. Run from the TypeScript sources instead,
// every process strips types and resolves some 400 modules at start; on 2 cores that start-up was
// about 0.07 s of CPU per process more than the bundle's, charged to every event of a short case.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../../", import.meta.url).pathname;
const bundleScript = join(root, "infra/images/bundle.mjs");
/** Beside the project's Node; removed and rebuilt by every bench run (sources may have changed). */
export const benchBundleDir = join(root, ".local/bench-bundle");

/** How a bench child process is started: the program, its arguments for a tally command line, env. */
export type TallyLauncher = {
  command: string;
  argsOf: (tallyArgs: readonly string[]) => string[];
  env: Record<string, string>;
};

const nodeFlags = ["--no-warnings=ExperimentalWarning", "--disable-warning=TimeoutNegativeWarning"];
/** What bin/tally gives an applier (see its comment and docs/benchmarks.md, memory); the image too. */
export const applierHeapFlags = ["--max-semi-space-size=16"];

/** Builds the bundle (about a second) and says how to start it, as bin/tally would start the sources. */
export function bundleLauncher(): TallyLauncher {
  execFileSync(process.execPath, [bundleScript, benchBundleDir], { stdio: ["ignore", "ignore", "pipe"] });
  const entry = join(benchBundleDir, "tally.mjs");
  if (!existsSync(entry)) throw new Error(`bench: the bundle was not written to ${entry}`);
  return {
    command: process.execPath,
    argsOf: (tallyArgs) => [
      ...(tallyArgs[0] === "apply" ? applierHeapFlags : []),
      ...nodeFlags,
      entry,
      ...tallyArgs,
    ],
    env: {
      KAFKAJS_NO_PARTITIONER_WARNING: "1",
      // The same cache bin/tally uses: compiled code is reused from the second process on.
      NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(root, ".local/node-compile-cache"),
    },
  };
}

/** bin/tally over the TypeScript sources: what the bench ran before, and what tests and the demo run. */
export function sourceLauncher(): TallyLauncher {
  return { command: join(root, "bin/tally"), argsOf: (tallyArgs) => [...tallyArgs], env: {} };
}
