// The layering of .dependency-cruiser.cjs (`make layers`, part of `make check`): a tree of
// fixtures with one forbidden import per rule fails with exactly those violations, allowed imports
// pass, and the real tree has none. Also: applier_offsets is read in one module only.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const config = join(root, ".dependency-cruiser.cjs");
const depcruise = join(root, "node_modules", "dependency-cruiser", "bin", "dependency-cruiser.mjs");

type Violation = { from: string; to: string; rule: { name: string } };

/** depcruise with the real config on `dirs` of `cwd`, reporting as `make layers` does: its exit code. */
async function exitCode(
  cwd: string,
  dirs: string[],
  outputType = "err",
): Promise<{ code: number; stdout: string }> {
  const args = [depcruise, "--config", config, "--output-type", outputType, ...dirs];
  try {
    const { stdout } = await promisify(execFile)(process.execPath, args, {
      cwd,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    if (typeof failed.code !== "number" || failed.stdout === undefined) throw error;
    return { code: failed.code, stdout: failed.stdout };
  }
}

/** The violations depcruise finds, as "rule: from → to", sorted. */
async function violations(cwd: string, dirs: string[]): Promise<string[]> {
  const { stdout } = await exitCode(cwd, dirs, "json");
  const found = (JSON.parse(stdout) as { summary: { violations: Violation[] } }).summary.violations;
  return found.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
}

/** A module importing `imports` (relative to the fixture root), each used so no import is elided. */
function moduleText(file: string, imports: { path: string; typeOnly?: boolean }[]): string {
  const lines = imports.map(({ path, typeOnly }, i) => {
    let spec = relative(dirname(file), path);
    if (!spec.startsWith(".")) spec = `./${spec}`;
    return typeOnly ? `import type { T as T${i} } from "${spec}";` : `import { v as v${i} } from "${spec}";`;
  });
  const used = imports.map((x, i) => (x.typeOnly ? `null as unknown as T${i}` : `v${i}`)).join(", ");
  return `${lines.join("\n")}\nexport type T = number;\nexport const v = [${used}].length;\n`;
}

const fixtureRoot = mkdtempSync(join(tmpdir(), "tally-layers-"));
afterAll(() => rmSync(fixtureRoot, { recursive: true, force: true }));

/** file → what it imports. The allowed imports come first, then one forbidden import per rule. */
const fixture: Record<string, { path: string; typeOnly?: boolean }[]> = {
  // allowed: down the layers, within a folder, testing → verify/projector/producer, cli and tools → anything
  "services/common/ok.ts": [],
  "services/storage/ok.ts": [{ path: "services/common/ok.ts" }],
  "services/applier/ok.ts": [{ path: "services/storage/ok.ts" }, { path: "services/common/ok.ts" }],
  "services/applier/command.ts": [{ path: "services/applier/ok.ts" }],
  "services/projector/ok.ts": [{ path: "services/storage/ok.ts" }],
  "services/projector/commands.ts": [{ path: "services/projector/ok.ts" }],
  "services/verify/ok.ts": [{ path: "services/storage/ok.ts" }],
  "services/producer/ok.ts": [{ path: "services/common/ok.ts" }],
  "services/testing/ok.ts": [
    { path: "services/verify/ok.ts" },
    { path: "services/projector/ok.ts" },
    { path: "services/producer/ok.ts" },
  ],
  "services/cli/main.ts": [
    { path: "services/applier/command.ts" },
    { path: "services/projector/commands.ts" },
    { path: "services/applier/ok.ts" },
  ],
  "tools/ok.ts": [
    { path: "services/cli/main.ts" },
    { path: "services/applier/ok.ts" },
    { path: "services/testing/ok.ts" },
  ],
  // forbidden
  "services/common/up.ts": [{ path: "services/storage/ok.ts" }],
  "services/storage/up.ts": [{ path: "services/applier/ok.ts" }],
  "services/applier/uses-command.ts": [{ path: "services/applier/command.ts", typeOnly: true }],
  "services/projector/uses-cli.ts": [{ path: "services/cli/main.ts" }],
  "services/verify/uses-tools.ts": [{ path: "tools/ok.ts" }],
  "services/producer/uses-projector.ts": [{ path: "services/projector/ok.ts" }],
  "services/projector/uses-applier.ts": [{ path: "services/applier/ok.ts", typeOnly: true }],
  "services/verify/uses-projector.ts": [{ path: "services/projector/ok.ts" }],
  "services/testing/uses-applier.ts": [{ path: "services/applier/ok.ts" }],
  "services/topics/circle-a.ts": [{ path: "services/topics/circle-b.ts" }],
  "services/topics/circle-b.ts": [{ path: "services/topics/circle-a.ts" }],
};

for (const [file, imports] of Object.entries(fixture)) {
  mkdirSync(join(fixtureRoot, dirname(file)), { recursive: true });
  writeFileSync(join(fixtureRoot, file), moduleText(file, imports));
}
writeFileSync(join(fixtureRoot, "tsconfig.json"), readFileSync(join(root, "tsconfig.json")));

describe("the layering linter (.dependency-cruiser.cjs)", () => {
  it("fails on each forbidden import, type-only ones too, and on a circle; passes the allowed ones", async () => {
    const { code, stdout } = await exitCode(fixtureRoot, ["services", "tools"]);
    expect(code).not.toBe(0); // what fails `make layers`, and so `make check`
    expect(stdout).toContain("no-circular");
    expect(await violations(fixtureRoot, ["services", "tools"])).toEqual(
      [
        "common-imports-nothing-above: services/common/up.ts → services/storage/ok.ts",
        "storage-imports-no-service: services/storage/up.ts → services/applier/ok.ts",
        "services-not-command-layer: services/applier/uses-command.ts → services/applier/command.ts",
        "services-not-command-layer: services/projector/uses-cli.ts → services/cli/main.ts",
        "services-not-tools: services/verify/uses-tools.ts → tools/ok.ts",
        "producer-stands-alone: services/producer/uses-projector.ts → services/projector/ok.ts",
        "no-cross-service: services/producer/uses-projector.ts → services/projector/ok.ts",
        "projector-not-applier: services/projector/uses-applier.ts → services/applier/ok.ts",
        "no-cross-service: services/projector/uses-applier.ts → services/applier/ok.ts",
        "no-cross-service: services/verify/uses-projector.ts → services/projector/ok.ts",
        "testing-uses-verify-projector-producer: services/testing/uses-applier.ts → services/applier/ok.ts",
        "no-circular: services/topics/circle-a.ts → services/topics/circle-b.ts",
      ].sort(),
    );
  }, 120_000);

  it("finds no violation in the repository's services and tools", async () => {
    expect(await violations(root, ["services", "tools"])).toEqual([]);
  }, 120_000);
});

/** Every .ts file under `dir` but dist/ and node_modules/, relative to the repository. */
function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((f) => !/(^|\/)(dist|node_modules)\//.test(f));
}

describe("applier_offsets", () => {
  it("is read (FROM or JOIN) in storage/applier-offsets.ts alone", () => {
    const readers = [...sources("services"), ...sources("tools")].filter((f) =>
      /\b(FROM|JOIN)\s+applier_offsets\b/i.test(readFileSync(join(root, f), "utf8")),
    );
    expect(readers).toEqual(["services/storage/applier-offsets.ts"]);
  });
});
