/**
 * The drift check: the committed document and the types generated from it are exactly
 * what the running server's `/openapi.json` makes today. When a route or a field
 * changes, this fails until `npm run generate` is run and its output committed.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, expect, test } from 'vitest';

import { render } from '../scripts/render.mjs';
import { NavaroServer } from './harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let server: NavaroServer;

beforeAll(async () => {
  server = await NavaroServer.start();
});

afterAll(async () => {
  await server?.dispose();
});

test("the generated types are the running server's document's", async () => {
  const response = await fetch(`${server.baseUrl}/openapi.json`);
  expect(response.status).toBe(200);
  const { json, typescript } = await render(await response.text());
  const stale = 'stale: run `npm run generate` in clients/typescript and commit the result';
  expect(readFileSync(join(root, 'openapi.json'), 'utf8') === json, `openapi.json is ${stale}`).toBe(true);
  expect(
    readFileSync(join(root, 'src', 'generated', 'openapi.ts'), 'utf8') === typescript,
    `src/generated/openapi.ts is ${stale}`,
  ).toBe(true);
});
