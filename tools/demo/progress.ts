// The demo's live progress while the appliers and the projector catch up: a bar when stderr is a
// terminal, else a line every few seconds (a log file gets a readable trace, not a bar's redraws).
import { Presets, SingleBar } from "cli-progress";
import type { Config } from "../../services/common/config.ts";
import { createProgressProbe } from "../../services/storage/progress.ts";

const barIntervalMs = 500;
const lineIntervalMs = 5_000;

export type CatchUpProgress = { stop(): Promise<void> };

export async function showCatchUpProgress(config: Config): Promise<CatchUpProgress> {
  const probe = await createProgressProbe(config);
  const bar = process.stderr.isTTY
    ? new SingleBar(
        {
          stream: process.stderr,
          format: "apply  [{bar}] {percentage}% {value}/{total} records, lag {lag}, {speed} records/s",
          hideCursor: true,
        },
        Presets.shades_classic,
      )
    : null;
  const startedMs = performance.now();
  let started = false;
  const tick = () =>
    probe.read().then(
      (p) => {
        const applied = Number(p.appliedOffsets);
        const total = Number(p.highWatermarks);
        const speed = Math.round((applied * 1000) / Math.max(1, performance.now() - startedMs));
        if (bar === null) {
          process.stderr.write(
            `demo: applied ${applied}/${total} records, lag ${p.lagRecords}, ${speed}/s\n`,
          );
          return;
        }
        if (!started) bar.start(total, applied, { lag: p.lagRecords, speed });
        started = true;
        bar.setTotal(total);
        bar.update(applied, { lag: p.lagRecords, speed });
      },
      () => {}, // a missed reading is skipped; the next one comes
    );
  const timer = setInterval(tick, bar === null ? lineIntervalMs : barIntervalMs);
  return {
    async stop() {
      clearInterval(timer);
      if (started) bar?.stop();
      await probe.close();
    },
  };
}
