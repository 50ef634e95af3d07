// SIGTERM and SIGINT become an abort signal: long-running commands finish their current unit of
// work and stop cleanly. A second signal exits at once.
export function abortOnSignals(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (name: string) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`tally: ${name} received; finishing the current batch\n`);
    controller.abort();
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  return controller.signal;
}
