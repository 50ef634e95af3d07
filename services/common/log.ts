// JSON-lines logs (pino). Secrets never reach a log line: URLs are masked where they are logged, and
// as a second guard, password and connection-string fields are redacted and every error's text
// (message, stack, causes, and fields such as a URL error's input) has its URLs' passwords masked.
import { pino } from "pino";
import { maskOneUrl, maskUrlPassword } from "./config.ts";

export type Logger = pino.Logger;

const redactedPaths = [
  "password",
  "*.password",
  "*.*.password",
  "connectionString",
  "*.connectionString",
  "*.*.connectionString",
];

/** Nesting an error serialization may have (causes of causes); deeper values are dropped. */
const errorDepthMax = 8;

// Fields that hold one URL (Node's ERR_INVALID_URL keeps the bad URL in `input`): masked as a whole,
// since a URL that failed to parse may hold a space that would end it in free text.
const wholeUrlKeys = new Set(["input", "url", "href"]);

function maskedStrings(value: unknown, depth: number, key = ""): unknown {
  if (typeof value === "string") return wholeUrlKeys.has(key) ? maskOneUrl(value) : maskUrlPassword(value);
  if (value === null || typeof value !== "object") return value;
  if (depth >= errorDepthMax) return "[too deep]";
  if (Array.isArray(value)) return value.map((item) => maskedStrings(item, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([name, item]) => [name, maskedStrings(item, depth + 1, name)]),
  );
}

/** pino's error serializer, then every string in it masked. Also for `err: String(error)`. */
function maskedError(error: unknown): unknown {
  const serialized = error instanceof Error ? pino.stdSerializers.err(error) : error;
  return maskedStrings(serialized, 0);
}

export function createLogger(
  level: string,
  name: string,
  destination: pino.DestinationStream = pino.destination({ dest: 2, sync: false }),
): Logger {
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      redact: { paths: redactedPaths, censor: "********" },
      serializers: { err: maskedError },
    },
    destination,
  );
}
