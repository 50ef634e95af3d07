// The pools' connection settings. That keepalive ends a wait on a vanished server was shown with
// real packets dropped (docs/operations.md, "A database that vanishes"): waiting on pg_sleep(60)
// behind an iptables DROP, a client of createPool failed with ETIMEDOUT after 20.0 s, one without
// keepalive was still waiting at 40 s. Here: every pool is made that way.
import pg from "pg";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../services/common/config.ts";
import { createPool, pgKeepAliveIdleMs } from "../../services/common/pg.ts";

type ConnectionSettings = { _keepAlive: boolean; _keepAliveInitialDelayMillis: number };

describe("createPool", () => {
  it("given any pool, when a client is made, then its connection probes a quiet server with TCP keepalive", async () => {
    const pool = createPool(loadConfig({}), "postgres://db/tally_views", "test", 1);
    const options = (pool as unknown as { options: pg.ClientConfig }).options;
    const client = new pg.Client(options) as unknown as { connection: ConnectionSettings };
    expect({
      keepAlive: client.connection._keepAlive,
      delayMs: client.connection._keepAliveInitialDelayMillis,
    }).toEqual({ keepAlive: true, delayMs: pgKeepAliveIdleMs });
    expect(pgKeepAliveIdleMs).toBe(10_000);
    await pool.end();
  });
});
