// The tables of the contract (docs/design.md, "Shards and date partitions"). Every statement is
// idempotent, so `tally migrate` can run again, and while workers run.

/** Per shard: the ledger by day, token state, rejections, offsets and the balance deltas the projector reads. */
export const shardDdl = [
  `CREATE TABLE IF NOT EXISTS transfers (
     transfer_id uuid NOT NULL,
     batch_id text,
     token_id text NOT NULL,
     asset text NOT NULL,
     amount numeric(38,0) NOT NULL CHECK (amount > 0),
     from_wallet text,
     to_wallet text,
     prev_state text,
     next_state text NOT NULL,
     occurred_at timestamptz NOT NULL,
     kafka_partition int NOT NULL,
     kafka_offset bigint NOT NULL,
     schema_id int NOT NULL
   ) PARTITION BY RANGE (occurred_at)`,
  // The idempotency key, unique across every day of the shard (a partitioned table cannot hold a
  // unique index without the partition key). A repeated id aborts the batch's COPY, never passes.
  `CREATE TABLE IF NOT EXISTS transfer_ids (
     transfer_id uuid PRIMARY KEY
   )`,
  `CREATE TABLE IF NOT EXISTS token_state (
     token_id text PRIMARY KEY,
     asset text NOT NULL,
     amount numeric(38,0) NOT NULL,
     owner text,
     state text NOT NULL,
     retired boolean NOT NULL DEFAULT false,
     kafka_partition int NOT NULL,
     last_offset bigint NOT NULL
   )`,
  // Every batch rewrites its tokens' owner and state, none of them indexed: free room on each page
  // lets PostgreSQL update in place (HOT) instead of adding index entries for every move.
  "ALTER TABLE token_state SET (fillfactor = 70)",
  "CREATE INDEX IF NOT EXISTS token_state_partition ON token_state (kafka_partition)",
  `CREATE TABLE IF NOT EXISTS rejected_transfers (
     topic text NOT NULL,
     kafka_partition int NOT NULL,
     kafka_offset bigint NOT NULL,
     reason text NOT NULL,
     detail text NOT NULL,
     transfer_id text,
     token_id text,
     schema_id int,
     raw_key bytea,
     raw_value bytea,
     rejected_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (topic, kafka_partition, kafka_offset)
   )`,
  // `tally reprocess` (services/outcomes): when and where a rejection's bytes were produced again,
  // recorded after Kafka acknowledged them; a row with redriven_at set is never re-driven again.
  "ALTER TABLE rejected_transfers ADD COLUMN IF NOT EXISTS redriven_at timestamptz",
  "ALTER TABLE rejected_transfers ADD COLUMN IF NOT EXISTS redriven_to_partition int",
  "ALTER TABLE rejected_transfers ADD COLUMN IF NOT EXISTS redriven_to_offset bigint",
  // `tally transfer` finds a rejection by its id, `tally rejections` pages newest first.
  "CREATE INDEX IF NOT EXISTS rejected_transfers_transfer_id ON rejected_transfers (lower(transfer_id))",
  "CREATE INDEX IF NOT EXISTS rejected_transfers_newest ON rejected_transfers (topic, rejected_at, kafka_partition, kafka_offset)",
  // The truth about progress: written in the same transaction as the rows it covers.
  `CREATE TABLE IF NOT EXISTS applier_offsets (
     "group" text NOT NULL,
     topic text NOT NULL,
     "partition" int NOT NULL,
     next_offset bigint NOT NULL,
     first_offset bigint NOT NULL,
     applied_count bigint NOT NULL DEFAULT 0,
     duplicate_count bigint NOT NULL DEFAULT 0,
     rejected_count bigint NOT NULL DEFAULT 0,
     updated_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY ("group", topic, "partition")
   )`,
  // Kafka's id of the topic incarnation these offsets belong to (KIP-516): offsets of a deleted and
  // re-created topic mean nothing, and the applier refuses them rather than skip (applier/incarnation.ts).
  "ALTER TABLE applier_offsets ADD COLUMN IF NOT EXISTS topic_id text",
  // Records an operator chose to pass over (`tally offsets reset`), so consumed still adds up.
  "ALTER TABLE applier_offsets ADD COLUMN IF NOT EXISTS skipped_count bigint NOT NULL DEFAULT 0",
  // The projector's input: one row per committed chunk, its (wallet, asset, delta) and (asset,
  // minted, burned) entries as text (storage/delta-chunks.ts). end_offset is the chunk's next
  // offset: per partition, chunks commit in offset order. entry_count bounds a projector round.
  // Rows live seconds (pruned once projected): no compression to pay for on every insert and read.
  `CREATE TABLE IF NOT EXISTS balance_delta_chunks (
     topic text NOT NULL,
     kafka_partition int NOT NULL,
     end_offset bigint NOT NULL,
     entry_count int NOT NULL CHECK (entry_count > 0),
     entries text NOT NULL,
     PRIMARY KEY (topic, kafka_partition, end_offset)
   )`,
  "ALTER TABLE balance_delta_chunks ALTER COLUMN entries SET STORAGE EXTERNAL",
  // Legacy (before balance_delta_chunks): one row per (wallet, asset) per batch, or per asset with
  // wallet NULL for minted/burned. No longer written; kept because an upgraded deployment may still
  // hold unprojected rows, or an applier of the previous version may still write them during a
  // rolling upgrade. The projector reads and prunes both tables.
  `CREATE TABLE IF NOT EXISTS balance_deltas (
     topic text NOT NULL,
     kafka_partition int NOT NULL,
     end_offset bigint NOT NULL,
     wallet text,
     asset text NOT NULL,
     delta numeric NOT NULL DEFAULT 0,
     minted numeric NOT NULL DEFAULT 0,
     burned numeric NOT NULL DEFAULT 0
   )`,
  "CREATE INDEX IF NOT EXISTS balance_deltas_progress ON balance_deltas (topic, kafka_partition, end_offset)",
  // The balance-delta formats this shard's projectors read (storage/delta-readers.ts): an applier
  // writes balance_delta_chunks rows only once that format is declared here.
  `CREATE TABLE IF NOT EXISTS delta_readers (
     format text PRIMARY KEY,
     declared_at timestamptz NOT NULL DEFAULT now()
   )`,
  // The dead-letter relay (services/dlq): per source partition, the offset below which every
  // rejection is on the dead-letter topic, advanced only after Kafka acknowledged them. Rejections
  // of a partition commit in offset order, so one offset per partition says all that was sent.
  `CREATE TABLE IF NOT EXISTS dlq_checkpoints (
     topic text NOT NULL,
     dlq_topic text NOT NULL,
     kafka_partition int NOT NULL,
     next_offset bigint NOT NULL,
     published_count bigint NOT NULL DEFAULT 0,
     updated_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (topic, dlq_topic, kafka_partition)
   )`,
];

/** The views database: balances, supply and the projector's checkpoints, updated together. */
export const viewsDdl = [
  `CREATE TABLE IF NOT EXISTS wallet_balances (
     wallet text NOT NULL,
     asset text NOT NULL,
     balance numeric NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (wallet, asset)
   )`,
  `CREATE TABLE IF NOT EXISTS asset_supply (
     asset text PRIMARY KEY,
     minted numeric NOT NULL,
     burned numeric NOT NULL,
     supply numeric NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE TABLE IF NOT EXISTS projector_checkpoints (
     topic text NOT NULL,
     kafka_partition int NOT NULL,
     end_offset bigint NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (topic, kafka_partition)
   )`,
  // `tally verify`'s results (services/verify/command.ts), read by the projector's metrics
  // (tally_verify_last_ok, tally_verify_last_success_timestamp_seconds): a scheduled verify needs
  // no Pushgateway. failed_checks: the keys of the checks in breach, empty when ok.
  `CREATE TABLE IF NOT EXISTS verify_runs (
     topic text NOT NULL,
     finished_at timestamptz NOT NULL DEFAULT now(),
     ok boolean NOT NULL,
     failed_checks text[] NOT NULL,
     verify_ms int NOT NULL,
     PRIMARY KEY (topic, finished_at)
   )`,
];

/** Serialises concurrent migrates and partition creation on one database. */
export const migrateLockKey = 0x7a11_0001;
