import { describe, expect, it } from "vitest";
import { ConfigError, configAsExports, loadConfig } from "../../services/common/config.ts";

describe("configuration", () => {
  it("given no TALLY_ variables, when loaded, then everything points at the local stack", () => {
    const config = loadConfig({});
    expect(config.TALLY_KAFKA_BROKERS).toEqual(["127.0.0.1:19092"]);
    expect(config.TALLY_TOPIC).toBe("transfers");
    expect(config.TALLY_PROJECT_REST_PERCENT).toBe(100);
    expect(config.TALLY_PG_SHARDS).toEqual([
      "postgres://postgres@127.0.0.1:5432/tally_shard_0",
      "postgres://postgres@127.0.0.1:5432/tally_shard_1",
    ]);
  });
  it("given the stack's PostgreSQL on 15432, when loaded, then the default URLs use it", () => {
    expect(loadConfig({ TALLY_LOCAL_PG_PORT: "15432" }).TALLY_PG_VIEWS).toBe(
      "postgres://postgres@127.0.0.1:15432/tally_views",
    );
  });
  it.each([
    ["TALLY_PARTITIONS", "many", /TALLY_PARTITIONS="many" is invalid: a whole number from 1 to 1024/],
    ["TALLY_PARTITIONS", "0", /TALLY_PARTITIONS="0" is invalid/],
    ["TALLY_KAFKA_BROKERS", "nohost", /TALLY_KAFKA_BROKERS="nohost" is invalid: host:port/],
    ["TALLY_PG_SHARDS", "postgres://h/bad-name", /TALLY_PG_SHARDS.*database name/],
    ["TALLY_PG_SHARDS", "mysql://h/db", /TALLY_PG_SHARDS.*postgres:\/\/ URL/],
    ["TALLY_PG_VIEWS", "not a url", /TALLY_PG_VIEWS=.* is invalid: not a URL/],
    [
      "TALLY_PG_SHARDS",
      "postgres://h/db_0,,postgres://h/db_2",
      /TALLY_PG_SHARDS=.* is invalid: URL 2: not a URL/,
    ],
    ["TALLY_TOPIC", "no spaces", /TALLY_TOPIC="no spaces" is invalid: a Kafka topic name/],
    ["TALLY_LOG_LEVEL", "loud", /TALLY_LOG_LEVEL/],
    [
      "TALLY_PROJECT_REST_PERCENT",
      "-1",
      /TALLY_PROJECT_REST_PERCENT="-1" is invalid: a whole number from 0 to 1000/,
    ],
    ["TALLY_PROJECT_REST_PERCENT", "1001", /TALLY_PROJECT_REST_PERCENT="1001" is invalid/],
    ["TALLY_PROJECT_REST_PERCENT", "12.5", /TALLY_PROJECT_REST_PERCENT="12.5" is invalid/],
    ["TALLY_BATCH_SIZE", "5", /TALLY_BATCH_SIZE is not a Tally setting/],
  ])("given %s=%s, when loaded, then a ConfigError names the variable", (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });
  it("given a secret that is bad (a line break inside), when reported, then the variable is named and its value is not shown", () => {
    const env = { TALLY_KAFKA_SASL_PASSWORD: "hunter2\nsecond-line" };
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(
      "TALLY_KAFKA_SASL_PASSWORD=(hidden) is invalid: no control characters (a line break inside?)",
    );
    expect(() => loadConfig(env)).not.toThrow(/hunter2|second-line/);
  });
  it("given a URL setting that is bad and holds a password, when reported, then the variable is named and its value is not shown", () => {
    const env = { TALLY_PG_VIEWS: "postgres://tally:pgpass@db:5432/Bad-Name" };
    expect(() => loadConfig(env)).toThrow(
      "TALLY_PG_VIEWS=(not shown: a URL may hold a password) is invalid: a database name of [a-z0-9_] after the host",
    );
    expect(() => loadConfig(env)).not.toThrow(/pgpass/);
  });
  it("given SASL without a password, when loaded, then the error says the password is needed", () => {
    expect(() =>
      loadConfig({ TALLY_KAFKA_SASL_MECHANISM: "scram-sha-512", TALLY_KAFKA_SASL_USERNAME: "u" }),
    ).toThrow(/_PASSWORD are needed/);
  });
  it("given secrets, when printed as exports, then they are masked, URLs' passwords too", () => {
    const env = {
      TALLY_KAFKA_SASL_PASSWORD: "hunter2",
      TALLY_SCHEMA_REGISTRY_PASSWORD: "s3cret",
      TALLY_PG_VIEWS: "postgres://tally:pgpass@db:5432/tally_views",
    };
    const text = configAsExports(loadConfig(env), env).join("\n");
    expect(text).not.toMatch(/hunter2|s3cret|pgpass/);
    expect(text).toContain("export TALLY_KAFKA_SASL_PASSWORD='********'");
    expect(text).toContain("export TALLY_PG_VIEWS='postgres://tally:********@db:5432/tally_views'");
  });
});
