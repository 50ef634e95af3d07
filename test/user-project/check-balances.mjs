// Asks `tally balance <wallet> --json` (node_modules/.bin/tally: what `npx tally` runs) for every
// wallet of the expected balances produce.mjs printed, and compares: the non-zero balances must be
// exactly the expected ones (a balance that went back to zero may stay listed as 0; a wallet with
// none makes the command exit 1).
//
//   node check-balances.mjs <expected.json> [--wait <seconds>]
//
// With --wait it asks again until they match or the time is up (the appliers and the projector
// are still working through the events); exit 0 when they match, 1 otherwise.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);
const [expectedFile, flag, seconds] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expectedFile, "utf8"));
const deadline = Date.now() + (flag === "--wait" ? Number(seconds) * 1000 : 0);

async function balancesOf(wallet) {
  try {
    const { stdout } = await run("node_modules/.bin/tally", ["balance", wallet, "--json"]);
    return { text: stdout.trim(), document: JSON.parse(stdout) };
  } catch (error) {
    // exit 1 with a document: the wallet has no balances
    const text = String(error.stdout ?? "").trim();
    if (error.code === 1 && text.startsWith("{")) return { text, document: JSON.parse(text) };
    throw new Error(`tally balance ${wallet} failed (${error.code}): ${error.stderr || error.message}`);
  }
}

const nonZero = (document) =>
  Object.fromEntries(document.balances.filter((b) => b.balance !== "0").map((b) => [b.asset, b.balance]));
const same = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

for (let attempt = 1; ; attempt++) {
  const seen = [];
  let mismatches = 0;
  for (const [wallet, want] of Object.entries(expected)) {
    const { text, document } = await balancesOf(wallet);
    const ok = same(nonZero(document), want);
    if (!ok) mismatches += 1;
    seen.push(`  ${ok ? "ok  " : "DIFF"} ${text}${ok ? "" : `   expected ${JSON.stringify(want)}`}`);
  }
  if (mismatches === 0) {
    console.log(`balances: every wallet as expected (tally balance --json, attempt ${attempt}):`);
    console.log(seen.join("\n"));
    process.exit(0);
  }
  if (Date.now() >= deadline) {
    console.error(`balances: ${mismatches} wallet(s) differ from what was produced:`);
    console.error(seen.join("\n"));
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
}
