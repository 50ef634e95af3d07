// verify's public surface, for the CLI, the demo and the tests.
export { registerVerifyCommand } from "./command.ts";
export { type CheckResult, checkNames, formatReport, type VerifyReport } from "./report.ts";
export { verify } from "./verify.ts";
