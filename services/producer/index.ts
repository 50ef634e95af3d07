// @tally/producer: what a service needs to emit transfer events to Tally, and nothing of the rest.

export { avroTypeOf, frame, transferEventSchemaText, unframe } from "../common/avro.ts";
export { ConfigError, type SaslMechanism } from "../common/connection-settings.ts";
export type { EventKind, FieldProblem, TransferEvent } from "../common/event.ts";
export { amountMax, eventProblems, isUuid, kindOf, textLengthMax } from "../common/event.ts";
export { keyPartitioner } from "../common/partitioner.ts";
export { subjectOf } from "../common/registry.ts";
export { tallyVersion } from "../common/version.ts";
export { fromEnv, type ProducerConnection, type ProducerSettings, producerSettingsOf } from "./connection.ts";
export {
  batchBytesMaxDefault,
  batchMessagesMaxDefault,
  type Placement,
  problemsText,
  type RawMessage,
  type SendResult,
  sendEventsMax,
  sendProblems,
  TransferProducer,
  type TransferProducerOptions,
} from "./producer.ts";
export { ResendingSender } from "./resending-sender.ts";
