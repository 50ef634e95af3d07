// @tally/producer's own options: fromEnv reads only its variables, and bad ones are named.
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../services/common/connection-settings.ts";
import { fromEnv, producerSettingsOf } from "../../services/producer/connection.ts";

describe("fromEnv", () => {
  it("given a host service's own TALLY_* variables beside Tally's, when read, then only the producer's count", () => {
    const connection = fromEnv({
      TALLY_KAFKA_BROKERS: "k1:9092, k2:9092",
      TALLY_SCHEMA_REGISTRY_URL: "https://registry:8443/apis/ccompat/v7",
      TALLY_TOPIC: "payments",
      TALLY_PG_SHARDS: "not a url at all", // the service's setting: ignored here
      TALLY_MY_SERVICE_FEATURE: "on", // a host service's own: ignored
    });
    expect(connection).toMatchObject({
      brokers: ["k1:9092", "k2:9092"],
      registryUrl: "https://registry:8443/apis/ccompat/v7",
      topic: "payments",
      tls: false,
    });
    expect(connection.sasl).toBeUndefined();
  });

  it("given nothing set, when read, then the local stack's endpoints and the transfers topic", () => {
    expect(fromEnv({})).toMatchObject({
      brokers: ["127.0.0.1:19092"],
      registryUrl: "http://127.0.0.1:18081/apis/ccompat/v7",
      topic: "transfers",
    });
  });

  it("given SASL and a CA file, when read, then both reach the client settings", () => {
    const settings = producerSettingsOf(
      fromEnv({
        TALLY_KAFKA_SSL: "true",
        TALLY_KAFKA_SSL_CA_FILE: "/etc/ca.pem",
        TALLY_KAFKA_SASL_MECHANISM: "scram-sha-512",
        TALLY_KAFKA_SASL_USERNAME: "svc",
        TALLY_KAFKA_SASL_PASSWORD: "s3cret",
      }),
    );
    expect(settings).toMatchObject({
      TALLY_KAFKA_SSL: true,
      TALLY_KAFKA_SSL_CA_FILE: "/etc/ca.pem",
      TALLY_KAFKA_SASL_MECHANISM: "scram-sha-512",
      TALLY_KAFKA_SASL_USERNAME: "svc",
      TALLY_KAFKA_SASL_PASSWORD: "s3cret",
    });
  });

  it.each([
    [{ TALLY_KAFKA_SASL_MECHANISM: "gssapi" }, /TALLY_KAFKA_SASL_MECHANISM/],
    [{ TALLY_KAFKA_SSL_CA_FILE: "/etc/ca.pem" }, /TALLY_KAFKA_SSL is false/],
    [{ TALLY_KAFKA_SSL: "yes" }, /TALLY_KAFKA_SSL must be true or false/],
    [{ TALLY_RETRY_ATTEMPTS_MAX: "many" }, /TALLY_RETRY_ATTEMPTS_MAX/],
    [{ TALLY_KAFKA_BROKERS: "no-port" }, /brokers/],
    [{ TALLY_SCHEMA_REGISTRY_URL: "http://user:pw@registry" }, /credentials/],
  ])("given %o, when read, then a ConfigError names what is wrong", (env, message) => {
    expect(() => fromEnv(env)).toThrow(ConfigError);
    expect(() => fromEnv(env)).toThrow(message);
  });
});

describe("producerSettingsOf", () => {
  it("given a password, when the error for a bad option is raised, then the message does not hold it", () => {
    const run = () =>
      producerSettingsOf({
        brokers: ["k:9092"],
        registryUrl: "http://r:8081",
        sasl: { mechanism: "plain", username: "", password: "hunter2" },
      });
    expect(run).toThrow(ConfigError);
    expect(run).not.toThrow(/hunter2/);
  });
});
