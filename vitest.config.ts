import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Compiles the sources once for the child processes tests start (test/support/cli_build.ts).
    globalSetup: ['test/support/global_setup.ts'],
  },
});
