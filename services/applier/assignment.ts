// The member's place in the group: the partitions of the latest assignment (each assignment counted,
// so an older one's loads finishing late change nothing), whether their views are loaded (readiness),
// and stopping, on a drain (stop) or on an error nothing here can retry (fail).
import type { Logger } from "../common/log.ts";
import type { Deferrals, RetryReporter } from "./deferrals.ts";
import { IncarnationError } from "./incarnation.ts";
import { assignedPartitions } from "./metrics.ts";
import type { PartitionViews } from "./partition-views.ts";

export type Seek = (partition: number, offset: bigint) => void;

export class Membership {
  /** Set by stop() or a fatal error: no new chunk starts; the one in flight commits or rolls back. */
  stopping = false;
  fatal: Error | null = null;
  /** Joined the group and loaded the views of the latest assignment: ready to apply. */
  assignmentLoaded = false;
  /** Aborts a retry's backoff on stop: a chunk waiting for a database is abandoned whole. */
  private readonly stopController: AbortController;
  private readonly views: PartitionViews;
  private readonly deferrals: Deferrals;
  private readonly seek: Seek;
  private readonly reportRetry: RetryReporter;
  private readonly logger: Logger;
  private assignment = 0;

  constructor(deps: {
    stopController: AbortController;
    views: PartitionViews;
    deferrals: Deferrals;
    seek: Seek;
    reportRetry: RetryReporter;
    logger: Logger;
  }) {
    this.stopController = deps.stopController;
    this.views = deps.views;
    this.deferrals = deps.deferrals;
    this.seek = deps.seek;
    this.reportRetry = deps.reportRetry;
    this.logger = deps.logger;
  }

  /** Drain: the chunk in flight commits (or is abandoned whole); none starts after it. */
  stop(): void {
    this.stopping = true;
    this.stopController.abort();
    this.deferrals.clear();
  }

  /** An error nothing here can retry: stop without moving past the record; the supervisor restarts. */
  fail(error: Error): void {
    this.fatal ??= error;
    this.stop();
  }

  /** Aborted once the member stops, for whatever reason. */
  get stopped(): AbortSignal {
    return this.stopController.signal;
  }

  /** Incarnation errors, exhausted retries and bugs stop the member; a stop while waiting does not. */
  onFailure(error: Error, during: string): void {
    if (this.stopping && !this.fatal && !(error instanceof IncarnationError)) {
      this.logger.info({ during }, "stopped while waiting; nothing of it committed");
      return;
    }
    this.fail(error);
    if (error instanceof IncarnationError) this.logger.error({ problem: error.problem }, error.message);
    else this.logger.error({ err: error, during }, "applier stopping on an error it cannot retry");
  }

  /** On a new assignment: forget partitions lost, load the others and seek them to their stored offsets. */
  async onAssigned(partitions: readonly number[]): Promise<void> {
    const assignment = ++this.assignment;
    this.assignmentLoaded = false;
    assignedPartitions.set(partitions.length);
    this.views.keepOnly(new Set(partitions));
    for (const p of partitions) this.deferrals.forget(p);
    const what = "load the partition";
    try {
      await Promise.all(
        partitions.map(async (p) => {
          // A partition kept across the rebalance keeps its view: had another member advanced it
          // meanwhile, the next write's compare-and-set fails and the view is reloaded then.
          const state = await this.deferrals.inPlace(
            what,
            () => this.views.viewOf(p),
            this.reportRetry(what),
          );
          if (assignment === this.assignment && !this.stopping) this.seek(p, state.nextOffset!);
        }),
      );
    } catch (error) {
      this.onFailure(error as Error, "loading the assigned partitions");
      return;
    }
    if (assignment !== this.assignment) return; // a newer assignment took over
    this.assignmentLoaded = true;
    this.logger.info({ partitions }, "partitions assigned; sought to stored offsets");
  }
}
