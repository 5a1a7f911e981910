import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages resolve to their TypeScript sources (the `source` export).
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    // Each file starts its own navaro; on a loaded 2-core box a start can take seconds.
    testTimeout: 60_000,
    hookTimeout: 90_000,
  },
});
