// Removes what one run of infra/user-project.sh made on the shared local stack: its topic, its
// schema subject and its databases. Run from the repository (its pg and kafkajs), never in the
// user's project; every step is best effort and says what it could not remove.
//
//   node test/user-project/drop.mjs   (reads TALLY_TOPIC, TALLY_KAFKA_BROKERS,
//                                      TALLY_SCHEMA_REGISTRY_URL, TALLY_PG_SHARDS, TALLY_PG_VIEWS)
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";

const env = process.env;
const topic = env.TALLY_TOPIC;
if (!topic?.startsWith("user_project_")) throw new Error(`not a user-project topic: ${topic}`);
const problems = [];

const admin = new Kafka({
  brokers: env.TALLY_KAFKA_BROKERS.split(","),
  clientId: "user-project-drop",
  logLevel: logLevel.NOTHING,
}).admin();
try {
  await admin.connect();
  if ((await admin.listTopics()).includes(topic)) await admin.deleteTopics({ topics: [topic] });
} catch (error) {
  problems.push(`topic ${topic}: ${error.message}`);
} finally {
  await admin.disconnect().catch(() => {});
}

const subject = `${env.TALLY_SCHEMA_REGISTRY_URL}/subjects/${encodeURIComponent(`${topic}-value`)}`;
for (const query of ["", "?permanent=true"]) {
  const answer = await fetch(subject + query, { method: "DELETE" }).catch((error) => error);
  if (answer instanceof Error) problems.push(`subject ${topic}-value: ${answer.message}`);
}

for (const url of [...env.TALLY_PG_SHARDS.split(","), env.TALLY_PG_VIEWS]) {
  const database = decodeURIComponent(new URL(url).pathname.slice(1));
  const maintenance = new URL(url);
  maintenance.pathname = "/postgres";
  const client = new pg.Client({ connectionString: maintenance.toString() });
  try {
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  } catch (error) {
    problems.push(`database ${database}: ${error.message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

if (problems.length > 0) {
  console.error(`user-project: left on the stack:\n  ${problems.join("\n  ")}`);
  process.exitCode = 1;
}
