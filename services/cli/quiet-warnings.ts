// kafkajs 2.2.4 passes a negative timeout to setTimeout, which Node 24 clamps to 1 ms and reports as
// a TimeoutNegativeWarning on stderr: noise with no action for a user. bin/tally
// hides it with a Node flag; an installed `tally` runs node without flags, so it is dropped here.
// Imported by main.ts (before any command runs); every other warning is printed as Node prints it.
const emitWarning = process.emitWarning.bind(process);

process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
  const name = warning instanceof Error ? warning.name : type;
  if (name === "TimeoutNegativeWarning") return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
