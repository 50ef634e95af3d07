// The binary COPY writer's uuid field, byte for byte against Node's own hex parse: the server-side
// round trip (copy-binary.int) covers digits and upper case; every hex digit in both cases is here.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BinaryCopyWriter } from "../../services/applier/copy-binary.ts";

/** Header (11 + 4 + 4), then per row an int16 field count and an int32 length before the 16 bytes. */
const firstFieldAt = 19 + 2 + 4;

function uuidBytesOf(text: string): Buffer {
  const payload = new BinaryCopyWriter(1).row().uuid(text).finish();
  expect(payload.readInt32BE(firstFieldAt - 4)).toBe(16);
  return payload.subarray(firstFieldAt, firstFieldAt + 16);
}

const canonical = (hex: string) =>
  `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;

describe("BinaryCopyWriter.uuid", () => {
  it("given 200 random uuids in lower, upper and mixed case, when written, then each holds its 16 bytes", () => {
    for (let k = 0; k < 200; k++) {
      const bytes = randomBytes(16);
      const hex = bytes.toString("hex");
      const cased =
        k % 3 === 0
          ? hex
          : k % 3 === 1
            ? hex.toUpperCase()
            : hex.replace(/[a-f]/g, (c, at) => (at % 2 ? c.toUpperCase() : c));
      expect(uuidBytesOf(canonical(cased))).toEqual(bytes);
    }
  });

  it("given every hex digit in each position, when written, then the nibbles are the digits' values", () => {
    const digits = "0123456789abcdefABCDEF";
    for (const digit of digits) {
      const value = Number.parseInt(digit, 16);
      const bytes = uuidBytesOf(canonical(digit.repeat(32)));
      expect([...bytes]).toEqual(new Array(16).fill(value * 17));
    }
  });

  it("given a non-hex character (ASCII, beyond ASCII, or a dash out of place), when written, then it throws naming it", () => {
    const good = "0123abcd-4567-89ef-ABCD-0123456789ef";
    for (const bad of ["g", "G", " ", "\u00e9", "\u0660", "-"]) {
      const broken = `${good.slice(0, 35)}${bad}`;
      expect(() => uuidBytesOf(broken)).toThrow(`not a hex digit: ${bad}`);
    }
    expect(() => uuidBytesOf("z".repeat(36))).toThrow("not a hex digit: z");
  });
});
