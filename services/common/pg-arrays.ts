// Array parameters as PostgreSQL array literals, built in one join. node-postgres turns a JS array
// into a literal by concatenating escaped elements one at a time: for the token states of a chunk
// (five arrays of thousands of elements) that was a tenth of everything an applier allocated
// (issue #13, sampling heap profile). The server parses the same literal either way.
//
// Inside double quotes only `"` and `\` need a backslash (PostgreSQL's array input); every other
// character, commas, braces and spaces included, stands for itself. NULL is the unquoted word.

/** `{"a","b",NULL}` for text, numeric or bigint elements given as strings. */
export function arrayLiteral(values: readonly (string | null)[]): string {
  if (values.length === 0) return "{}";
  let plain = true;
  for (const value of values) {
    if (value === null || value.includes('"') || value.includes("\\")) {
      plain = false;
      break;
    }
  }
  // The common case (validated ids, decimal amounts): one flat string, one allocation.
  if (plain) return `{"${values.join('","')}"}`;
  const parts = new Array<string>(values.length);
  for (let k = 0; k < values.length; k++) {
    const value = values[k]!;
    parts[k] = value === null ? "NULL" : `"${value.replace(/["\\]/g, "\\$&")}"`;
  }
  return `{${parts.join(",")}}`;
}

/** `{t,f}` for boolean elements. */
export function boolArrayLiteral(values: readonly boolean[]): string {
  const parts = new Array<string>(values.length);
  for (let k = 0; k < values.length; k++) parts[k] = values[k] ? "t" : "f";
  return `{${parts.join(",")}}`;
}
