// Tally's long-running commands (`bin/tally apply`, `bin/tally project`) as child processes of a test:
// their JSON log lines parsed as they come, so that a test can act on the very line it waits for
// (kill, stop or pause the process there) instead of after a sleep.
import { type ChildProcess, spawn } from "node:child_process";
import { repoRoot } from "./stack.ts";
import { waitTimeoutMsDefault, waitUntil, within } from "./wait.ts";

export type LogLine = Record<string, unknown> & { msg?: string };

export type TallyProcess = {
  child: ChildProcess;
  /** the exit code; -1 when a signal ended it */
  exited: Promise<number | null>;
  /** every JSON log line so far, in order */
  lines: LogLine[];
  /** the last 20,000 characters of stderr, for failure messages */
  stderrTail: () => string;
  /** calls `listener` on every later line, synchronously as it is read */
  onLine: (listener: (line: LogLine) => void) => void;
  /** resolves with the first line (so far or later) that `match` accepts; fails if the process exits first */
  waitForLine: (what: string, match: (line: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>;
  /** sends a signal now; false if the process had already exited */
  signal: (signal: NodeJS.Signals) => boolean;
};

export type TallyProcessOptions = {
  /** added to the environment (TALLY_METRICS_PORT, a TALLY_LOG_LEVEL, ...) */
  env?: NodeJS.ProcessEnv;
  /** print stderr when the process exits with a code other than 0 (default true) */
  reportFailure?: boolean;
};

const linesMax = 200_000;

/** `bin/tally <command> <args>` with exactly the given environment (plus PATH and HOME). */
export function startTallyProcess(
  env: NodeJS.ProcessEnv,
  command: string,
  args: string[] = [],
  options: TallyProcessOptions = {},
): TallyProcess {
  const child = spawn(`${repoRoot}bin/tally`, [command, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, ...options.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let tail = "";
  let partial = "";
  const lines: LogLine[] = [];
  const listeners: ((line: LogLine) => void)[] = [];
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    tail = (tail + chunk).slice(-20_000);
    partial += chunk;
    const complete = partial.split("\n");
    partial = complete.pop() ?? "";
    for (const text of complete) {
      if (!text.startsWith("{")) continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue; // not a log line of ours
      }
      if (lines.length < linesMax) lines.push(line);
      for (const listener of listeners) listener(line);
    }
  });
  let exitCode: number | null | undefined;
  // 'close', not 'exit': by then stderr is read to its end, so every line the process wrote is in.
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve(exitCode);
    }),
  );
  if (options.reportFailure !== false)
    exited.then((code) => {
      if (code !== 0 && code !== -1) process.stderr.write(`tally ${command} exited ${code}:\n${tail}\n`);
    });
  return {
    child,
    exited,
    lines,
    stderrTail: () => tail,
    onLine: (listener) => listeners.push(listener),
    waitForLine: async (what, match, timeoutMs) => {
      let found: LogLine | undefined;
      await waitUntil(
        `tally ${command}: ${what}`,
        () => {
          found = lines.find(match);
          if (found) return true;
          if (exitCode !== undefined)
            throw new Error(`tally ${command} exited ${exitCode} before ${what}:\n${tail}`);
          return false;
        },
        { timeoutMs, intervalMs: 20 },
      );
      return found!;
    },
    signal: (signal) => child.exitCode === null && child.signalCode === null && child.kill(signal),
  };
}

/** The "batch committed" lines of an applier: partition, events, next_offset (as bigint). */
export function committedBatches(
  lines: readonly LogLine[],
): { partition: number; events: number; next: bigint }[] {
  return lines
    .filter((l) => l.msg === "batch committed")
    .map((l) => ({
      partition: Number(l.partition),
      events: Number(l.events),
      next: BigInt(String(l.next_offset)),
    }));
}

/**
 * The process's exit code, or a failure with its stderr once `timeoutMs` passed: a process that
 * should finish by itself (--until-caught-up) and does not is a stall to report, not a hang.
 */
export async function exitWithin(p: TallyProcess, timeoutMs = waitTimeoutMsDefault): Promise<number | null> {
  try {
    return await within(p.exited, timeoutMs, "its exit");
  } catch (error) {
    throw new Error(`${(error as Error).message}:\n${p.stderrTail().slice(-4_000)}`);
  }
}
