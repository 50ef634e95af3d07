// The README's "Testing your service against Tally" example is the file the container tier runs,
// character for character: a copy that drifted would be an example nobody runs.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url);
const exampleFile = "test/containers/readme-example.containers.spec.ts";

describe("README example", () => {
  it("given the README, when its tally/testing example is read, then it equals the spec file the tier runs", () => {
    const readme = readFileSync(new URL("README.md", root), "utf8");
    const marker = `<!-- ${exampleFile} -->\n\`\`\`ts\n`;
    const start = readme.indexOf(marker);
    expect(start).toBeGreaterThan(0);
    const body = readme.slice(start + marker.length, readme.indexOf("```\n", start + marker.length));
    expect(body).toBe(readFileSync(new URL(exampleFile, root), "utf8"));
    expect(body).toContain('from "@tally/testing"');
  });
});
