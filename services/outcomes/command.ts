// `tally transfer`, `tally rejections` and `tally reprocess`: thin shells over this folder's
// library calls. Each prints lines for people, or with --json one JSON document for scripts.
// Exit codes (cli/run-program.ts): 0 done, 1 an unknown transfer id, 2 bad usage, 3 unexpected.
import { type Command, InvalidArgumentError } from "commander";
import { loadConfig } from "../common/config.ts";
import { createLogger } from "../common/log.ts";
import { decodeCursor } from "./cursor.ts";
import { parseSince, type RejectionFilter } from "./filters.ts";
import { toJson } from "./json.ts";
import { reasonsOf } from "./reasons.ts";
import { listRejections, pageLimitMax } from "./rejections.ts";
import { reprocess } from "./reprocess.ts";
import { reasonsHelp, rejectionPageLines, reprocessLines, transferLines } from "./text.ts";
import { transferOutcome } from "./transfer.ts";

type FilterOptions = { reason?: string[]; since?: Date; token?: string; limit?: number; json?: boolean };

/** Commander's parser for a flag: a RangeError of ours becomes a usage error (exit 2). */
function parsed<T>(parse: (text: string, previous: T) => T): (text: string, previous: T) => T {
  return (text, previous) => {
    try {
      return parse(text, previous);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

// Commander passes undefined as `previous` on the flag's first use.
const collectReasons = (text: string, previous: string[]) => {
  const named = text
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r.length > 0);
  reasonsOf(named); // refuses an unknown reason now, as a usage error
  return [...(previous ?? []), ...named];
};

function limitOf(max: number) {
  return (text: string) => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 1 || n > max)
      throw new RangeError(`--limit must be a whole number from 1 to ${max}`);
    return n;
  };
}

function withFilters(command: Command, limitHelp: string, limitMax: number): Command {
  return command
    .option("--reason <reason>", "only this reason (repeat, or separate with commas)", parsed(collectReasons))
    .option(
      "--since <time>",
      "rejected at or after: an ISO 8601 instant, or 30m, 12h, 7d ago",
      parsed((t) => parseSince(t, Date.now())),
    )
    .option("--token <token_id>", "only this token's rejections (undecoded ones by their key)")
    .option("--limit <n>", limitHelp, parsed(limitOf(limitMax)))
    .option("--json", "print one JSON document (offsets, amounts and counts as decimal strings)");
}

function filterOf(
  topic: string,
  options: FilterOptions,
  reasons: RejectionFilter["reasons"],
): RejectionFilter {
  return { topic, reasons, since: options.since ?? null, tokenId: options.token ?? null };
}

export function registerOutcomeCommands(program: Command): Command {
  program
    .command("transfer")
    .description(
      "what became of a transfer across all shards: applied, rejected (and any re-drive), or unknown",
    )
    .argument("<transfer_id>", "the transfer id (a uuid)")
    .option("--json", "print one JSON document (offsets and amounts as decimal strings)")
    .action(async (transferId: string, options: { json?: boolean }) => {
      const outcome = await transferOutcome(loadConfig(), transferId);
      console.log(options.json ? toJson(outcome) : transferLines(outcome).join("\n"));
      if (outcome.status === "unknown") process.exitCode = 1;
    });

  withFilters(
    program
      .command("rejections")
      .description(
        "the rejections across all shards, newest first, a page at a time, with counts per reason",
      ),
    `rows per page (default 50, at most ${pageLimitMax})`,
    pageLimitMax,
  )
    .option("--before <cursor>", "the page after the one that printed this cursor", parsed(decodeCursor))
    .action(async (options: FilterOptions & { before?: ReturnType<typeof decodeCursor> }) => {
      const config = loadConfig();
      const reasons = options.reason && options.reason.length > 0 ? reasonsOf(options.reason) : null;
      const page = await listRejections(config, filterOf(config.TALLY_TOPIC, options, reasons), {
        limit: options.limit ?? 50,
        before: options.before ?? null,
      });
      console.log(options.json ? toJson(page) : rejectionPageLines(page).join("\n"));
    });

  withFilters(
    program
      .command("reprocess")
      .description(
        "produce again the key and bytes of rejections whose cause is fixed, in their original order; each at most once",
      )
      .addHelpText(
        "after",
        `\nBy default unknown_schema and incompatible_schema, and only records that decode now.\nWhy not the others (widen with --reason):\n${reasonsHelp()}`,
      ),
    "re-drive at most this many in this run (default: all)",
    Number.MAX_SAFE_INTEGER,
  )
    .option("--dry-run", "say what would be re-driven and held back; produce and record nothing")
    .action(async (options: FilterOptions & { dryRun?: boolean }) => {
      const config = loadConfig();
      const reasons = reasonsOf(options.reason ?? null);
      const report = await reprocess(config, {
        filter: { ...filterOf(config.TALLY_TOPIC, options, reasons), reasons },
        limit: options.limit ?? null,
        dryRun: options.dryRun === true,
        logger: createLogger(config.TALLY_LOG_LEVEL, "tally-reprocess"),
      });
      console.log(options.json ? toJson(report) : reprocessLines(report).join("\n"));
    });
  return program;
}
