import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages resolve to their TypeScript sources (the `source` export).
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    include: ['tests/**/*.test.ts'],
    // A real navaro and a real Chromium per file, on a shared 2-core box.
    testTimeout: 90_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
