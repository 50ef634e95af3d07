import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";
import { containersProject } from "./test/containers/tier.ts";

export default defineConfig({
  // The workspace packages (@tally/testing, @tally/producer) resolve to their TypeScript sources
  // here; a user's install resolves them to the compiled dist/.
  ssr: { resolve: { conditions: ["tally-source", ...defaultServerConditions] } },
  resolve: { conditions: ["tally-source", ...defaultServerConditions] },
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.unit.spec.ts", "services/**/*.unit.spec.ts"],
        },
      },
      {
        test: {
          name: "int",
          include: ["test/int/**/*.int.spec.ts"],
          // Integration files share one broker, registry and PostgreSQL; each uses its own
          // topic and databases, but running them one at a time keeps 2 cores from thrashing.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: "cluster",
          include: ["test/cluster/**/*.cluster.spec.ts"],
          // Fault tests on the multi-server cluster (make up-cluster): one at a time, since each
          // kills parts of the one cluster and measures recovery times on 2 cores.
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 180_000,
        },
      },
      // The container tier (make test-containers): only when asked for, since it needs an engine.
      ...(process.env.TALLY_TEST_STACK === "containers" ? [containersProject] : []),
    ],
  },
});
