// Secure-connection settings: secrets from files, the kafkajs TLS and SASL options, and masking.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, configAsExports, loadConfig } from "../../services/common/config.ts";
import { kafkaSecurityOptions } from "../../services/common/kafka.ts";
import { createLogger } from "../../services/common/log.ts";
import { createPool } from "../../services/common/pg.ts";

const dir = mkdtempSync(join(tmpdir(), "tally-secure-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

// Not a real certificate: only its PEM framing matters to the bundle split.
const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
const scram = {
  TALLY_KAFKA_SASL_MECHANISM: "scram-sha-512",
  TALLY_KAFKA_SASL_USERNAME: "tally",
};

describe("secrets from files", () => {
  it("given TALLY_KAFKA_SASL_PASSWORD_FILE, when loaded, then the password is the file without its newline", () => {
    const config = loadConfig({
      ...scram,
      TALLY_KAFKA_SASL_PASSWORD_FILE: file("kafka.pw", "s3cret-kafka\n"),
    });
    expect(config.TALLY_KAFKA_SASL_PASSWORD).toBe("s3cret-kafka");
  });

  it("given TALLY_SCHEMA_REGISTRY_PASSWORD_FILE, when printed as exports, then the value is masked", () => {
    const env = {
      TALLY_SCHEMA_REGISTRY_USERNAME: "tally",
      TALLY_SCHEMA_REGISTRY_PASSWORD_FILE: file("registry.pw", "s3cret-registry"),
    };
    const config = loadConfig(env);
    expect(config.TALLY_SCHEMA_REGISTRY_PASSWORD).toBe("s3cret-registry");
    const text = configAsExports(config, env).join("\n");
    expect(text).toContain("export TALLY_SCHEMA_REGISTRY_PASSWORD='********'");
    expect(text).not.toContain("s3cret-registry");
  });

  it.each([
    [
      "both the value and the file",
      () => ({ TALLY_KAFKA_SASL_PASSWORD: "x", TALLY_KAFKA_SASL_PASSWORD_FILE: file("both.pw", "y") }),
      /TALLY_KAFKA_SASL_PASSWORD and TALLY_KAFKA_SASL_PASSWORD_FILE are both set/,
    ],
    [
      "a missing file",
      () => ({ TALLY_KAFKA_SASL_PASSWORD_FILE: join(dir, "absent.pw") }),
      /TALLY_KAFKA_SASL_PASSWORD_FILE=".*absent.pw" cannot be read \(ENOENT\)/,
    ],
    [
      "an empty file",
      () => ({ TALLY_KAFKA_SASL_PASSWORD_FILE: file("empty.pw", "\n") }),
      /TALLY_KAFKA_SASL_PASSWORD_FILE=".*empty.pw" is empty/,
    ],
    [
      "a _FILE for a setting that is no secret",
      () => ({ TALLY_TOPIC_FILE: file("topic", "t") }),
      /TALLY_TOPIC_FILE is not a Tally setting/,
    ],
  ])("given %s, when loaded, then a ConfigError says so", (_, env, message) => {
    expect(() => loadConfig(env())).toThrow(ConfigError);
    expect(() => loadConfig(env())).toThrow(message);
  });
});

describe("kafkajs security options", () => {
  it("given no TLS and no SASL, then plaintext without credentials", () => {
    expect(kafkaSecurityOptions(loadConfig({}))).toEqual({ ssl: false });
  });

  it("given TLS without a CA file, then the system's CAs", () => {
    expect(kafkaSecurityOptions(loadConfig({ TALLY_KAFKA_SSL: "true" })).ssl).toBe(true);
  });

  it("given a CA bundle of two certificates, then ca is an array of two PEM strings", () => {
    const bundle = file("bundle.pem", `${pem("AAAA")}junk between\n${pem("BBBB")}`);
    const options = kafkaSecurityOptions(
      loadConfig({ TALLY_KAFKA_SSL: "true", TALLY_KAFKA_SSL_CA_FILE: bundle }),
    );
    expect(options.ssl).toEqual({ ca: [pem("AAAA").trimEnd(), pem("BBBB").trimEnd()] });
  });

  it("given SCRAM settings, then sasl carries mechanism, user and password", () => {
    const options = kafkaSecurityOptions(loadConfig({ ...scram, TALLY_KAFKA_SASL_PASSWORD: "pw" }));
    expect(options.sasl).toEqual({ mechanism: "scram-sha-512", username: "tally", password: "pw" });
  });

  it.each([
    [
      "a CA file without TLS",
      { TALLY_KAFKA_SSL_CA_FILE: "/nonexistent.pem" },
      /TALLY_KAFKA_SSL_CA_FILE is set but TALLY_KAFKA_SSL is false/,
    ],
    [
      "a CA file that cannot be read",
      { TALLY_KAFKA_SSL: "true", TALLY_KAFKA_SSL_CA_FILE: "/nonexistent.pem" },
      /TALLY_KAFKA_SSL_CA_FILE="\/nonexistent.pem" cannot be read \(ENOENT\)/,
    ],
    [
      "a CA file with no PEM certificate (a PKCS12 store by mistake)",
      { TALLY_KAFKA_SSL: "true", TALLY_KAFKA_SSL_CA_FILE: "CA_P12" },
      /holds no PEM certificate/,
    ],
  ])("given %s, then a ConfigError names the setting", (_, env, message) => {
    const resolved = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, v === "CA_P12" ? file("ca.p12", "\u0030\u0082binary") : v]),
    );
    expect(() => kafkaSecurityOptions(loadConfig(resolved))).toThrow(ConfigError);
    expect(() => kafkaSecurityOptions(loadConfig(resolved))).toThrow(message);
  });
});

// Each password is made of the marker words Hunter and Two around the character under test, so
// "neither word appears" proves that no part of it, before or after that character, leaked.
const passwordWords = /Hunter|Two/;
const passwordForms = [
  [
    "a raw @",
    "postgres://tally:Hunter@Two@db:5432/tally_views",
    "postgres://tally:********@db:5432/tally_views",
  ],
  [
    "an encoded @ (%40)",
    "postgres://tally:Hunter%40Two@db:5432/tally_views",
    "postgres://tally:********@db:5432/tally_views",
  ],
  [
    "an encoded , (%2C)",
    "postgres://tally:Hunter%2CTwo@db:5432/tally_views",
    "postgres://tally:********@db:5432/tally_views",
  ],
  [
    "a raw '",
    "postgres://tally:Hunter'Two@db:5432/tally_views",
    "postgres://tally:********@db:5432/tally_views",
  ],
  [
    "?password=",
    "postgres://tally@db:5432/tally_views?application_name=x&password=Hunter'Two",
    "postgres://tally@db:5432/tally_views?application_name=x&password=********",
  ],
] as const;

describe("passwords in URLs, whatever their characters", () => {
  it.each(passwordForms)(
    "given a password with %s, when printed as exports, then it is masked and the rest is kept",
    (_, url, masked) => {
      const env = { TALLY_PG_VIEWS: url };
      const text = configAsExports(loadConfig(env), env).join("\n");
      expect(text).not.toMatch(passwordWords);
      expect(text).toContain(`export TALLY_PG_VIEWS='${masked}'`);
    },
  );

  it("given two shard URLs with passwords, when printed as exports, then each is masked on its own", () => {
    const env = {
      TALLY_PG_SHARDS: `${passwordForms[0][1].replace("tally_views", "s0")},${passwordForms[4][1].replace("tally_views", "s1")}`,
    };
    const text = configAsExports(loadConfig(env), env).join("\n");
    expect(text).not.toMatch(passwordWords);
    expect(text).toContain(
      "export TALLY_PG_SHARDS='postgres://tally:********@db:5432/s0,postgres://tally@db:5432/s1?application_name=x&password=********'",
    );
  });

  it.each(passwordForms)(
    "given a password with %s in a URL whose database name is bad, when loaded, then the error names the variable, not the password",
    (_, url) => {
      const env = { TALLY_PG_VIEWS: url.replace("tally_views", "Tally-Views") };
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(/TALLY_PG_VIEWS.*database name/);
      expect(() => loadConfig(env)).not.toThrow(passwordWords);
    },
  );

  it.each(passwordForms)(
    "given a password with %s next to a bad shard URL, when loaded, then the error names the URL's place, not the password",
    (_, url) => {
      const env = { TALLY_PG_SHARDS: `${url.replace("tally_views", "s0")},mysql://db/s1` };
      expect(() => loadConfig(env)).toThrow(/TALLY_PG_SHARDS.*URL 2: not a postgres:\/\/ URL/);
      expect(() => loadConfig(env)).not.toThrow(passwordWords);
    },
  );

  it("given a raw , in a password, when loaded, then a ConfigError says to write it %2C and shows no part of it", () => {
    const env = { TALLY_PG_SHARDS: "postgres://tally:Hunter,Two@db:5432/s0,postgres://tally:x@db:5432/s1" };
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(/TALLY_PG_SHARDS.*URL 1: .*%2C/);
    expect(() => loadConfig(env)).not.toThrow(passwordWords);
  });

  it.each([
    ["a raw / before the host", "postgres://tally:Hunter/Two@db:5432/tally_views"],
    ["a raw ? before the host", "postgres://tally:12?Hunter@Two/tally_views"],
    ["a raw # after a port-like start", "postgres://tally:12/tally_views#Hunter@Two/x"],
    ["no URL at all", "Hunter Two"],
  ])(
    "given %s, when loaded, then a ConfigError (not a TypeError) names the variable and shows no part of it",
    (_, url) => {
      const env = { TALLY_PG_VIEWS: url };
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(/TALLY_PG_VIEWS/);
      expect(() => loadConfig(env)).not.toThrow(passwordWords);
    },
  );

  it("given a registry URL with credentials in it, when loaded, then a ConfigError points at _USERNAME and _PASSWORD", () => {
    const env = { TALLY_SCHEMA_REGISTRY_URL: "http://tally:HunterTwo@registry:8081/apis/ccompat/v7" };
    expect(() => loadConfig(env)).toThrow(/TALLY_SCHEMA_REGISTRY_URL.*TALLY_SCHEMA_REGISTRY_USERNAME/);
    expect(() => loadConfig(env)).not.toThrow(passwordWords);
  });
});

/** A client as the pool would make it (pg.Pool creates each with its own options), not connected. */
function clientOf(pool: pg.Pool): { ssl: unknown } {
  return new pg.Client((pool as unknown as { options: pg.ClientConfig }).options) as unknown as {
    ssl: unknown;
  };
}

describe("PostgreSQL TLS: TALLY_PG_SSL_MODE is never weakened by a URL", () => {
  it.each(["disable", "allow", "prefer", "require"])(
    "given TALLY_PG_SSL_MODE=verify-full and a URL with sslmode=%s, when loaded, then a ConfigError names both",
    (mode) => {
      const env = {
        TALLY_PG_SSL_MODE: "verify-full",
        TALLY_PG_VIEWS: `postgres://tally:Hunter@Two@db:5432/tally_views?sslmode=${mode}`,
      };
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(
        new RegExp(`TALLY_PG_VIEWS sets sslmode=${mode} .*TALLY_PG_SSL_MODE=verify-full`),
      );
      expect(() => loadConfig(env)).not.toThrow(passwordWords);
    },
  );

  it("given a shard URL with ssl=false or sslrootcert, when loaded, then the error names that URL's place", () => {
    const env = {
      TALLY_PG_SSL_MODE: "require",
      TALLY_PG_SHARDS: "postgres://db/s0,postgres://db/s1?ssl=false,postgres://db/s2?sslrootcert=/tmp/ca.pem",
    };
    expect(() => loadConfig(env)).toThrow(/TALLY_PG_SHARDS URL 2 sets ssl=false /);
    expect(() => loadConfig(env)).toThrow(/TALLY_PG_SHARDS URL 3 sets sslrootcert /);
  });

  it("given a URL whose sslmode says what TALLY_PG_SSL_MODE says, when loaded, then it is accepted", () => {
    const env = {
      TALLY_PG_SSL_MODE: "verify-full",
      TALLY_PG_VIEWS: "postgres://db/tally_views?sslmode=verify-full",
    };
    expect(loadConfig(env).TALLY_PG_VIEWS).toBe("postgres://db/tally_views?sslmode=verify-full");
  });

  it("given verify-full and a URL with sslmode=disable passed to createPool directly, when a client is made, then it verifies", () => {
    const config = loadConfig({ TALLY_PG_SSL_MODE: "verify-full" });
    const pool = createPool(
      config,
      "postgres://db/tally_views?sslmode=disable&application_name=x",
      "test",
      1,
    );
    const client = clientOf(pool);
    expect(client.ssl).toEqual({ rejectUnauthorized: true });
  });

  it("given verify-full with a CA file and a URL with the same sslmode, when a client is made, then the CA is kept", () => {
    const ca = file("pg-ca.pem", pem("CCCC"));
    const config = loadConfig({ TALLY_PG_SSL_MODE: "verify-full", TALLY_PG_SSL_CA_FILE: ca });
    const pool = createPool(config, "postgres://db/tally_views?sslmode=verify-full", "test", 1);
    const client = clientOf(pool);
    expect(client.ssl).toEqual({ rejectUnauthorized: true, ca: pem("CCCC") });
  });

  it("given the conflict, when tally env runs, then it exits 2 naming the variables and no password", () => {
    const env = {
      PATH: process.env.PATH ?? "",
      TALLY_PG_SSL_MODE: "verify-full",
      TALLY_PG_VIEWS: "postgres://tally:Hunter%40Two@db:5432/tally_views?sslmode=disable",
    };
    const main = join(import.meta.dirname, "../../services/cli/main.ts");
    const run = spawnSync(process.execPath, ["--no-warnings", main, "env"], { env, encoding: "utf8" });
    expect({ status: run.status, stdout: run.stdout }).toEqual({ status: 2, stdout: "" });
    expect(run.stderr).toMatch(/TALLY_PG_VIEWS sets sslmode=disable .*TALLY_PG_SSL_MODE=verify-full/);
    expect(run.stderr).not.toMatch(passwordWords);
  });
});

describe("log lines", () => {
  function capture(): { lines: string[]; log: ReturnType<typeof createLogger> } {
    const lines: string[] = [];
    return { lines, log: createLogger("info", "test", { write: (line: string) => lines.push(line) }) };
  }

  it("given an error whose message holds a URL with a password, when logged, then the password is masked", () => {
    const { lines, log } = capture();
    const cause = new Error("GET http://tally:Hunter@Two@registry:8081/x failed");
    log.error({ err: new Error("registry: request failed", { cause }) }, "retrying");
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(passwordWords);
    const { err } = JSON.parse(lines[0]!);
    expect(err.message).toBe("registry: request failed: GET http://tally:********@registry:8081/x failed");
    expect(err.stack).toContain("caused by: Error: GET http://tally:********@registry:8081/x failed");
  });

  it("given a URL that failed to parse (its error keeps the URL as input), when logged, then no part of the password shows", () => {
    const { lines, log } = capture();
    let urlError: unknown;
    try {
      new URL("postgres://tally:Hunter Two@db:port/tally_views");
    } catch (error) {
      urlError = error;
    }
    log.error({ err: urlError }, "bad URL");
    expect(lines[0]).not.toMatch(passwordWords);
    expect(JSON.parse(lines[0]!).err.input).toBe("postgres://tally:********@db:port/tally_views");
  });

  it("given a connection string or a password field, when logged, then neither shows", () => {
    const { lines, log } = capture();
    log.warn(
      { connectionString: "postgres://tally@db/x?password=HunterTwo", pool: { password: "HunterTwo" } },
      "pool",
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(passwordWords);
  });
});
