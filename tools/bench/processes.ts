// The pipeline as a user runs it: `tally apply` and `tally project` as child processes (like the
// demo), each watched for its peak RSS (VmHWM) and its JSON log lines: per-batch phase times from
// the appliers' "batch committed", time spent per round from the projector's "projector: round".
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { ApplierSummary } from "../../services/applier/applier.ts";
import { assert } from "../../services/common/assert.ts";
import { sourceLauncher, type TallyLauncher } from "./bundle.ts";
import { cpuSecondsOf } from "./cpu.ts";

/** bin/tally until a run chooses otherwise (runBench starts the bundle: bundle.ts says why). */
let launcher: TallyLauncher = sourceLauncher();

/** How every later startTally starts its process. */
export function useLauncher(chosen: TallyLauncher): void {
  launcher = chosen;
}
const rssPollMs = 200;
const stderrTailLines = 20;
const batchPhases = ["decode_ms", "validate_ms", "write_ms", "commit_ms"] as const;

/** What `tally apply --json` prints. */
export type ApplierJson = ApplierSummary;

export type ChildReport = {
  role: string;
  pid: number;
  code: number | null;
  peakRssBytes: number;
  /** user + system CPU seconds, as last polled (the final poll interval before exit is missed) */
  cpuSeconds: number;
  stdout: string;
  /** per "batch committed": the sum of its phase times */
  batchMs: number[];
  batchEvents: number[];
  /** epoch ms of the first batch's start and the last batch's commit, from the log times */
  batchSpan: { firstStartMs: number; lastEndMs: number } | null;
  projectMs: number;
  stderrTail: string[];
};

export type Child = {
  role: string;
  pid: number;
  /** ms (performance.now) of the first stdout output: when the child printed its summary */
  firstStdoutMs: number | null;
  done: Promise<ChildReport>;
  stop: () => void;
};

/** VmHWM of a live process in bytes, 0 once it is gone. */
export function peakRssOf(pid: number): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Folds one JSON log line into the report; anything else is kept in a short tail for errors. */
export function absorbLogLine(report: ChildReport, line: string): void {
  let entry: Record<string, unknown> | null = null;
  if (line.startsWith("{")) {
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      entry = null;
    }
  }
  if (entry?.msg === "batch committed") {
    const ms = batchPhases.reduce((sum, phase) => sum + (Number(entry[phase]) || 0), 0);
    report.batchMs.push(ms);
    report.batchEvents.push(Number(entry.events) || 0);
    const endMs = Number(entry.time);
    if (Number.isFinite(endMs)) {
      const span = report.batchSpan ?? { firstStartMs: endMs - ms, lastEndMs: endMs };
      span.firstStartMs = Math.min(span.firstStartMs, endMs - ms);
      span.lastEndMs = Math.max(span.lastEndMs, endMs);
      report.batchSpan = span;
    }
    return;
  }
  if (entry?.msg === "projector: round") {
    report.projectMs += Number(entry.project_ms) || 0;
    return;
  }
  if (entry !== null && Number(entry.level) < 40) return; // info and below: not worth keeping
  report.stderrTail.push(line.slice(0, 2000));
  if (report.stderrTail.length > stderrTailLines) report.stderrTail.shift();
}

/** A report with nothing observed yet. */
export function emptyReport(role: string, pid: number): ChildReport {
  return {
    role,
    pid,
    code: null,
    peakRssBytes: 0,
    cpuSeconds: 0,
    stdout: "",
    batchMs: [],
    batchEvents: [],
    batchSpan: null,
    projectMs: 0,
    stderrTail: [],
  };
}

/** Starts `bin/tally <args>` with the stack's settings and info-level JSON logs on stderr. */
export function startTally(role: string, args: string[], env: Record<string, string>): Child {
  const child = spawn(launcher.command, launcher.argsOf(args), {
    env: { ...process.env, ...launcher.env, ...env, TALLY_LOG_LEVEL: "info", TALLY_METRICS_PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  assert(child.pid !== undefined, `${role} started`);
  const report = emptyReport(role, child.pid);
  const handle: Child = { role, pid: child.pid, firstStdoutMs: null, done: null!, stop: () => {} };
  const poll = setInterval(() => {
    report.peakRssBytes = Math.max(report.peakRssBytes, peakRssOf(report.pid));
    report.cpuSeconds = Math.max(report.cpuSeconds, cpuSecondsOf(report.pid));
  }, rssPollMs);
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    handle.firstStdoutMs ??= performance.now();
    report.stdout += chunk;
  });
  let partial = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) absorbLogLine(report, line);
  });
  handle.stop = () => {
    if (report.code === null) child.kill("SIGTERM");
  };
  handle.done = new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearInterval(poll);
      if (partial !== "") absorbLogLine(report, partial);
      report.code = code ?? (signal ? 128 : -1);
      resolve(report);
    });
  });
  return handle;
}

/** The child's report once it exits; rejects with its stderr tail when it failed. */
export async function finished(child: Child): Promise<ChildReport> {
  const report = await child.done;
  if (report.code !== 0)
    throw new Error(
      `${report.role} (pid ${report.pid}) exited with ${report.code}:\n  ${report.stderrTail.join("\n  ")}`,
    );
  return report;
}

/** The last JSON line of an applier's stdout (`apply --json`). */
export function applierJsonOf(report: ChildReport): ApplierJson {
  const line = report.stdout.trim().split("\n").at(-1) ?? "";
  const parsed = JSON.parse(line) as ApplierJson;
  assert(typeof parsed.applied === "number", `${report.role} printed its --json summary`);
  return parsed;
}
