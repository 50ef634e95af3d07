// Prints vitest's JSON results (one file or more) as the plain closing line CI reads: "N passed, N failed".
import { readFileSync } from "node:fs";

// Several result files (e.g. the main run and the fault tests) are counted together.
const results = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0 };
for (const file of process.argv.slice(2)) {
  const one = JSON.parse(readFileSync(file, "utf8"));
  for (const key of Object.keys(results)) results[key] += one[key];
}
const skipped = results.numPendingTests + results.numTodoTests;
console.log(`${results.numPassedTests} passed, ${results.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exitCode = results.numFailedTests === 0 && results.numPassedTests > 0 ? 0 : 1;
