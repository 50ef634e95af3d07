// The projector's public surface, for the CLI and the demo.
export { aggregateDeltas, type DeltaRow, takeWholeBatches } from "./aggregate.ts";
export {
  formatBalances,
  readBalances,
  registerBalanceCommand,
  registerProjectCommand,
  type WalletBalance,
} from "./commands.ts";
export {
  type ProjectorOptions,
  type ProjectorSummary,
  type RoundProgress,
  runProjector,
} from "./projector.ts";
export { type RebuildSummary, rebuildViews } from "./rebuild.ts";
