// PostgreSQL connections: one pool per database URL, TLS from configuration, and creation of the
// databases Tally owns (names validated by the config module before they reach CREATE DATABASE).
import { readFileSync } from "node:fs";
import pg from "pg";
import { assert } from "./assert.ts";
import { type Config, databaseNameOf, pgUrlTlsParameters } from "./config.ts";

export type Pool = pg.Pool;
export type Client = pg.PoolClient;

const databaseNamePattern = /^[a-z_][a-z0-9_]{0,62}$/;

function sslOf(config: Config): pg.PoolConfig["ssl"] {
  switch (config.TALLY_PG_SSL_MODE) {
    case "disable":
      return false;
    case "require":
      return { rejectUnauthorized: false };
    case "verify-full":
      return {
        rejectUnauthorized: true,
        ...(config.TALLY_PG_SSL_CA_FILE ? { ca: readFileSync(config.TALLY_PG_SSL_CA_FILE, "utf8") } : {}),
      };
  }
}

/**
 * The URL without the query parameters node-postgres would let override the `ssl` option (it
 * merges a URL's sslmode=disable over ssl, and sslmode=require drops the CA): TALLY_PG_SSL_MODE and
 * TALLY_PG_SSL_CA_FILE decide TLS, whatever URL reaches here. The config module refuses a URL whose
 * TLS parameters disagree with them, so nothing dropped here was meant.
 */
export function withoutTlsParameters(url: string): string {
  const parsed = new URL(url);
  const found = pgUrlTlsParameters.filter((name) => parsed.searchParams.has(name));
  if (found.length === 0) return url;
  for (const name of found) parsed.searchParams.delete(name);
  return parsed.toString();
}

/** Quiet time before a pooled connection's first keepalive probe. */
export const pgKeepAliveIdleMs = 10_000;

export function createPool(config: Config, url: string, applicationName: string, max?: number): Pool {
  const pool = new pg.Pool({
    connectionString: withoutTlsParameters(url),
    ssl: sslOf(config),
    max: max ?? config.TALLY_PG_POOL_MAX,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    // A server that vanishes without a reset (host down, network cut, packets dropped) would leave a
    // client waiting for an answer forever: TCP keepalive probes it once the connection has been
    // quiet this long, and Node probes 10 times a second apart, so the wait ends in about 20 s
    // (ETIMEDOUT, a transient error the caller retries). Data not yet acknowledged is the kernel's
    // retransmission timer's instead, which keepalive does not shorten.
    keepAlive: true,
    keepAliveInitialDelayMillis: pgKeepAliveIdleMs,
  });
  // A server restart surfaces as an 'error' event: on idle clients through the pool, on checked-out
  // clients on the client itself, where an unhandled one would kill the process. The query under
  // way rejects anyway, and that rejection is what the retry loop acts on.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/** The same server, its maintenance database: where CREATE DATABASE runs. */
function maintenanceUrl(url: string): string {
  const u = new URL(url);
  u.pathname = "/postgres";
  return u.toString();
}

export async function ensureDatabase(config: Config, url: string): Promise<boolean> {
  const name = databaseNameOf(url);
  assert(databaseNamePattern.test(name), `database name ${name} was validated by the config module`);
  const client = new pg.Client({
    connectionString: withoutTlsParameters(maintenanceUrl(url)),
    ssl: sslOf(config),
  });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (found.rowCount === 1) return false;
    try {
      await client.query(`CREATE DATABASE "${name}"`);
      return true;
    } catch (error) {
      // Two migrates at once: the other one created it first.
      if ((error as { code?: string }).code === "42P04" || (error as { code?: string }).code === "23505")
        return false;
      throw error;
    }
  } finally {
    await client.end();
  }
}

/**
 * BEGIN for a transaction whose statements are batches of key look-ups (a chunk's tokens, its
 * wallets): thousands of keys joined to a table of any size. At its default costs PostgreSQL
 * answers them with a full scan and a hash join until the table is large (measured on 235,000
 * token states and 3,000 keys: 159-174 ms against 40-46 ms by the primary key, and the look-up
 * 62-68 ms against 21-24), so every chunk cost a pass over the whole table and PostgreSQL's CPU
 * per event grew with the tables. With scans and hash or merge joins disabled for the
 * transaction, each key is one index probe however large the table grows; on a small table the
 * full scan it gives up was cheap anyway. Only this transaction's planning changes (SET LOCAL).
 */
export const beginKeyLookups =
  "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

/** Runs `work` in one transaction on a pooled client: committed if it returns, rolled back if it throws. */
export async function inTransaction<T>(
  pool: Pool,
  work: (client: Client) => Promise<T>,
  begin = "BEGIN",
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
