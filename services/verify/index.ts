// verify's public surface, for the demo, tally/testing and the tests. The command (command.ts) is
// not part of it: the CLI imports it from there.
export { type CheckResult, checkNames, formatReport, type VerifyReport } from "./report.ts";
export { verify } from "./verify.ts";
