import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['source'] },
  test: {
    include: ['test/**/*.test.ts'],
    // Each file starts its own navaro; on a loaded 2-core box a start can take seconds.
    testTimeout: 60_000,
    hookTimeout: 90_000,
  },
});
