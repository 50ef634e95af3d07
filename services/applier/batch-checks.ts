// Where a fetched batch stands against the partition's view, decided before any record of it is
// applied or passed over. kafkajs has no synchronous rebalance listener, so a seek may land after a
// batch was fetched: records below the stored offset are already applied, a batch that starts above
// it is a gap (sought back once), and one that starts at it is checked for the topic's id. Whenever
// records would be passed over, the partition's log is asked first: only its incarnation tells a late
// seek from records lost.
import type { KafkaMessage } from "kafkajs";
import type { Logger } from "../common/log.ts";
import type { Seek } from "./assignment.ts";
import type { Deferrals, RetryReporter } from "./deferrals.ts";
import { incarnationProblem, type LogWindow } from "./incarnation.ts";
import type { PartitionState } from "./partition-state.ts";
import type { PartitionViews } from "./partition-views.ts";
import type { LogInspector } from "./store.ts";

type Heartbeat = () => Promise<void>;

export class BatchChecks {
  private readonly topic: string;
  private readonly log: LogInspector;
  private readonly views: PartitionViews;
  private readonly deferrals: Deferrals;
  private readonly seek: Seek;
  private readonly reportRetry: RetryReporter;
  private readonly logger: Logger;

  constructor(deps: {
    topic: string;
    log: LogInspector;
    views: PartitionViews;
    deferrals: Deferrals;
    seek: Seek;
    reportRetry: RetryReporter;
    logger: Logger;
  }) {
    this.topic = deps.topic;
    this.log = deps.log;
    this.views = deps.views;
    this.deferrals = deps.deferrals;
    this.seek = deps.seek;
    this.reportRetry = deps.reportRetry;
    this.logger = deps.logger;
  }

  /**
   * The batch's records to apply on `state`, from its stored offset on; none when the batch ends here
   * (sought to the stored offset, or the view reloaded). Throws IncarnationError on a changed topic.
   */
  async pendingOf(
    partition: number,
    state: PartitionState,
    messages: readonly KafkaMessage[],
    heartbeat: Heartbeat,
  ): Promise<KafkaMessage[]> {
    const pending = messages.filter((m) => BigInt(m.offset) >= state.nextOffset!);
    if (pending.length === 0) {
      // Fetched before the seek landed, or kafkajs reset an offset it found out of range: only the
      // log's incarnation tells which, so it is checked before anything is passed over.
      if (await this.logHolds(partition, state, heartbeat)) this.seek(partition, state.nextOffset!);
      return [];
    }
    const firstOffset = BigInt(pending[0]!.offset);
    if (firstOffset > state.nextOffset!) {
      if (this.views.gapSeekOf(partition) !== state.nextOffset) {
        this.logger.warn(
          { partition, first_offset: String(firstOffset), stored: String(state.nextOffset) },
          "batch starts above the stored offset; seeking back",
        );
        this.views.rememberGapSeek(partition, state.nextOffset!);
        this.seek(partition, state.nextOffset!);
        return [];
      }
      // The same gap again after seeking back: offsets with no record (transaction markers,
      // compaction) are fine; records deleted before they were applied are not.
      if (!(await this.logHolds(partition, state, heartbeat))) return [];
    } else {
      // kafkajs fetches by the topic's name: after a delete and re-create, records of the new topic
      // come at the old positions. The topic's id, read after this batch was fetched, tells.
      const window = await this.readWindow(partition, heartbeat);
      const problem = topicIdProblem(this.topic, partition, state, window.topicId);
      if (problem !== null) throw problem;
    }
    this.views.forgetGapSeek(partition);
    return pending;
  }

  /** The partition's log now. Kafka away for a moment is transient: retried, then the partition paused. */
  private readWindow(partition: number, heartbeat: Heartbeat): Promise<LogWindow> {
    const read = () => this.log.window(partition);
    const onRetry = this.reportRetry("read the log's offsets", heartbeat);
    return this.deferrals.run(partition, "read the log's offsets", read, onRetry, "read");
  }

  /**
   * Whether the view's offset lies within the partition's log now. When it does not, only the stored
   * offsets may decide: the view may be stale (kept across a rebalance while another member moved
   * the partition on, and retention then deleted what that member applied). The view is reloaded:
   * the load throws IncarnationError if the problem is real; else false, and the batch ends (its
   * records come again and meet the fresh view).
   */
  private async logHolds(partition: number, state: PartitionState, heartbeat: Heartbeat): Promise<boolean> {
    const window = await this.readWindow(partition, heartbeat);
    const stored = { nextOffset: state.nextOffset!, topicId: state.topicId };
    const problem = incarnationProblem({ topic: this.topic, partition }, stored, window);
    if (problem === null) return true;
    if (problem.problem === "topic_id_changed") throw problem;
    this.logger.warn(
      { partition, problem: problem.problem, view_offset: String(state.nextOffset) },
      "the view's offset is outside the log; reloading it from the stored offsets before deciding",
    );
    this.views.dropIfCurrent(partition, state);
    await this.views.viewInBatch(partition, this.reportRetry("load the partition", heartbeat));
    return false;
  }
}

/** Only the topic's id: offsets from an answer that may predate the view's last commit say nothing. */
export function topicIdProblem(
  topic: string,
  partition: number,
  state: PartitionState,
  topicId: string | null,
) {
  if (topicId === null || state.topicId === null || state.topicId === topicId) return null;
  const stored = { nextOffset: state.nextOffset!, topicId: state.topicId };
  const window = { topicId, lowOffset: 0n, highOffset: state.nextOffset! };
  return incarnationProblem({ topic, partition }, stored, window);
}
