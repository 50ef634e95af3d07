// The load generator's options, their bounds and validation, and the outcome a run predicts.
import { loadAssets } from "./load-values.ts";

export type LoadOptions = {
  events: number;
  tokens: number;
  wallets: number;
  /** share of events that re-emit an exact earlier applied event (same transfer_id) */
  duplicateRate: number;
  /** share of events that move a token from an already-spent state (rejected: state_conflict) */
  doubleSpendRate: number;
  seed: number;
  /** occurred_at lies in [nowMs - spanMs, nowMs]; part of the input so the output is reproducible */
  nowMs: number;
  spanMs?: number;
  /** chance that a plain move is a burn instead */
  burnRate?: number;
  /** chance that a move starts a user-level transfer of several tokens under one batch_id */
  batchRate?: number;
  /**
   * share of moves (plain and batched; not burns) that touch one hot wallet, `walletName(0)`, as
   * sender or receiver; 0 (the default) leaves the random sequence exactly as without it
   */
  hotWalletShare?: number;
};

export type LoadOutcome = {
  events: number;
  applied: number;
  duplicates: number;
  rejected: { state_conflict: number };
  mints: number;
  moves: number;
  burns: number;
  /** user-level transfers that moved two or more tokens under one batch_id */
  batches: number;
  mintedByAsset: Record<string, bigint>;
  burnedByAsset: Record<string, bigint>;
};

export const loadEventsMax = 1_000_000_000;
export const loadTokensMax = 10_000_000;
export const loadWalletsMax = 10_000_000;
export const loadSpanMsDefault = 2 * 24 * 3600 * 1000;

/** Every problem with the options, empty when they are usable. */
export function loadOptionsProblems(options: LoadOptions): string[] {
  const problems: string[] = [];
  const wholeIn = (name: string, value: number, min: number, max: number) => {
    if (!Number.isSafeInteger(value) || value < min || value > max)
      problems.push(`${name} must be a whole number from ${min} to ${max}`);
  };
  wholeIn("events", options.events, 1, loadEventsMax);
  wholeIn("tokens", options.tokens, 1, loadTokensMax);
  wholeIn("wallets", options.wallets, 2, loadWalletsMax);
  wholeIn("seed", options.seed, 0, 2 ** 32 - 1);
  wholeIn("nowMs", options.nowMs, 0, Number.MAX_SAFE_INTEGER);
  if (options.spanMs !== undefined) wholeIn("spanMs", options.spanMs, 0, options.nowMs);
  if (options.duplicateRate + options.doubleSpendRate > 0.5)
    problems.push("duplicateRate + doubleSpendRate must be at most 0.5");
  for (const name of ["duplicateRate", "doubleSpendRate", "burnRate", "batchRate"] as const) {
    const value = options[name] ?? 0;
    if (!(Number.isFinite(value) && value >= 0 && value <= 0.5))
      problems.push(`${name} must be a number from 0 to 0.5`);
  }
  const hot = options.hotWalletShare ?? 0;
  if (!(Number.isFinite(hot) && hot >= 0 && hot <= 1))
    problems.push("hotWalletShare must be a number from 0 to 1");
  if (hot > 0 && options.wallets < 3) problems.push("hotWalletShare needs at least 3 wallets");
  return problems;
}

export function emptyOutcome(): LoadOutcome {
  const zeros = () => Object.fromEntries(loadAssets.map((a) => [a, 0n]));
  return {
    events: 0,
    applied: 0,
    duplicates: 0,
    rejected: { state_conflict: 0 },
    mints: 0,
    moves: 0,
    burns: 0,
    batches: 0,
    mintedByAsset: zeros(),
    burnedByAsset: zeros(),
  };
}
