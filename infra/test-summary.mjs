// Prints vitest's JSON results (one file or more) as the plain closing line CI reads: "N passed, N failed".
// `--containers <file>`: the container tier's results, counted in the totals and shown apart; when
// the tier did not run, <file without .json>.not-run holds why, and the line says so.
// `--user-project <file>`: the verdicts of infra/user-project.sh's steps ("<passed|failed|not run>
// <TAB> <step> <TAB> <note>" lines, then "end"), shown apart, not in the test counts.
import { existsSync, readFileSync } from "node:fs";

const keys = ["numPassedTests", "numFailedTests", "numPendingTests", "numTodoTests"];
const read = (file) => JSON.parse(readFileSync(file, "utf8"));
const add = (into, one) => {
  for (const key of keys) into[key] += one[key];
};
const zero = () => Object.fromEntries(keys.map((k) => [k, 0]));

const args = process.argv.slice(2);
/** The value of `--name <value>`, taken out of args; null when absent. */
const option = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args.splice(at, 2)[1] : null;
};
const containersFile = option("--containers");
const userProjectFile = option("--user-project");
const files = args;

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

let userProjectNote = "";
let userProjectFailed = false;
if (userProjectFile !== null) {
  const lines = existsSync(userProjectFile) ? readFileSync(userProjectFile, "utf8").split("\n") : null;
  const steps = (lines ?? []).filter((l) => l.includes("\t")).map((l) => l.split("\t"));
  const named = (status) => steps.filter(([s]) => s === status);
  const [passed, failed, notRun] = [named("passed"), named("failed"), named("not run")];
  if (lines === null) {
    userProjectNote = "; user project FAILED: it wrote no results";
    userProjectFailed = true;
  } else {
    const whyNot = [...new Set(notRun.map(([, , note]) => note))].join("; ");
    userProjectNote =
      `; user project: ${passed.length} passed, ${failed.length} failed` +
      (failed.length ? ` (${failed.map(([, step]) => step).join(", ")})` : "") +
      (notRun.length ? `, ${notRun.length} NOT RUN: ${whyNot}` : "");
    userProjectFailed = failed.length > 0 || passed.length === 0;
    if (!lines.includes("end")) {
      userProjectNote += " (stopped before its end)";
      userProjectFailed = true;
    }
  }
}
const skipped = results.numPendingTests + results.numTodoTests;
console.log(
  `${results.numPassedTests} passed, ${results.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}${containersNote}${userProjectNote}`,
);
process.exitCode =
  results.numFailedTests === 0 && results.numPassedTests > 0 && !containersFailed && !userProjectFailed ? 0 : 1;
