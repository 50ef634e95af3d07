// The README's "Testing your service against Tally" examples are the files that run, character for
// character: a copy that drifted would be an example nobody runs. The vitest file runs in the
// container tier and, with the node:test file, in a user's project (infra/user-project.sh).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url);

function readmeBlock(file: string): string {
  const readme = readFileSync(new URL("README.md", root), "utf8");
  const marker = `<!-- ${file} -->\n\`\`\`ts\n`;
  const start = readme.indexOf(marker);
  expect(start, `README.md has no block marked <!-- ${file} -->`).toBeGreaterThan(0);
  return readme.slice(start + marker.length, readme.indexOf("```\n", start + marker.length));
}

describe("README examples", () => {
  it.each([
    ["vitest", "test/containers/readme-example.containers.spec.ts"],
    ["node:test", "test/user-project/payments.node-test.ts"],
  ])(
    "given the README, when its %s example is read, then it equals %s, the file that runs",
    (runner, file) => {
      const body = readmeBlock(file);
      expect(body).toBe(readFileSync(new URL(file, root), "utf8"));
      expect(body).toContain('from "@tally/testing"');
      expect(body).toContain(runner === "vitest" ? 'from "vitest"' : 'from "node:test"');
    },
  );
});
