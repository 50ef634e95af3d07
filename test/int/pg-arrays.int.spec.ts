// Array literals built by hand (common/pg-arrays.ts) against the real server's array input: every
// element comes back as it went in, hostile text included.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../../services/common/pg.ts";
import { arrayLiteral, boolArrayLiteral } from "../../services/common/pg-arrays.ts";
import { migrate } from "../../services/storage/migrate.ts";
import { dropTestStack, type TestStack, testStack } from "../support/stack.ts";

let stack: TestStack;
let pool: Pool;
beforeAll(async () => {
  stack = testStack("pgarrays", { shards: "1" });
  await migrate(stack.config); // creates the shard database
  pool = createPool(stack.config, stack.config.TALLY_PG_SHARDS[0]!, "test", 1);
});
afterAll(async () => {
  await pool.end();
  await dropTestStack(stack);
});

/** What the server read: the elements (NULL as null) and how many there were. */
async function textsRead(literal: string): Promise<(string | null)[]> {
  const { rows } = await pool.query<{ e: string | null }>(
    "SELECT e FROM unnest($1::text[]) WITH ORDINALITY AS u(e, n) ORDER BY n",
    [literal],
  );
  return rows.map((r) => r.e);
}

describe("array literals", () => {
  it("given text with quotes, backslashes, commas, braces, spaces, the word NULL and NULLs, when read by the server, then every element is as written", async () => {
    const values = ['a"b', "c\\d", "e,f", "{g}", " h ", "", "NULL", null, "жетон-1", '\\"', "tab\there"];
    expect(await textsRead(arrayLiteral(values))).toEqual(values);
  });

  it("given backslashes without quotes or NULLs, when read by the server, then they are kept", async () => {
    const values = ["c\\d", "e\\", "\\\\"];
    expect(await textsRead(arrayLiteral(values))).toEqual(values);
  });

  it("given NULLs among text without quotes or backslashes, and NULLs on both sides of a quote, when read by the server, then every element is as written", async () => {
    const plainWithNulls = [null, "a", "NULL", null, "b c"];
    expect(arrayLiteral(plainWithNulls)).toBe('{NULL,"a","NULL",NULL,"b c"}');
    expect(await textsRead(arrayLiteral(plainWithNulls))).toEqual(plainWithNulls);
    const quoteAmongNulls = [null, 'q"', null, "r\\", null];
    expect(await textsRead(arrayLiteral(quoteAmongNulls))).toEqual(quoteAmongNulls);
  });

  it("given plain ids only, when read by the server, then they come back in order (the one-join path)", async () => {
    const values = ["tok-1", "tok-2", "w:3", "x y"];
    expect(arrayLiteral(values)).toBe('{"tok-1","tok-2","w:3","x y"}');
    expect(await textsRead(arrayLiteral(values))).toEqual(values);
  });

  it("given no elements, when read, then the array is empty", async () => {
    expect(await textsRead(arrayLiteral([]))).toEqual([]);
    const { rows } = await pool.query("SELECT cardinality($1::bool[]) AS n", [boolArrayLiteral([])]);
    expect(rows[0].n).toBe(0);
  });

  it("given decimal strings and booleans, when cast to numeric[], bigint[] and bool[], then the values are exact", async () => {
    const amounts = ["0", "-1", "99999999999999999999999999999999999999", "9223372036854775807"];
    const { rows } = await pool.query<{ a: string; b: string; t: boolean[] }>(
      "SELECT array_to_string($1::numeric[], ',') AS a, array_to_string($2::bigint[], ',') AS b, $3::bool[] AS t",
      [
        arrayLiteral(amounts),
        arrayLiteral(["1", "-9223372036854775808"]),
        boolArrayLiteral([true, false, true]),
      ],
    );
    expect(rows[0]!.a).toBe(amounts.join(","));
    expect(rows[0]!.b).toBe("1,-9223372036854775808");
    expect(rows[0]!.t).toEqual([true, false, true]);
  });

  it("given any text without NUL (PostgreSQL text cannot hold it), when read by the server, then it round-trips", async () => {
    // The array input's own characters, often, beside any text at all.
    const special = fc.string({ unit: fc.constantFrom('"', "\\", ",", "{", "}", " ", "N", "U", "L", "a") });
    const anyText = fc.string({ unit: "binary" }).map((s) => s.replaceAll("\0", "").toWellFormed());
    const element = fc.option(fc.oneof(special, anyText), { freq: 8 });
    await fc.assert(
      fc.asyncProperty(fc.array(element, { maxLength: 20 }), async (values) => {
        expect(await textsRead(arrayLiteral(values))).toEqual(values);
      }),
      { numRuns: 200 },
    );
  });
});
