// Secure-connection settings: secrets from files, the kafkajs TLS and SASL options, and masking.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, configAsExports, loadConfig } from "../../services/common/config.ts";
import { kafkaSecurityOptions } from "../../services/common/kafka.ts";

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
