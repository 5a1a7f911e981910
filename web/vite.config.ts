import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built to dist/ and served by `navaro serve` at /pro (embedded in the binary).
// `npm run dev` serves it with hot reload and sends the API to a local navaro.
const target = process.env.NAVARO_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/pro/',
  plugins: [react()],
  resolve: { conditions: ['source'] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // One small app: no need to split.
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: {
      '/v1': { target, ws: true, changeOrigin: false },
    },
  },
});
