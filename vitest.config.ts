import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.spec.ts', 'services/**/*.spec.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: keep concurrency modest so process-spawning e2e tests are not starved.
    maxWorkers: 2,
    // One real Kafka broker (when a *.kafka.spec.ts file is selected) and one real schema
    // registry (when a *.registry.*spec.ts file is) for the whole run.
    globalSetup: ['./test/support/kafka-global-setup.ts', './test/support/registry-global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
