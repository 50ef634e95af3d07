// The container tier: the integration suites again, with the stack from testcontainers
// (TALLY_TEST_STACK=containers), plus the tests of tally/testing written the way a user would.
// vitest.config.ts defines the project from this when TALLY_TEST_STACK=containers.

const hostileRecordsOnce =
  "the applier's answers to hostile records are the same SQL and plan whichever way the servers run; once keeps the tier within its time";

/** Integration suites the containers provider cannot run, and why (the test summary lists them). */
export const excludedIntSuites: Record<string, string> = {
  "test/int/secure-kafka.int.spec.ts":
    "needs the SASL_SSL + SCRAM broker of `infra/stack.sh up-secure`; the containers provider runs a plaintext one",
  "test/int/bench.int.spec.ts":
    "a benchmark run: it measures the machine, not the provider, and runs once on the local stack",
  "test/int/poison-routing.int.spec.ts": hostileRecordsOnce,
  "test/int/poison-archive.int.spec.ts": hostileRecordsOnce,
  "test/int/poison-days.int.spec.ts": hostileRecordsOnce,
  "test/int/member-race.int.spec.ts":
    "a scripted consumer on one PostgreSQL database: no Kafka or registry of the provider is involved",
  "test/int/write-guard.int.spec.ts":
    "the write path's guards on one PostgreSQL database: no provider involved",
  "test/int/key-lookups.int.spec.ts":
    "the plans of the applier's and the projector's key look-ups on one PostgreSQL database: no provider involved",
  "test/int/demo.int.spec.ts":
    "`make demo` is the local stack's main job; the tier runs the pipeline suites instead",
  "test/int/stack-0700.int.spec.ts":
    "tests infra/stack's own PostgreSQL start from a 0700 folder; it uses no provider, so it runs once",
};

export const containersProject = {
  test: {
    name: "containers",
    include: ["test/int/**/*.int.spec.ts", "test/containers/**/*.containers.spec.ts"],
    exclude: Object.keys(excludedIntSuites),
    globalSetup: ["test/containers/global-setup.ts"],
    // One stack for the run; files one at a time, as in the int project (2 cores).
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 300_000,
  },
};
