// reprocess's check of a fixed cause: a registry that fails for a moment is asked again, not fatal.
import { describe, expect, it } from "vitest";
import { frame, transferEventSchemaText } from "../../services/common/avro.ts";
import type { SchemaAnswer } from "../../services/common/registry.ts";
import { TransientError } from "../../services/common/retry.ts";
import { SchemaCheck } from "../../services/outcomes/schema-check.ts";

const framed = frame(7, Buffer.from([0]));

function flakySource(failures: number) {
  let asked = 0;
  return {
    get asked() {
      return asked;
    },
    async schemaById(): Promise<SchemaAnswer> {
      asked++;
      if (asked <= failures) throw new TransientError("registry answered 500", "registry");
      return { found: true, schema: transferEventSchemaText, schemaType: "AVRO" };
    },
  };
}

describe("SchemaCheck", () => {
  it("given a registry that fails twice then answers, when a record is checked, then it decodes", async () => {
    const source = flakySource(2);
    expect(await new SchemaCheck(source).check(framed)).toEqual({ decodes: true });
    expect(source.asked).toBe(3);
  });

  it("given a registry that never answers, when a record is checked, then the transient error stops the run", async () => {
    const source = flakySource(Number.POSITIVE_INFINITY);
    await expect(new SchemaCheck(source).check(framed)).rejects.toMatchObject({
      name: "RetriesExhaustedError",
    });
    expect(source.asked).toBe(6);
  }, 30_000);
});
