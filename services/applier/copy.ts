// Text-format COPY: one round trip for a whole chunk of rows, built in memory first.

import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import type { Client } from "../common/pg.ts";

const escapes: Record<string, string> = {
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\u0000": "\uFFFD",
};
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL must be replaced, it cannot be stored
const needsEscape = /[\\\n\r\t\u0000]/g;

/** A COPY text field; NUL cannot be stored in PostgreSQL text at all, so it becomes U+FFFD. */
export function copyField(value: string | number | bigint | boolean | null): string {
  if (value === null) return "\\N";
  const text = typeof value === "string" ? value : String(value);
  needsEscape.lastIndex = 0;
  return needsEscape.test(text) ? text.replace(needsEscape, (c) => escapes[c]!) : text;
}

/** bytea in COPY text: hex form, its backslash escaped for the COPY layer. */
export function copyBytea(value: Buffer | null): string {
  return value === null ? "\\N" : `\\\\x${value.toString("hex")}`;
}

export function copyLine(fields: string[]): string {
  return `${fields.join("\t")}\n`;
}

/** Streams `text` (complete lines) into `COPY <table> (<columns>) FROM STDIN`. */
export async function copyInto(
  client: Client,
  table: string,
  columns: readonly string[],
  text: string,
): Promise<void> {
  if (text.length === 0) return;
  const stream = client.query(copyFrom(`COPY ${table} (${columns.join(", ")}) FROM STDIN`));
  await pipeline(Readable.from([text]), stream);
}

/** Streams a binary COPY payload (see copy-binary.ts) into the table. */
export async function copyBinaryInto(
  client: Client,
  table: string,
  columns: readonly string[],
  payload: Buffer,
): Promise<void> {
  const stream = client.query(copyFrom(`COPY ${table} (${columns.join(", ")}) FROM STDIN (FORMAT binary)`));
  await pipeline(Readable.from([payload]), stream);
}
