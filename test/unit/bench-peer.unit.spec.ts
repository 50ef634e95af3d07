// The pure parts of `tally bench-peer`: the tunings, the worker and connector properties rendered
// from infra/peer's templates, the target table, the choice of the best tuning and the merge into
// a `tally bench` run. The run itself (a Connect JVM, ~100 MB of jars) is `make bench-peer`.
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { writePeer } from "../../tools/bench/peer-command.ts";
import {
  connectorConfig,
  converterRegistryUrl,
  expectedOf,
  jdbcOf,
  type PeerSetting,
  parseProperties,
  peerDdlOf,
  peerDefaultSettingNames,
  peerDir,
  peerKeyedDdl,
  peerLedgerDdl,
  peerSettingsFor,
  peerVersions,
  pickSettings,
  renderTemplate,
  workerProperties,
} from "../../tools/bench/peer-config.ts";
import {
  bestOf,
  cpuPerEventText,
  type PeerCase,
  type PeerRun,
  peerFileName,
  peerMarkdown,
  withPeer,
  withPeerFile,
} from "../../tools/bench/peer-results.ts";
import type { BenchResults } from "../../tools/bench/report.ts";

const [twoTasks, perPartition, rewrite, keyedTwoTasks] = peerSettingsFor(6) as [
  PeerSetting,
  PeerSetting,
  PeerSetting,
  PeerSetting,
];

describe("bench-peer configuration", () => {
  it("given templates, when rendered, then every placeholder is filled and an unknown one is refused", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a .properties placeholder, not JavaScript
    expect(renderTemplate("a=${x}\nb=${y}\nc=$Value", { x: 1, y: true })).toBe("a=1\nb=true\nc=$Value");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a .properties placeholder, not JavaScript
    expect(() => renderTemplate("a=${missing}", {})).toThrow(/missing/);
    expect(parseProperties("# note\n\na = 1\nb=x=y\n")).toEqual({ a: "1", b: "x=y" });
    expect(() => parseProperties("no equals sign")).toThrow(RangeError);
  });

  it("given the settings, when listed and picked, then they are three tunings per shape, two per shape by default, and unknown names fail", () => {
    expect(peerSettingsFor(6).map((s) => s.name)).toEqual([
      "ledger-tasks2-batch3000-unnest",
      "ledger-tasks6-batch5000-unnest",
      "ledger-tasks2-batch5000-rewrite",
      "keyed-upsert-tasks2-batch3000-unnest",
      "keyed-upsert-tasks6-batch5000-unnest",
      "keyed-upsert-tasks2-batch5000-rewrite",
    ]);
    for (const s of peerSettingsFor(6)) expect(s.maxPollRecords).toBe(s.batchSize);
    expect(peerSettingsFor(6).map((s) => s.shape)).toEqual([
      "ledger",
      "ledger",
      "ledger",
      "keyed-upsert",
      "keyed-upsert",
      "keyed-upsert",
    ]);
    expect(pickSettings(peerSettingsFor(6), ["ledger-tasks2-batch5000-rewrite"])).toEqual([rewrite]);
    expect(pickSettings(peerSettingsFor(6), undefined)).toHaveLength(6);
    const defaults = pickSettings(peerSettingsFor(6), [], peerDefaultSettingNames(6));
    expect(defaults.map((s) => s.name)).toEqual([
      "ledger-tasks2-batch5000-rewrite",
      "ledger-tasks2-batch3000-unnest",
      "keyed-upsert-tasks2-batch3000-unnest",
      "keyed-upsert-tasks6-batch5000-unnest",
    ]);
    expect(() => pickSettings(peerSettingsFor(6), ["tasks9"])).toThrow(/unknown peer setting tasks9/);
  });

  it("given a setting, when the worker's properties are rendered, then ports, registry and poll size are set", () => {
    const text = workerProperties(perPartition, {
      brokers: "127.0.0.1:19092",
      restPort: 41234,
      registryUrl: converterRegistryUrl("http://127.0.0.1:18081/apis/ccompat/v7"),
      offsetsFile: "/tmp/offsets",
      pluginPath: "/x/plugins",
    });
    expect(text).not.toContain("${");
    const p = parseProperties(text);
    expect(p["bootstrap.servers"]).toBe("127.0.0.1:19092");
    expect(p.listeners).toBe("http://127.0.0.1:41234");
    expect(p["plugin.path"]).toBe("/x/plugins");
    expect(p["value.converter.apicurio.registry.url"]).toBe("http://127.0.0.1:18081/apis/registry/v2");
    expect(p["value.converter.apicurio.registry.as-confluent"]).toBe("true");
    expect(p["consumer.max.poll.records"]).toBe("5000");
    expect(p["consumer.max.partition.fetch.bytes"]).toBe(String(4 * 1024 * 1024));
  });

  it("given each writer, when the connector's config is rendered, then tasks, batch and writer follow the setting", () => {
    const url = "postgres://postgres:p%40ss@127.0.0.1:5432/bench_peer_ab12cd";
    const unnest = connectorConfig(twoTasks, "bench_peer_x", jdbcOf(url, "unnest"));
    expect(unnest).toMatchObject({
      "tasks.max": "2",
      topics: "bench_peer_x",
      "batch.size": "3000",
      "dialect.postgres.unnest.insert.enabled": "true",
      "connection.url": "jdbc:postgresql://127.0.0.1:5432/bench_peer_ab12cd",
      "connection.username": "postgres",
      "connection.password": "p@ss",
      "insert.mode": "insert",
      "schema.evolution": "none",
      "collection.name.format": "transfers",
      "transforms.position.type": "org.apache.kafka.connect.transforms.InsertField$Value",
      "transforms.position.offset.field": "kafka_offset",
    });
    expect(unnest["primary.key.mode"]).toBe("none");
    expect(unnest["primary.key.fields"]).toBeUndefined();
    const keyed = connectorConfig(keyedTwoTasks, "bench_peer_x", jdbcOf(url, "unnest"));
    expect(keyed).toMatchObject({
      "insert.mode": "upsert",
      "primary.key.mode": "record_value",
      "primary.key.fields": "transfer_id",
      "use.reduction.buffer": "true",
      "dialect.postgres.unnest.insert.enabled": "true",
      "batch.size": "3000",
    });
    const batched = connectorConfig(rewrite, "t", jdbcOf(url, "rewrite"));
    expect(batched["dialect.postgres.unnest.insert.enabled"]).toBe("false");
    expect(batched["connection.url"]).toBe(
      "jdbc:postgresql://127.0.0.1:5432/bench_peer_ab12cd?reWriteBatchedInserts=true&stringtype=unspecified",
    );
    expect(() => converterRegistryUrl("http://127.0.0.1:8081/")).toThrow(/ccompat/);
  });

  it("given Tally's ledger DDL, when the peer's table is derived, then only the id type and two defaults differ", () => {
    const ddl = peerLedgerDdl();
    expect(ddl).toContain("transfer_id text NOT NULL");
    expect(ddl).not.toContain("uuid");
    expect(ddl).toContain("schema_id int NOT NULL DEFAULT 0");
    expect(ddl).toContain("inserted_at timestamptz NOT NULL DEFAULT clock_timestamp()");
    expect(ddl).toContain("PARTITION BY RANGE (occurred_at)");
    expect(ddl).toContain("amount numeric(38,0) NOT NULL");
    expect(peerDdlOf("ledger")).toBe(ddl);
  });

  it("given the ledger's DDL, when the keyed table is derived, then transfer_id is its primary key and it has no day partitions", () => {
    const ddl = peerKeyedDdl();
    expect(ddl).toContain("transfer_id text PRIMARY KEY");
    expect(ddl).not.toContain("PARTITION BY");
    expect(ddl).toContain("inserted_at timestamptz NOT NULL DEFAULT clock_timestamp()");
    expect(ddl).toContain("kafka_offset bigint NOT NULL");
    expect(peerDdlOf("keyed-upsert")).toBe(ddl);
  });

  it("given what was produced, when each shape's expected rows are taken, then the ledger holds every event and the keyed table each id once", () => {
    const produced = {
      events: 1_000,
      amountTotal: 50_000n,
      distinctIds: 990,
      distinctAmountTotal: 49_500n,
      days: new Set([1]),
    };
    expect(expectedOf(produced, "ledger")).toEqual({ rows: 1_000, amountTotal: 50_000n });
    expect(expectedOf(produced, "keyed-upsert")).toEqual({ rows: 990, amountTotal: 49_500n });
  });

  it("given the fetch script and poms, when read, then they fetch the versions the report names", () => {
    const file = (name: string) => readFileSync(`${peerDir}${name}`, "utf8");
    expect(file("connect-pom.xml")).toContain(`<kafka.version>${peerVersions.connect}</kafka.version>`);
    expect(file("converter-pom.xml")).toContain(
      `<apicurio.version>${peerVersions.converter}</apicurio.version>`,
    );
    expect(file("peer.sh")).toContain(`DEBEZIUM_VERSION=${peerVersions.sink}`);
    expect(file("peer.sh")).toContain(`KAFKA_VERSION=${peerVersions.connect}`);
  });
});

function run(eventsPerSecond: number, steadyEventsPerSecond = eventsPerSecond * 2): PeerRun {
  return {
    events: 1_000,
    rows: 1_000,
    distinctPositions: 1_000,
    amountsMatch: true,
    workerStartMs: 20_000,
    firstRowMs: 3_000,
    connectorMs: Math.round(1_000_000 / eventsPerSecond),
    steadyMs: Math.round(1_000_000 / steadyEventsPerSecond),
    wholeMs: 25_000,
    eventsPerSecond,
    steadyEventsPerSecond,
    wholeEventsPerSecond: 40,
    peakRssBytes: 1_500 * 2 ** 20,
    cpuSeconds: { connect: 0.3, postgres: 0.12 },
    loadAverage1m: 1.25,
  };
}

/** The ledger shape at the given rates, and the keyed shape too when `keyed` gives its rates. */
function peerCase(eventsPerSecond: number, steady: number, seed = 7, keyed?: [number, number]): PeerCase {
  const { settings, best } = bestOf([
    { ...twoTasks, runs: [run(eventsPerSecond, steady)] },
    ...(keyed ? [{ ...keyedTwoTasks, runs: [{ ...run(...keyed), rows: 990, expectedRows: 990 }] }] : []),
  ]);
  const { runs: _, medianRun: __, ...setting } = best;
  return {
    ...best.medianRun,
    startedAt: "2026-11-22T06:00:00.000Z",
    command: "tally bench-peer",
    seed,
    setting,
    runsEventsPerSecond: [eventsPerSecond],
    tried: settings,
    versions: { ...peerVersions },
    heapOptions: "-Xms256M -Xmx2G",
    durability: [],
  };
}

/** The parts of a `tally bench` run that the merge and the ratios read. */
function tallyRun(seed = 7): BenchResults {
  const rate = (eventsPerSecond: number) => ({ eventsPerSecond });
  return {
    settings: { events: 1_000, seed },
    cases: {
      ceiling: { eventsPerSecond: 100_000, copyOnlyEventsPerSecond: 300_000 },
      naive: rate(1_000),
      tally: { eventsPerSecond: 30_000, applyEventsPerSecond: 40_000 },
      replay: rate(40_000),
      hotWallet: rate(30_000),
    },
  } as unknown as BenchResults;
}

describe("bench-peer results", () => {
  it("given settings with runs, when the best is chosen, then each setting's median run is compared", () => {
    const { settings, best } = bestOf([
      { ...twoTasks, runs: [run(10_000), run(30_000), run(20_000)] },
      { ...perPartition, runs: [run(25_000), run(5_000)] },
    ]);
    expect(settings.map((s) => s.medianRun.eventsPerSecond)).toEqual([20_000, 5_000]);
    expect(best.name).toBe(twoTasks.name);
    expect(() => bestOf([{ ...twoTasks, runs: [] }])).toThrow(RangeError);
  });

  it("given a Tally run of the same events, when the peer is merged, then the ratios divide Tally by the peer", () => {
    const merged = withPeer(tallyRun(), peerCase(20_000, 50_000));
    expect(merged?.ratios.tallyOverPeer).toBe(1.5);
    expect(merged?.ratios.applyOverPeerSteady).toBe(0.8);
    expect(merged?.ratios.tallyOverCeiling).toBe(0.3);
    expect(withPeer(tallyRun(8), peerCase(20_000, 50_000))).toBeNull();
  });

  it("given both shapes, when merged, then the headline divides by the faster one and each shape has its ratio from start and steady", () => {
    const merged = withPeer(tallyRun(), peerCase(20_000, 50_000, 7, [24_000, 32_000]))!;
    expect(merged.cases.peer?.setting.name).toBe("keyed-upsert-tasks2-batch3000-unnest");
    expect(merged.ratios).toMatchObject({
      tallyOverPeer: 1.25,
      applyOverPeerSteady: 1.25,
      tallyOverPeerLedger: 1.5,
      applyOverPeerLedgerSteady: 0.8,
      tallyOverPeerKeyed: 1.25,
      applyOverPeerKeyedSteady: 1.25,
    });
    const text = peerMarkdown(merged);
    expect(text).toContain(
      "- into the ledger's shape (day-partitioned, every record inserted): best ledger-tasks2-batch3000-unnest, " +
        "20,000 events/s from connector start, 50,000/s steady; Tally ÷ peer 1.50× from start (Tally end to end), 0.80× steady (Tally apply-only).",
    );
    expect(text).toContain(
      "- into a plain table keyed by transfer_id (upsert, reduction buffer): best keyed-upsert-tasks2-batch3000-unnest, " +
        "24,000 events/s from connector start, 32,000/s steady; Tally ÷ peer 1.25× from start",
    );
    expect(text).toContain("rows 990 of 990");
    // A peer.json from before the keyed shape: its settings have no shape and count as the ledger's.
    const old = peerCase(20_000, 50_000);
    for (const t of old.tried) delete (t as Partial<PeerSetting>).shape;
    expect(withPeer(tallyRun(), old)?.ratios).toMatchObject({
      tallyOverPeerLedger: 1.5,
      tallyOverPeerKeyed: null,
    });
  });

  it("given a merged run, when written as Markdown, then the best setting and every setting tried are listed", () => {
    const text = peerMarkdown(withPeer(tallyRun(), peerCase(20_000, 50_000))!);
    expect(text).toContain("## Peer: Kafka Connect with Debezium's JDBC sink");
    expect(text).toContain(
      "Best: ledger: tasks.max 2, batch.size 3,000, max.poll.records 3,000, UNNEST writer: 20,000 events/s",
    );
    expect(text).toContain(
      "| ledger: tasks.max 2, batch.size 3,000, max.poll.records 3,000, UNNEST writer | 1,000 of 1,000 | 20,000 | 50,000 | 40 | 20.00 | 1500 | 300 + 120 | 1.3 | best; runs 20,000 |",
    );
    expect(text).toContain("CPU from connector start 300 + 120 µs per event");
    const { cpuSeconds: _, ...unmeasured } = run(1_000);
    expect(cpuPerEventText(unmeasured)).toBe("?");
    expect(cpuPerEventText({ ...run(1_000), cpuSeconds: { connect: 0.5, postgres: null } })).toBe("500 + ?");
    expect(peerMarkdown(tallyRun())).toBe("");
  });

  it("given peer.json beside a new run, when results are written, then the peer is carried over", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tally-peer-"));
    try {
      expect((await withPeerFile(tallyRun(), dir)).cases.peer).toBeUndefined();
      await writeFile(join(dir, peerFileName), JSON.stringify(peerCase(15_000, 60_000)));
      const merged = await withPeerFile(tallyRun(), dir);
      expect(merged.cases.peer?.eventsPerSecond).toBe(15_000);
      expect(merged.ratios.tallyOverPeer).toBe(2);
      expect((await withPeerFile(tallyRun(9), dir)).cases.peer).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("given an --out folder that does not exist yet, when the peer is written, then it is made and peer.json is in it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tally-peer-"));
    const out = join(dir, "new", "folder/");
    try {
      const lines: string[] = [];
      expect(await writePeer(peerCase(15_000, 60_000), null, out, (l) => lines.push(l))).toBeNull();
      expect(JSON.parse(readFileSync(join(out, peerFileName), "utf8")).eventsPerSecond).toBe(15_000);
      expect(lines[0]).toBe(`bench-peer: wrote ${join(out, peerFileName)}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
