// Regenerate the client's types from the server's OpenAPI document:
//   npm run generate                      the document of the `navaro` binary built from
//                                         this repository (`cargo run -p navaro-gateway -- openapi`)
//   NAVARO_URL=http://127.0.0.1:8080 npm run generate
//                                         a running server's /openapi.json
//   NAVARO_BIN=path/to/navaro npm run generate
// Writes openapi.json (the document, for review diffs) and src/generated/openapi.ts.
// The drift check (test/generated.test.ts) compares both with the running server's.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { render } from './render.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const repo = join(root, '..', '..');

async function document() {
  if (process.env.NAVARO_URL) {
    const url = new URL('/openapi.json', process.env.NAVARO_URL);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return await response.text();
  }
  if (process.env.NAVARO_BIN) {
    return execFileSync(process.env.NAVARO_BIN, ['openapi'], { encoding: 'utf8' });
  }
  return execFileSync('cargo', ['run', '--quiet', '-p', 'navaro-gateway', '--', 'openapi'], {
    cwd: repo,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

const text = await document();
const { json, typescript } = await render(text);
writeFileSync(join(root, 'openapi.json'), json);
writeFileSync(join(root, 'src', 'generated', 'openapi.ts'), typescript);
console.log('wrote openapi.json and src/generated/openapi.ts');
