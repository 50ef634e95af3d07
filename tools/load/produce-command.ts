// `tally produce`: a realistic synthetic load sent to the topic, with the outcome a correct pipeline
// must report (applied, duplicates, rejected by reason), so a run can be checked independently.
import { randomInt } from "node:crypto";
import { Presets, SingleBar } from "cli-progress";
import { type Command, InvalidArgumentError } from "commander";
import { assert } from "../../services/common/assert.ts";
import { type Config, loadConfig } from "../../services/common/config.ts";
import { sleep } from "../../services/common/retry.ts";
import {
  batchMessagesMaxDefault,
  problemsText,
  type SendResult,
  TransferProducer,
} from "../../services/producer/producer.ts";
import { ResendingSender } from "../../services/producer/resending-sender.ts";
import { ensureTopic } from "../../services/topics/topics.ts";
import { createLoad, type LoadOutcome, loadEventsMax } from "./load.ts";

export type ProduceOptions = {
  events: number;
  tokens?: number;
  wallets?: number;
  duplicateRate?: number;
  doubleSpendRate?: number;
  /** absent: a random one, reported in the summary so the run can be repeated */
  seed?: number;
  rateEventsPerSecond?: number;
  batchMessagesMax?: number;
  /** "auto": a bar when stderr is a terminal, else a line every few seconds */
  progress?: "auto" | "off";
  /** the end of the occurred_at range; now by default */
  nowMs?: number;
};

export type ProduceSummary = {
  topic: string;
  schemaId: number;
  seed: number;
  sent: number;
  eventsPerPartition: number[];
  expected: LoadOutcome;
  elapsedMs: number;
  eventsPerSecond: number;
  /** events sent again after failed sends: up to this many extra records, each a duplicate or a rejection */
  resent: number;
};

export const produceEventsDefault = 200_000;
// One send being transmitted while the next is generated and encoded: two chunks in memory at most.
const sendsInFlightMax = 2;
// A failed send (a broker gone, a leader moving) is resent on a new producer, a few times per run.
const resendsMax = 5;
const resendBackoffMs = 1_000;
const progressLineIntervalMs = 5_000;
// With a rate limit, chunks are small enough that the pace is smooth (about ten sends a second).
const pacedSendsPerSecond = 10;

export const defaultTokensFor = (events: number) => Math.max(1, Math.floor(events / 20));
export const defaultWalletsFor = (tokens: number) => Math.max(2, Math.floor(tokens / 5));

export async function produceCommand(config: Config, options: ProduceOptions): Promise<ProduceSummary> {
  const seed = options.seed ?? randomInt(0, 2 ** 32);
  const tokens = options.tokens ?? defaultTokensFor(options.events);
  const load = createLoad({
    events: options.events,
    tokens,
    wallets: options.wallets ?? defaultWalletsFor(tokens),
    duplicateRate: options.duplicateRate ?? 0,
    doubleSpendRate: options.doubleSpendRate ?? 0,
    seed,
    nowMs: options.nowMs ?? Date.now(),
  });
  const batchMessagesMax = options.batchMessagesMax ?? batchMessagesMaxDefault;
  const rate = options.rateEventsPerSecond;
  const chunkEventsMax = rate
    ? Math.max(1, Math.min(batchMessagesMax, Math.ceil(rate / pacedSendsPerSecond)))
    : batchMessagesMax;

  await ensureTopic(config);
  const sender = new ResendingSender(
    () => new TransferProducer(config, { batchMessagesMax, clientIdSuffix: "produce" }),
    {
      inFlightMax: sendsInFlightMax,
      resendsMax,
      backoffMs: resendBackoffMs,
      onResend: (error, events, resend) =>
        process.stderr.write(
          `produce: a send failed (${(error as Error).message}); sending the last ${events} events again ` +
            `on a new producer (resend ${resend} of at most ${resendsMax}); copies that had landed end as duplicates\n`,
        ),
    },
  );
  await sender.connect();
  const producer = sender.current;
  const progress = createProgress(options.events, options.progress ?? "auto");
  const eventsPerPartition = new Array<number>(producer.partitionCount).fill(0);
  const startedMs = performance.now();
  let sent = 0;
  const account = (results: SendResult[]) => {
    for (const result of results) {
      // The generator only makes well-formed events; a refused one is a bug here, not bad input.
      assert(result.ok, `generated event refused: ${result.ok ? "" : problemsText(result.problems)}`);
      eventsPerPartition[result.partition] = (eventsPerPartition[result.partition] ?? 0) + 1;
    }
    sent += results.length;
    progress.update(sent, performance.now() - startedMs);
  };
  try {
    let generated = 0;
    for (const chunk of load.chunks(chunkEventsMax)) {
      for (const results of await sender.send(chunk)) account(results);
      generated += chunk.length;
      const aheadMs = rate ? startedMs + (generated / rate) * 1000 - performance.now() : 0;
      if (aheadMs > 0) await sleep(aheadMs);
    }
    for (const results of await sender.flush()) account(results);
  } finally {
    progress.stop();
    await sender.disconnect();
  }
  assert(sent === options.events, "every generated event was sent");
  const elapsedMs = performance.now() - startedMs;
  return {
    topic: producer.topic,
    schemaId: producer.schemaId,
    seed,
    sent,
    eventsPerPartition,
    expected: load.outcome,
    elapsedMs,
    eventsPerSecond: Math.round((sent * 1000) / Math.max(1, elapsedMs)),
    resent: sender.resentEvents,
  };
}

type Progress = { update(sent: number, elapsedMs: number): void; stop(): void };

function createProgress(total: number, mode: "auto" | "off"): Progress {
  if (mode === "off") return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new SingleBar(
      {
        stream: process.stderr,
        format: "produce [{bar}] {percentage}% {value}/{total} events, {speed} events/s, eta {eta_formatted}",
        hideCursor: true,
      },
      Presets.shades_classic,
    );
    bar.start(total, 0, { speed: 0 });
    return {
      update: (sent, elapsedMs) =>
        bar.update(sent, { speed: Math.round((sent * 1000) / Math.max(1, elapsedMs)) }),
      stop: () => bar.stop(),
    };
  }
  let lastLineMs = 0;
  return {
    update(sent, elapsedMs) {
      if (elapsedMs - lastLineMs < progressLineIntervalMs && sent < total) return;
      lastLineMs = elapsedMs;
      const speed = Math.round((sent * 1000) / Math.max(1, elapsedMs));
      process.stderr.write(`produce: ${sent}/${total} events, ${speed} events/s\n`);
    },
    stop() {},
  };
}

export function formatProduceSummary(summary: ProduceSummary): string[] {
  const { expected: e } = summary;
  const partitions = summary.eventsPerPartition.map((n, p) => `${p}=${n}`).join(" ");
  return [
    `produce: ${summary.sent} events to ${summary.topic} in ${(summary.elapsedMs / 1000).toFixed(1)} s, ` +
      `${summary.eventsPerSecond} events/s; seed ${summary.seed}, schema id ${summary.schemaId}`,
    `  per partition: ${partitions}`,
    `  expected: applied ${e.applied} (mints ${e.mints}, moves ${e.moves}, burns ${e.burns}, ` +
      `${e.batches} multi-token transfers), duplicates ${e.duplicates}, ` +
      `rejected state_conflict ${e.rejected.state_conflict}`,
    ...(summary.resent > 0
      ? [
          `  resent after failed sends: ${summary.resent} events; up to that many more records than expected, ` +
            "each counted as a duplicate (or rejected again, if a copy of a double spend)",
        ]
      : []),
  ];
}

// ---- command line

function integerOption(flag: string, min: number, max: number, what: string) {
  return (text: string): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max)
      throw new InvalidArgumentError(`${flag} must be ${what}`);
    return value;
  };
}

function rateOption(flag: string) {
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value) || value < 0 || value > 0.5)
      throw new InvalidArgumentError(`${flag} must be a number from 0 to 0.5`);
    return value;
  };
}

function positiveNumberOption(flag: string) {
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value) || value <= 0)
      throw new InvalidArgumentError(`${flag} must be a positive number`);
    return value;
  };
}

type ProduceFlags = {
  events: number;
  tokens?: number;
  wallets?: number;
  duplicateRate: number;
  doubleSpendRate: number;
  seed?: number;
  rate?: number;
  batchMessages: number;
  progress: boolean;
};

/** Defines `produce` on the `tally` program; `configOf` is called when the command runs. */
export function registerProduceCommand(
  program: Command,
  configOf: () => Config = () => loadConfig(),
): Command {
  return program
    .command("produce")
    .description(
      "send a realistic synthetic load: mints, chains of moves, optional duplicates and double spends",
    )
    .option(
      "--events <n>",
      "events to send",
      integerOption("--events", 1, loadEventsMax, "a positive integer"),
      produceEventsDefault,
    )
    .option(
      "--tokens <n>",
      "tokens to mint (default: events / 20)",
      integerOption("--tokens", 1, 10_000_000, "a positive integer"),
    )
    .option(
      "--wallets <n>",
      "wallets (default: tokens / 5, at least 2)",
      integerOption("--wallets", 2, 10_000_000, "an integer of at least 2"),
    )
    .option(
      "--duplicate-rate <r>",
      "share of exact re-sends of earlier events (0..0.5)",
      rateOption("--duplicate-rate"),
      0,
    )
    .option(
      "--double-spend-rate <r>",
      "share of moves from an already-spent state (0..0.5)",
      rateOption("--double-spend-rate"),
      0,
    )
    .option(
      "--seed <n>",
      "seed of the generator (default: random, printed)",
      integerOption("--seed", 0, 2 ** 32 - 1, "an integer from 0 to 4294967295"),
    )
    .option("--rate <events/s>", "limit the send rate", positiveNumberOption("--rate"))
    .option(
      "--batch-messages <n>",
      "messages per Kafka produce call",
      integerOption("--batch-messages", 1, 100_000, "an integer from 1 to 100000"),
      batchMessagesMaxDefault,
    )
    .option("--no-progress", "no progress bar or progress lines on stderr")
    .action(async (flags: ProduceFlags, command: Command) => {
      if (flags.duplicateRate + flags.doubleSpendRate > 0.5)
        command.error("error: --duplicate-rate plus --double-spend-rate must be at most 0.5", {
          exitCode: 2,
        });
      const summary = await produceCommand(configOf(), {
        events: flags.events,
        tokens: flags.tokens,
        wallets: flags.wallets,
        duplicateRate: flags.duplicateRate,
        doubleSpendRate: flags.doubleSpendRate,
        seed: flags.seed,
        rateEventsPerSecond: flags.rate,
        batchMessagesMax: flags.batchMessages,
        progress: flags.progress ? "auto" : "off",
      });
      for (const line of formatProduceSummary(summary)) console.log(line);
    });
}
