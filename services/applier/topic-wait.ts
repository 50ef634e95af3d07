// An applier started before its topic exists waits for it (not ready meanwhile) instead of dying
// with a protocol error; one whose topic has another partition count than configured refuses to
// start, since a token's partition (and so its shard) would change under it.
import type { Admin } from "kafkajs";
import { ConfigError } from "../common/config.ts";
import type { Logger } from "../common/log.ts";
import { sleep } from "../common/retry.ts";

const topicPollMs = 1_000;

/** true once the topic exists with the expected partitions; false when stopped while waiting. */
export async function waitForTopic(
  admin: Admin,
  topic: string,
  partitionsExpected: number,
  signal: AbortSignal,
  log: Logger,
): Promise<boolean> {
  let announced = false;
  while (!signal.aborted) {
    // A broker away for a moment reads as "not yet": the next poll asks again.
    const topics = await admin.listTopics().catch(() => null);
    if (topics?.includes(topic)) {
      const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
      const partitions = metadata?.partitions.length ?? 0;
      if (partitions !== partitionsExpected) {
        throw new ConfigError(
          `topic ${topic} has ${partitions} partitions but TALLY_PARTITIONS=${partitionsExpected}: ` +
            "a token's partition and shard depend on the count, so Tally does not follow a change",
        );
      }
      if (announced) log.info({ topic }, "topic exists; joining the group");
      return true;
    }
    if (!announced) {
      log.warn({ topic }, "waiting for the topic to be created (`tally topics`); not ready until it exists");
      announced = true;
    }
    await sleep(topicPollMs, signal);
  }
  return false;
}
