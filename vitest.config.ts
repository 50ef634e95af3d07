import { defineConfig } from "vitest/config";

export default defineConfig({
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
    ],
  },
});
