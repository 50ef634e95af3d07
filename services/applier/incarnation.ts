// Stored offsets belong to one incarnation of the topic. A topic deleted and re-created, a cluster
// rebuilt, a ledger restored next to another Kafka: the stored offsets then point into a different
// log, and following them would skip records silently (kafkajs resets an out-of-range offset on its
// own). These checks are pure; the applier stops on any of them and an operator decides
// (`tally offsets reset`), because no automatic choice is right for a ledger.

/** What Kafka says of one partition now: its topic's id and the offsets its log holds. */
export type LogWindow = {
  /** Kafka's topic id (base64url, as Kafka prints it); null when the brokers predate KIP-516. */
  topicId: string | null;
  /** the earliest offset still in the log (retention moves it up) */
  lowOffset: bigint;
  /** the offset the next record will get (the high watermark) */
  highOffset: bigint;
};

/** What applier_offsets holds for the partition. */
export type StoredPosition = { nextOffset: bigint; topicId: string | null };

export type IncarnationProblem = "topic_id_changed" | "topic_deleted" | "above_log_end" | "below_log_start";

export class IncarnationError extends Error {
  override name = "IncarnationError";
  readonly problem: IncarnationProblem;
  constructor(problem: IncarnationProblem, message: string) {
    super(message);
    this.problem = problem;
  }
}

const operatorAdvice =
  "nothing was skipped; the applier stops until an operator decides " +
  '(docs/operations.md, "When the topic is not the one the offsets belong to"): ' +
  "`tally offsets show` compares; `tally offsets reset --to-earliest --confirm` goes on from the " +
  "log's start when records were deleted (counted skipped), `--adopt-topic-id` keeps the offsets of a " +
  "mirrored topic; a re-created topic is applied with its own TALLY_GROUP and databases";

/** null when the stored position belongs to this log; else the problem, named for an operator. */
export function incarnationProblem(
  where: { topic: string; partition: number },
  stored: StoredPosition,
  log: LogWindow,
): IncarnationError | null {
  const at = `topic ${where.topic} partition ${where.partition}`;
  if (stored.topicId !== null && log.topicId !== null && stored.topicId !== log.topicId) {
    return new IncarnationError(
      "topic_id_changed",
      `${at}: the stored offsets (next ${stored.nextOffset}) belong to topic id ${stored.topicId}, ` +
        `but the topic now has id ${log.topicId} (deleted and re-created?); ${operatorAdvice}`,
    );
  }
  if (stored.nextOffset > log.highOffset) {
    return new IncarnationError(
      "above_log_end",
      `${at}: the stored next offset ${stored.nextOffset} is above the log's end ${log.highOffset} ` +
        `(a re-created topic or a rebuilt cluster?); ${operatorAdvice}`,
    );
  }
  if (stored.nextOffset < log.lowOffset) {
    return new IncarnationError(
      "below_log_start",
      `${at}: records ${stored.nextOffset}..${log.lowOffset - 1n} were deleted from the log ` +
        `(retention) before they were applied; ${operatorAdvice}`,
    );
  }
  return null;
}
