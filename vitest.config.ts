import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at a time even on 2 cores (vitest's default there is one): many wait on child
    // processes, sockets and timers rather than the CPU (docs/testing.md § Time).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // Compiles the sources once for the child processes tests start (test/support/cli_build.ts).
    globalSetup: ['test/support/global_setup.ts'],
  },
});
