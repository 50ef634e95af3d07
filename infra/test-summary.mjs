// Prints vitest's JSON results (one file or more) as the plain closing line CI reads: "N passed, N failed".
// `--containers <file>`: the container tier's results, counted in the totals and shown apart; when
// the tier did not run, <file without .json>.not-run holds why, and the line says so.
import { existsSync, readFileSync } from "node:fs";

const keys = ["numPassedTests", "numFailedTests", "numPendingTests", "numTodoTests"];
const read = (file) => JSON.parse(readFileSync(file, "utf8"));
const add = (into, one) => {
  for (const key of keys) into[key] += one[key];
};
const zero = () => Object.fromEntries(keys.map((k) => [k, 0]));

const args = process.argv.slice(2);
const containersAt = args.indexOf("--containers");
const containersFile = containersAt >= 0 ? args[containersAt + 1] : null;
const files = containersAt >= 0 ? args.filter((_, i) => i !== containersAt && i !== containersAt + 1) : args;

// Several result files (e.g. the main run and the fault tests) are counted together.
const results = zero();
for (const file of files) add(results, read(file));

let containersNote = "";
let containersFailed = false;
if (containersFile !== null) {
  const notRunFile = containersFile.replace(/\.json$/, ".not-run");
  if (existsSync(containersFile)) {
    const tier = read(containersFile);
    add(results, tier);
    containersNote = `; container tier: ${tier.numPassedTests} passed, ${tier.numFailedTests} failed`;
    containersFailed = tier.numFailedTests > 0 || tier.numPassedTests === 0;
  } else if (existsSync(notRunFile)) {
    containersNote = `; container tier NOT RUN: ${readFileSync(notRunFile, "utf8").trim()}`;
  } else {
    containersNote = "; container tier NOT RUN: it wrote no results (crashed before vitest reported)";
    containersFailed = true;
  }
}
const skipped = results.numPendingTests + results.numTodoTests;
console.log(
  `${results.numPassedTests} passed, ${results.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}${containersNote}`,
);
process.exitCode = results.numFailedTests === 0 && results.numPassedTests > 0 && !containersFailed ? 0 : 1;
