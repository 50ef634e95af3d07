// The peer's Kafka Connect worker as a child process: spawned through infra/peer/peer.sh (which
// execs the JVM, so the child's pid is the JVM's), watched for its peak RSS, driven over its REST
// API on 127.0.0.1, and stopped. Every wait is bounded; a failure names the worker, the reason,
// and the tail of its log.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { assert } from "../../services/common/assert.ts";
import { sleep } from "../../services/common/retry.ts";
import { cpuSecondsOf } from "./cpu.ts";
import { peerDir } from "./peer-config.ts";
import { peakRssOf } from "./processes.ts";

const rssPollMs = 200;
const restPollMs = 100;
const logTailLines = 30;
const stopTimeoutMs = 30_000;
const requestTimeoutMs = 30_000;

export type Worker = {
  pid: number;
  restUrl: string;
  logPath: string;
  /** epoch ms of the spawn */
  spawnedAtMs: number;
  peakRssBytes: () => number;
  /** user + system CPU seconds of the JVM so far (the last reading once it is gone) */
  cpuSeconds: () => number;
  exited: () => boolean;
  stop: () => Promise<void>;
};

/** The last lines of the worker's log, indented, for error messages. */
export function logTail(logPath: string): string {
  try {
    const lines = readFileSync(logPath, "utf8").trimEnd().split("\n").slice(-logTailLines);
    return `log ${logPath}, last ${lines.length} lines:\n  | ${lines.join("\n  | ")}`;
  } catch {
    return `log ${logPath}: unreadable`;
  }
}

/** Starts `peer.sh worker <properties>`, its output appended to logPath. */
export function startWorker(propertiesPath: string, restPort: number, logPath: string): Worker {
  const log = openSync(logPath, "a");
  const spawnedAtMs = Date.now();
  const child = spawn("bash", [`${peerDir}peer.sh`, "worker", propertiesPath], {
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  assert(child.pid !== undefined, "the Connect worker was spawned");
  const pid = child.pid;
  let peak = 0;
  let cpu = 0;
  let exitCode: number | null = null;
  const exit = new Promise<void>((resolve) => {
    child.on("exit", (code, signal) => {
      exitCode = code ?? (signal ? 128 : -1);
      resolve();
    });
    // bash itself could not start: no exit event follows, so count it as one
    child.on("error", () => {
      exitCode ??= 127;
      resolve();
    });
  });
  const poll = setInterval(() => {
    peak = Math.max(peak, peakRssOf(pid));
    cpu = Math.max(cpu, cpuSecondsOf(pid));
  }, rssPollMs);
  return {
    pid,
    restUrl: `http://127.0.0.1:${restPort}`,
    logPath,
    spawnedAtMs,
    peakRssBytes: () => Math.max(peak, peakRssOf(pid)),
    cpuSeconds: () => Math.max(cpu, cpuSecondsOf(pid)),
    exited: () => exitCode !== null,
    stop: async () => {
      clearInterval(poll);
      peak = Math.max(peak, peakRssOf(pid));
      if (exitCode !== null) return;
      child.kill("SIGTERM");
      const stopped = await Promise.race([exit.then(() => true), sleep(stopTimeoutMs).then(() => false)]);
      if (!stopped) {
        child.kill("SIGKILL");
        await exit;
      }
    },
  };
}

function failure(worker: Worker, reason: string): Error {
  return new Error(`peer: Kafka Connect worker (pid ${worker.pid}) ${reason}\n${logTail(worker.logPath)}`);
}

async function request(worker: Worker, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${worker.restUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
}

/** Polls GET / until the REST API answers; epoch ms of the first answer. */
export async function waitForRest(worker: Worker, timeoutMs: number): Promise<number> {
  const deadlineMs = Date.now() + timeoutMs;
  while (Date.now() < deadlineMs) {
    if (worker.exited()) throw failure(worker, "exited before its REST API answered");
    try {
      const response = await fetch(`${worker.restUrl}/`, { signal: AbortSignal.timeout(restPollMs * 10) });
      if (response.ok) return Date.now();
    } catch {
      // not listening yet
    }
    await sleep(restPollMs);
  }
  throw failure(worker, `did not answer on ${worker.restUrl} within ${timeoutMs} ms`);
}

/** PUT /connectors/<name>/config: creates the connector; epoch ms just before the request. */
export async function createConnector(
  worker: Worker,
  name: string,
  config: Record<string, string>,
): Promise<number> {
  const startedAtMs = Date.now();
  const response = await request(worker, "PUT", `/connectors/${encodeURIComponent(name)}/config`, config);
  if (response.status !== 201 && response.status !== 200)
    throw failure(worker, `refused connector ${name}: HTTP ${response.status} ${await response.text()}`);
  return startedAtMs;
}

type Status = {
  connector?: { state: string; trace?: string };
  tasks?: { id: number; state: string; trace?: string }[];
};

/** Throws when the connector or one of its tasks FAILED (with Connect's own trace); else returns. */
export async function checkConnector(worker: Worker, name: string): Promise<void> {
  if (worker.exited()) throw failure(worker, "exited while the connector ran");
  const response = await request(worker, "GET", `/connectors/${encodeURIComponent(name)}/status`);
  if (response.status === 404) return; // not registered yet: standalone creates it asynchronously
  const status = (await response.json()) as Status;
  const failed = [
    ...(status.connector?.state === "FAILED" ? [`connector: ${status.connector.trace ?? ""}`] : []),
    ...(status.tasks ?? []).filter((t) => t.state === "FAILED").map((t) => `task ${t.id}: ${t.trace ?? ""}`),
  ];
  if (failed.length > 0)
    throw failure(
      worker,
      `connector ${name} failed:\n  ${failed.map((f) => f.split("\n").slice(0, 8).join("\n  ")).join("\n  ")}`,
    );
}
