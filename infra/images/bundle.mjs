// Bundles the tally command (services/cli/main.ts and everything it imports, dependencies too)
// into one ESM file, tally.mjs, with the event schemas beside it in schemas/: what Tally's image
// runs (infra/images/tally.Containerfile) and what @tally/testing ships to build that image.
//
//   node infra/images/bundle.mjs <out-dir>     (writes <out-dir>/tally.mjs and <out-dir>/schemas/)
//
// esbuild reads the TypeScript sources directly (it strips types as Node does), so no tsc run is
// needed first. The output is deterministic: the same sources give the same bytes, which is what
// infra/images/build.sh hashes to decide whether the image is current.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const out = process.argv[2];
if (!out) {
  console.error("usage: node infra/images/bundle.mjs <out-dir>");
  process.exit(2);
}
const outDir = resolve(out);

// Modules find their schema with new URL("../../schemas/<file>", import.meta.url), relative to
// their place in the repository; in the bundle import.meta.url is tally.mjs, so the URL is made
// relative to it. A module that reads a schema any other way fails the image's own --version check.
const schemaUrl = /new URL\("(?:\.\.\/)+schemas\/([\w.-]+\.avsc)", import\.meta\.url\)/g;
const schemasBesideBundle = {
  name: "schemas-beside-bundle",
  setup(b) {
    b.onLoad({ filter: /\/services\/.*\.ts$/ }, (args) => {
      const text = readFileSync(args.path, "utf8");
      if (!schemaUrl.test(text)) return undefined;
      schemaUrl.lastIndex = 0;
      return {
        contents: text.replace(schemaUrl, 'new URL("./schemas/$1", import.meta.url)'),
        loader: "ts",
      };
    });
  },
};

rmSync(join(outDir, "tally.mjs"), { force: true });
rmSync(join(outDir, "schemas"), { recursive: true, force: true });
mkdirSync(join(outDir, "schemas"), { recursive: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: ["services/cli/main.ts"],
  outfile: join(outDir, "tally.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  // pg loads it only when pg.native is read, which Tally never does.
  external: ["pg-native"],
  // CommonJS dependencies (kafkajs, pg, commander, ...) call require() for Node's built-ins.
  banner: {
    js: 'import { createRequire as __tallyCreateRequire } from "node:module";\nconst require = __tallyCreateRequire(import.meta.url);',
  },
  legalComments: "none",
  logLevel: "warning",
  metafile: true,
  plugins: [schemasBesideBundle],
});
if (result.errors.length > 0) process.exit(1);

for (const file of readdirSync(join(root, "schemas")).filter((f) => f.endsWith(".avsc")).sort())
  copyFileSync(join(root, "schemas", file), join(outDir, "schemas", file));

const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
console.error(`bundle: ${join(out, "tally.mjs")} (${(bytes / 1024).toFixed(0)} KiB) and schemas/`);
