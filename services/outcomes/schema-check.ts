// Is the cause of an unknown_schema or incompatible_schema rejection fixed? The writer schema its
// frame names is asked for as the applier asks (common/registry.ts): found, Avro, and readable as
// Tally's TransferEvent. One answer per schema id per run; a registry that cannot be asked is asked
// again a few times (a restart, a 5xx), then throws (TransientError) and the run stops before
// producing anything of that page.
import { transferEventType, unframe } from "../common/avro.ts";
import {
  IncompatibleSchemaError,
  UnknownSchemaError,
  type WriterSchemaSource,
  writerTypeOf,
} from "../common/registry.ts";
import { isUnreachable, withRetry } from "../common/retry.ts";
import type { Precheck } from "./redrive-plan.ts";

/** A registry that stays unreachable this long stops the run: reprocess is a command, not a daemon. */
const registryRetry = { attemptsMax: 6, backoffMsMax: 2_000 };

export class SchemaCheck {
  private readonly answers = new Map<number, Precheck>();
  private readonly source: WriterSchemaSource;
  constructor(source: WriterSchemaSource) {
    this.source = source;
  }

  async check(value: Buffer | null): Promise<Precheck> {
    const framed = unframe(value);
    if (framed === null)
      return { decodes: false, reason: "undecodable", detail: "not Confluent-framed Avro" };
    const known = this.answers.get(framed.schemaId);
    if (known !== undefined) return known;
    const answer = await this.ask(framed.schemaId);
    this.answers.set(framed.schemaId, answer);
    return answer;
  }

  private async ask(schemaId: number): Promise<Precheck> {
    try {
      const writer = await withRetry(`ask the registry for schema id ${schemaId}`, registryRetry, () =>
        writerTypeOf(this.source, schemaId),
      );
      if (!writer.equals(transferEventType)) transferEventType.createResolver(writer);
      return { decodes: true };
    } catch (error) {
      if (error instanceof UnknownSchemaError)
        return { decodes: false, reason: "unknown_schema", detail: error.message };
      if (error instanceof IncompatibleSchemaError)
        return { decodes: false, reason: "incompatible_schema", detail: error.message };
      // Not an answer about the schema: the registry was not reachable (through the retries).
      if (isUnreachable(error)) throw error;
      // avsc refuses a resolver: the writer cannot be read as a TransferEvent
      const detail = `schema id ${schemaId} cannot be read as Tally's TransferEvent: ${(error as Error).message}`;
      return { decodes: false, reason: "incompatible_schema", detail };
    }
  }
}
