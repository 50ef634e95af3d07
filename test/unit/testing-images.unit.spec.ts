// tally/testing's choices that need no engine: which images run, and what Kafka is told to advertise.
import { describe, expect, it } from "vitest";
import { kafkaEnvironment } from "../../services/testing/components.ts";
import { localImages, publicImages, resolveImages } from "../../services/testing/images.ts";

describe("resolveImages", () => {
  it("given TALLY_TEST_IMAGES=local, when nothing else is set, then the locally built images run", async () => {
    expect(await resolveImages({}, { TALLY_TEST_IMAGES: "local" })).toEqual({
      kafka: localImages.kafka,
      registry: localImages.registry,
      postgres: localImages.postgres,
      tally: localImages.tally,
    });
  });

  it("given an option and a variable, when resolved, then the option wins over the variable and the variable over the default", async () => {
    const images = await resolveImages(
      { kafka: "example.org/kafka:1" },
      {
        TALLY_TEST_IMAGES: "public",
        TALLY_TEST_IMAGE_KAFKA: "ignored/kafka:2",
        TALLY_TEST_IMAGE_POSTGRES: "my/pg:16",
      },
    );
    expect(images).toEqual({
      kafka: "example.org/kafka:1",
      registry: publicImages.registry,
      postgres: "my/pg:16",
      tally: localImages.tally,
    });
  });

  it("given a bad TALLY_TEST_IMAGES, when resolved, then the error names it and the choices", async () => {
    await expect(resolveImages({}, { TALLY_TEST_IMAGES: "remote" })).rejects.toThrow(
      'TALLY_TEST_IMAGES="remote" is invalid: auto, local or public',
    );
  });
});

describe("kafkaEnvironment", () => {
  it("given a host port, when the broker is configured, then the host and the network are told different listeners", () => {
    const env = kafkaEnvironment("127.0.0.1", 40123);
    expect(env.KAFKA_ADVERTISED_LISTENERS).toBe("HOST://127.0.0.1:40123,INTERNAL://kafka:19092");
    expect(env.KAFKA_INTER_BROKER_LISTENER_NAME).toBe("INTERNAL");
    expect(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe("false");
    expect(env.CLUSTER_ID).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});
