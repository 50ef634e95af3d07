// How a command line ends: the exit codes of `tally` (and of the tools' `tally-tools`).
// 0 done, 1 a check failed (verify, a changed topic incarnation), 2 bad configuration or usage,
// 3 an unexpected error.
import { type Command, CommanderError, InvalidArgumentError } from "commander";
import { IncarnationError } from "../applier/incarnation.ts";
import { ConfigError } from "../common/config.ts";
import { isUnreachable } from "../common/retry.ts";

export function positiveInteger(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer`);
  return n;
}

export async function runProgram(program: Command, argv: string[]): Promise<number> {
  const name = program.name();
  try {
    await program.parseAsync(argv);
    // verify and balance report a failed check through process.exitCode
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    // Wrong credentials are a configuration problem too: one line, exit 2, no stack trace.
    if (error instanceof ConfigError || (error as Error).name === "KafkaJSSASLAuthenticationError") {
      console.error(`${name}: ${(error as Error).message}`);
      return 2;
    }
    // A topic whose incarnation changed is a check that failed, with an operator's decision to make.
    if (error instanceof IncarnationError) {
      console.error(`${name}: ${error.message}`);
      return 1;
    }
    // A dependency that stayed unreachable through the retries: one line, no stack trace to read.
    if (isUnreachable(error)) {
      console.error(
        `${name}: ${(error as Error).message} (a dependency did not answer through the retries; run it again)`,
      );
      return 3;
    }
    console.error(`${name}: ${(error as Error).stack ?? error}`);
    return 3;
  }
}
