// The projector's public surface, for the demo, tally/testing and the tests. The commands
// (commands.ts) are not part of it: the CLI imports them from there.
export { aggregateDeltas, type ChunkRow, type DeltaRow, takePending } from "./aggregate.ts";
export { formatBalances, readBalances, type WalletBalance } from "./balances.ts";
export {
  type ProjectorOptions,
  type ProjectorSummary,
  type RoundProgress,
  runProjector,
} from "./projector.ts";
export { type RebuildSummary, rebuildViews } from "./rebuild.ts";
