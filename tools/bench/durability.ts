// What the bench records of each PostgreSQL server's durability settings (latest.json and peer.json),
// read by readDurability in bench.ts: a run on fsync=off is no measure of Tally.
export type Durability = {
  server: string;
  version: string;
  fsync: string;
  synchronousCommit: string;
  fullPageWrites: string;
  walSyncMethod: string;
};
