// JSON-lines logs (pino). Secrets never reach a log line: URLs are masked where they are logged.
import { pino } from "pino";

export type Logger = pino.Logger;

export function createLogger(level: string, name: string): Logger {
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      redact: { paths: ["password", "*.password", "sasl.password"], censor: "********" },
    },
    pino.destination({ dest: 2, sync: false }),
  );
}
