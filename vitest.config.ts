import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: onnxruntime already uses both, so test files run one or two at a time.
    maxWorkers: 2,
    pool: "forks",
  },
});
