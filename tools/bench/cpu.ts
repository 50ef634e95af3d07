// CPU seconds per process from Linux's /proc, so the report can say where the machine's time went:
// the appliers, the projector, and the PostgreSQL server (when it runs on this machine).
import { readdirSync, readFileSync } from "node:fs";
import type { Pool } from "../../services/common/pg.ts";

/** Linux reports times in clock ticks of USER_HZ, 100 on every architecture Node supports. */
const userHz = 100;

type Stat = { ppid: number; ownTicks: number; childrenTicks: number };

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statOf(pid: number): Stat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // fields[0] is stat(5)'s field 3 (state): ppid is field 4, utime..cstime fields 14..17.
    const at = (field: number) => Number(fields[field - 3]);
    return { ppid: at(4), ownTicks: at(14) + at(15), childrenTicks: at(16) + at(17) };
  } catch {
    return null; // gone, or no /proc here
  }
}

/** User + system CPU seconds of a live process; 0 once it is gone. */
export function cpuSecondsOf(pid: number): number {
  const stat = statOf(pid);
  return stat === null ? 0 : stat.ownTicks / userHz;
}

/**
 * CPU seconds used so far by the PostgreSQL server behind `pool`: the postmaster, its live
 * children, and the children it has reaped (backends that have exited). null when the server is
 * not a process of this machine (another host, a container) or /proc cannot be read.
 */
export async function postgresCpuSeconds(pool: Pool): Promise<number | null> {
  const { rows } = await pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  const backend = statOf(rows[0]!.pid);
  if (backend === null) return null;
  const postmasterPid = backend.ppid;
  const postmaster = statOf(postmasterPid);
  if (postmaster === null || !commandOf(postmasterPid).startsWith("postgres")) return null;
  let ticks = postmaster.ownTicks + postmaster.childrenTicks;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = statOf(Number(entry));
    if (stat?.ppid === postmasterPid) ticks += stat.ownTicks;
  }
  return ticks / userHz;
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}
