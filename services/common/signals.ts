// SIGTERM and SIGINT become an abort signal: long-running commands finish (or abandon whole) their
// current unit of work and stop cleanly. A second signal exits at once; so does the shutdown bound,
// with code 1, since a drain that did not finish in time is worth noticing.
export type SignalStop = { signal: AbortSignal; dispose: () => void };

export function abortOnSignals(
  shutdownMsMax: number,
  onAbort?: (signal: NodeJS.Signals) => void,
): SignalStop {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    onAbort?.(name);
    controller.abort();
    setTimeout(() => {
      process.stderr.write(`tally: shutdown did not finish within ${shutdownMsMax} ms\n`);
      process.exit(1);
    }, shutdownMsMax).unref();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    },
  };
}
