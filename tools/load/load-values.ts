// What the values of a synthetic load look like: seeded randomness (no Math.random, so a seed
// reproduces a run), ids, wallet and token names, assets and amounts.
import { assert } from "../../services/common/assert.ts";
import { amountMax } from "../../services/common/event.ts";

export const loadAssets = ["USD", "EUR", "RBT"] as const;
const assetWeights = [0.5, 0.8, 1]; // cumulative: USD 50 %, EUR 30 %, RBT 20 %

// sfc32 seeded through splitmix32; fast, 128-bit state, good enough for load shapes.
export type Random = { uint32(): number; float(): number; below(n: number): number };

export function createRandom(seed: number): Random {
  let s = seed >>> 0;
  const splitmix = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const uint32 = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) uint32(); // let the seeded state mix before use
  const float = () => uint32() / 2 ** 32;
  return { uint32, float, below: (n) => Math.floor(float() * n) };
}

export const hex = (value: number, digits: number) => value.toString(16).padStart(digits, "0");

/** A v4-shaped uuid: 64 random bits, then the event counter, so ids in a run never collide. */
export function uuidOf(random: Random, counter: number): string {
  const r1 = random.uint32();
  const r2 = random.uint32();
  assert(Number.isSafeInteger(counter) && counter >= 0 && counter < 2 ** 48, "the counter fits 48 bits");
  const variant = 0x8 | (r2 >>> 30);
  return (
    `${hex(r1, 8)}-${hex(r2 & 0xffff, 4)}-4${hex((r2 >>> 16) & 0xfff, 3)}-` +
    `${hex(variant, 1)}${hex((r2 >>> 4) & 0xfff, 3)}-${hex(counter, 12)}`
  );
}

export function randomBigint(random: Random, bits: number): bigint {
  let value = 0n;
  for (let i = 0; i < bits; i += 32) value = (value << 32n) | BigInt(random.uint32());
  return value;
}

// ---- Names. Wallets exercise escaping downstream: quotes, backslashes, commas, non-Latin text.
// Control characters (tab, newline) are invalid event content, so none appear.

const walletTemplates: ((i: number) => string)[] = [
  (i) => `кошелёк-${i}`,
  (i) => `財布-${i}`,
  (i) => `wallet "quoted" ${i}`,
  (i) => `back\\slash-${i}`,
  (i) => `comma,separated-${i}`,
  (i) => `o'brien-${i}`,
  (i) => `محفظة-${i}`,
  (i) => `card-💳-${i}`,
];

export function walletName(index: number): string {
  if (index < walletTemplates.length) return walletTemplates[index]!(index);
  if (index % 5 === 0) return walletTemplates[(index / 5) % walletTemplates.length]!(index);
  return `w-${index}`;
}

export function tokenName(runTag: string, index: number): string {
  // Some non-ASCII keys, so the murmur2 partition is checked on multi-byte UTF-8 too.
  return index % 10 === 9 ? `жетон-${runTag}-${index}` : `tok-${runTag}-${index}`;
}

const twoTo63 = 2n ** 63n;

/** Mostly everyday amounts; some above 2^63; now and then the largest decimal(38). */
export function amountOf(random: Random, tokenIndex: number): bigint {
  const roll = random.float();
  if (tokenIndex === 1 || roll < 0.002) return amountMax;
  if (tokenIndex === 2 || roll < 0.02) return twoTo63 + (randomBigint(random, 128) % (amountMax - twoTo63));
  return BigInt(100 + random.below(1_000_000));
}

export function assetOf(random: Random): string {
  const roll = random.float();
  const index = assetWeights.findIndex((w) => roll < w);
  return loadAssets[index]!;
}
