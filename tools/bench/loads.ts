// The bench's loads: the demo's realistic mix from one seed (so every case sees the same events),
// and the user-level transfer shape: N tokens minted into one wallet, then moved under one batch_id.
import type { TransferEvent } from "../../services/common/event.ts";
import type { LoadOptions } from "../load/load.ts";
import { createRandom, uuidOf } from "../load/load-values.ts";
import { defaultTokensFor, defaultWalletsFor } from "../load/produce-command.ts";

/** The demo's rates: a few exact re-sends and double spends, as real traffic has. */
export const benchRates = { duplicateRate: 0.01, doubleSpendRate: 0.005 } as const;

export function benchLoad(events: number, seed: number, nowMs: number, hotWalletShare = 0): LoadOptions {
  const tokens = defaultTokensFor(events);
  return {
    events,
    tokens,
    wallets: Math.max(3, defaultWalletsFor(tokens)),
    ...benchRates,
    seed,
    nowMs,
    ...(hotWalletShare > 0 ? { hotWalletShare } : {}),
  };
}

/** Records by outcome: what a correct pipeline reports for a load, and what one counted. */
export type Expected = { applied: number; duplicates: number; rejected: number };

export type UserTransfer = {
  batchId: string;
  fromWallet: string;
  toWallet: string;
  asset: string;
  mints: TransferEvent[];
  moves: TransferEvent[];
  /** the receiver's balance once every move is visible */
  totalAmount: bigint;
};

/** N fresh tokens minted to one wallet, then all moved to another under one batch_id. */
export function userTransfer(tag: string, moves: number, seed: number, nowMs: number): UserTransfer {
  const random = createRandom(seed);
  let counter = 0;
  const id = () => uuidOf(random, counter++);
  const batchId = id();
  const fromWallet = `bench-user-${tag}-from`;
  const toWallet = `bench-user-${tag}-to`;
  const asset = "USD";
  const mints: TransferEvent[] = [];
  const transfers: TransferEvent[] = [];
  let totalAmount = 0n;
  for (let k = 0; k < moves; k++) {
    const mintId = id();
    const moveId = id();
    const amount = BigInt(100 + k);
    const common = { token_id: `ut-${tag}-${k}`, asset, amount, occurred_at: nowMs };
    mints.push({
      ...common,
      transfer_id: mintId,
      batch_id: null,
      from_wallet: null,
      to_wallet: fromWallet,
      prev_state: null,
      next_state: `st-${mintId}`,
    });
    transfers.push({
      ...common,
      transfer_id: moveId,
      batch_id: batchId,
      from_wallet: fromWallet,
      to_wallet: toWallet,
      prev_state: `st-${mintId}`,
      next_state: `st-${moveId}`,
    });
    totalAmount += amount;
  }
  return { batchId, fromWallet, toWallet, asset, mints, moves: transfers, totalAmount };
}

/** Arrays in chunks of at most `size`, for sending. */
export function* chunked<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}
