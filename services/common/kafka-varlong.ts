// kafkajs (2.2.4, the client this project uses; no release since 2023) reads a record's timestamp
// delta, a zigzag varlong, with some twenty 64-bit Long objects per record: 7 % of everything an
// applier allocated (issue #13, sampling heap profile). Deltas are milliseconds within one batch,
// a byte or two. This replaces the method on kafkajs' own Decoder with one that reads up to seven
// bytes (49 bits, exact as a double) in number arithmetic and returns one Long; anything longer,
// and any byte past the buffer, goes to kafkajs' method unchanged. Installed once, on import, by
// common/kafka.ts; kafka-varlong.unit checks it against kafkajs' method over the whole 64-bit range.
// kafkajs ships no types for its internals; the two used here are typed where they are used.
// @ts-expect-error TS7016: no declaration file for a kafkajs internal
import DecoderModule from "kafkajs/src/protocol/decoder.js";
// @ts-expect-error TS7016: no declaration file for a kafkajs internal
import LongModule from "kafkajs/src/utils/long.js";

/** Bytes read on the number path: 7 × 7 = 49 bits stay below 2^53. */
const fastBytesMax = 7;

type DecoderLike = { buffer: Buffer; offset: number };
type ReadVarLong = (this: DecoderLike) => unknown;
const Decoder = DecoderModule as { prototype: { readVarLong: ReadVarLong } };
const Long = LongModule as { fromNumber(value: number): unknown };

/** kafkajs' own method, kept for long values and for the property test. */
export const kafkajsReadVarLong: ReadVarLong = Decoder.prototype.readVarLong;

export function readVarLong(this: DecoderLike): unknown {
  const buffer = this.buffer;
  const start = this.offset;
  if (start + fastBytesMax > buffer.length) return kafkajsReadVarLong.call(this);
  let zigzag = 0;
  let scale = 1;
  for (let k = 0; k < fastBytesMax; k++) {
    const byte = buffer[start + k]!;
    zigzag += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      this.offset = start + k + 1;
      // Zigzag: even → n / 2, odd → −(n + 1) / 2; exact below 2^53.
      return Long.fromNumber(zigzag % 2 === 0 ? zigzag / 2 : -(zigzag + 1) / 2);
    }
    scale *= 128;
  }
  return kafkajsReadVarLong.call(this);
}

Decoder.prototype.readVarLong = readVarLong;
