// `tally topics`: the topic with TALLY_PARTITIONS partitions, and the event schema registered
// under `<topic>-value`, which gets FULL_TRANSITIVE compatibility unless it has a level of its own
// (an operator's choice is never overwritten; see docs/schema-evolution.md).
import type { Config } from "../common/config.ts";
import { createKafka } from "../common/kafka.ts";
import {
  createRegistry,
  ensureSubjectCompatibility,
  registerTransferSchema,
  subjectOf,
} from "../common/registry.ts";

export type TopicsReport = {
  topic: string;
  created: boolean;
  partitions: number;
  subject: string;
  schemaId: number;
  /** The subject's compatibility level after the run, and whether this run set it. */
  compatibility: string;
  compatibilitySetByTally: boolean;
};

export async function ensureTopic(config: Config): Promise<{ created: boolean; partitions: number }> {
  const admin = createKafka(config, "admin").admin();
  await admin.connect();
  try {
    const topic = config.TALLY_TOPIC;
    const existing = await admin.listTopics();
    if (!existing.includes(topic)) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic,
            numPartitions: config.TALLY_PARTITIONS,
            replicationFactor: config.TALLY_REPLICATION_FACTOR,
            configEntries: [
              { name: "min.insync.replicas", value: String(Math.min(2, config.TALLY_REPLICATION_FACTOR)) },
            ],
          },
        ],
      });
      return { created: true, partitions: config.TALLY_PARTITIONS };
    }
    const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
    const partitions = metadata?.partitions.length ?? 0;
    if (partitions !== config.TALLY_PARTITIONS) {
      // Shards are partition mod S: a changed partition count would move tokens between shards.
      throw new Error(
        `topic ${topic} has ${partitions} partitions but TALLY_PARTITIONS=${config.TALLY_PARTITIONS}; ` +
          "Tally does not repartition a live topic",
      );
    }
    return { created: false, partitions };
  } finally {
    await admin.disconnect();
  }
}

export async function topics(config: Config): Promise<TopicsReport> {
  const { created, partitions } = await ensureTopic(config);
  const subject = subjectOf(config.TALLY_TOPIC);
  // Before the first registration: a subject that does not exist yet has no level of its own on any
  // registry, so the answer is unambiguous.
  const { level, setByTally } = await ensureSubjectCompatibility(config, subject);
  const schemaId = await registerTransferSchema(config, createRegistry(config));
  return {
    topic: config.TALLY_TOPIC,
    created,
    partitions,
    subject,
    schemaId,
    compatibility: level,
    compatibilitySetByTally: setByTally,
  };
}
