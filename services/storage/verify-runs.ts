// verify_runs (ddl.ts, the views database): one row per `tally verify` run, written by the verify
// command and read by the projector's metrics, so a verify on a schedule (a CronJob) shows up in
// Prometheus through a process that is scraped anyway. Neither service imports the other: both
// come here.
import type { Pool } from "../common/pg.ts";

export type VerifyRun = { ok: boolean; failedChecks: string[]; verifyMs: number };

/** Rows kept per topic: the newest; older ones are deleted by the run that writes. */
const runsKept = 1000;

export async function recordVerifyRun(pool: Pool, topic: string, run: VerifyRun): Promise<void> {
  await pool.query(
    `INSERT INTO verify_runs (topic, finished_at, ok, failed_checks, verify_ms)
     VALUES ($1, clock_timestamp(), $2, $3::text[], $4)`,
    [topic, run.ok, run.failedChecks, Math.round(run.verifyMs)],
  );
  await pool.query(
    `DELETE FROM verify_runs WHERE topic = $1 AND finished_at < (
       SELECT finished_at FROM verify_runs WHERE topic = $1 ORDER BY finished_at DESC OFFSET $2 LIMIT 1)`,
    [topic, runsKept - 1],
  );
}

export type VerifyRunsSummary = {
  /** the newest run, null if none */
  last: { ok: boolean; finishedAtSeconds: number } | null;
  /** when the newest run that passed finished, null if none */
  lastSuccessSeconds: number | null;
};

export async function readVerifyRuns(pool: Pool, topic: string): Promise<VerifyRunsSummary> {
  const result = await pool.query<{ ok: boolean; at: number; last_success: number | null }>(
    `SELECT ok, extract(epoch FROM finished_at)::float8 AS at,
            (SELECT extract(epoch FROM max(finished_at))::float8 FROM verify_runs WHERE topic = $1 AND ok) AS last_success
       FROM verify_runs WHERE topic = $1 ORDER BY finished_at DESC LIMIT 1`,
    [topic],
  );
  const row = result.rows[0];
  if (row === undefined) return { last: null, lastSuccessSeconds: null };
  return {
    last: { ok: row.ok, finishedAtSeconds: row.at },
    lastSuccessSeconds: row.last_success,
  };
}
