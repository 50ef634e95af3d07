// The two kafkajs internals common/kafka-varlong.ts touches (kafkajs ships no types for them).
declare module "kafkajs/src/protocol/decoder.js" {
  const Decoder: { prototype: { readVarLong: (this: { buffer: Buffer; offset: number }) => unknown } };
  export default Decoder;
}
declare module "kafkajs/src/utils/long.js" {
  const Long: { fromNumber(value: number): { value: bigint } };
  export default Long;
}
declare module "kafkajs/src/protocol/encoder.js" {
  /** Only for tests: the bytes kafkajs' producer writes. */
  export default class Encoder {
    buffer: Buffer;
    writeVarLong(value: bigint | number): Encoder;
  }
}
