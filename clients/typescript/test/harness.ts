/**
 * The real `navaro` binary for the TypeScript and browser tests, as
 * `gateway/tests/common/mod.rs` runs it for the Rust ones: its own data directory
 * (SQLite), port 0 the first time, generous rate limits, killed with SIGKILL and
 * restarted on the same port and data.
 *
 * The binary is `$NAVARO_BIN` (the Rust test that runs these suites sets it), else the
 * workspace's `target/debug/navaro`; with neither, the tests fail, never skip.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';

import { type NavaroClient, type WebSocketConstructor, type components, createNavaroClient, ok } from '../src/index.js';

/** A time zone the server knows (the document lists them). */
export type TimeZoneName = components['schemas']['CreateEstablishmentRequest']['timezone'];

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The same generous limits as the Rust harness: tests exercise behaviour, not limits. */
const TEST_ENV: Record<string, string> = {
  NAVARO_LIMITS__PER_IP_PER_SECOND: '100000',
  NAVARO_LIMITS__PER_IP_BURST: '100000',
  NAVARO_LIMITS__PER_USER_PER_SECOND: '100000',
  NAVARO_LIMITS__PER_USER_BURST: '100000',
  NAVARO_LIMITS__LOGIN_PER_MINUTE: '100000',
  NAVARO_LIMITS__LOGIN_BURST: '100000',
  NAVARO_LIMITS__BOOKINGS_PER_MINUTE: '100000',
  NAVARO_LIMITS__BOOKINGS_BURST: '100000',
  NAVARO_ENGINE__MAX_JOURNAL_LAG_MS: '0',
};

/** How long the binary may take to log its address (a loaded CI box). */
const START_TIMEOUT_MS = 60_000;

export function navaroBinary(): string {
  const path = process.env.NAVARO_BIN ?? join(REPO, 'target', 'debug', 'navaro');
  if (!existsSync(path)) {
    throw new Error(`no navaro binary at ${path}: run \`cargo build -p navaro-gateway\` or set NAVARO_BIN`);
  }
  return path;
}

/** `ws`'s WebSocket, typed as the live feed takes it (Node 20 has no global one). */
export const NodeWebSocket = WebSocket as unknown as WebSocketConstructor;

export interface StartOptions {
  /** `serve` (default) or `demo`. */
  command?: 'serve' | 'demo';
  env?: Record<string, string>;
}

export class NavaroServer {
  readonly port: number;
  readonly baseUrl: string;
  readonly logs: string[];
  private readonly child: ChildProcess;
  private readonly dataDir: string;
  private readonly options: StartOptions;
  private exited: Promise<void>;

  private constructor(child: ChildProcess, port: number, dataDir: string, logs: string[], options: StartOptions) {
    this.child = child;
    this.port = port;
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.dataDir = dataDir;
    this.logs = logs;
    this.options = options;
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  static async start(options: StartOptions = {}): Promise<NavaroServer> {
    const dataDir = mkdtempSync(join(tmpdir(), 'navaro-ts-'));
    return NavaroServer.spawn(0, dataDir, options);
  }

  private static async spawn(port: number, dataDir: string, options: StartOptions): Promise<NavaroServer> {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      // The developer's own settings must not leak into a test server.
      if (!key.startsWith('NAVARO_') && key !== 'RUST_LOG' && value !== undefined) env[key] = value;
    }
    Object.assign(env, TEST_ENV, options.env ?? {}, {
      NAVARO_HTTP__LISTEN: `127.0.0.1:${port}`,
      NAVARO_DATA_DIR: dataDir,
      NAVARO_LOG__FILTER: 'info',
    });
    const child = spawn(navaroBinary(), [options.command ?? 'serve'], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const logs: string[] = [];
    const bound = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`navaro did not log its address within ${START_TIMEOUT_MS} ms: ${logs.join('\n')}`));
      }, START_TIMEOUT_MS);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`navaro exited (${code}) before listening: ${logs.join('\n')}`));
      });
      createInterface({ input: child.stdout! }).on('line', (raw) => {
        // biome-ignore lint: strip ANSI colours
        const line = raw.replace(/\u001b\[[0-9;]*m/g, '');
        logs.push(line);
        const match = /listening.*addr=[^\s]*:(\d+)/.exec(line);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
    });
    return new NavaroServer(child, bound, dataDir, logs, options);
  }

  /** SIGKILL: no shutdown, no snapshot, open connections cut. */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM and wait for the exit (closes live feeds with 1001). */
  async terminate(): Promise<void> {
    this.child.kill('SIGTERM');
    await this.exited;
  }

  /** A new process on the same port and data directory (`serve`: the demo is not reloaded). */
  async restart(): Promise<NavaroServer> {
    await this.kill();
    return NavaroServer.spawn(this.port, this.dataDir, { ...this.options, command: 'serve' });
  }

  /** Kill and remove the data directory. */
  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  client(token?: string | (() => string)): NavaroClient {
    return createNavaroClient({ baseUrl: this.baseUrl, token: token ?? null, attempts: 40, maxRetryWaitMs: 250 });
  }
}

let users = 0;

/** Register a fresh user; returns its token and id. */
export async function register(server: NavaroServer, name: string): Promise<{ token: string; id: string; email: string }> {
  users += 1;
  const email = `${name.toLowerCase()}-${process.pid}-${users}-${Date.now()}@example.com`;
  const body = await ok(
    server.client().POST('/v1/auth/register', {
      body: { email, password: 'correct horse battery', name },
    }),
  );
  return { token: body.token, id: body.user.id, email };
}

export interface Shop {
  owner: { token: string; id: string; email: string };
  id: string;
  staffId: string;
  serviceId: string;
}

/** An establishment open every day 00:00-24:00 with one barber and a 30-minute cut. */
export async function setupShop(server: NavaroServer, timezone: TimeZoneName = 'America/Sao_Paulo'): Promise<Shop> {
  const owner = await register(server, 'Owner');
  const api = server.client(owner.token);
  const shop = await ok(
    api.POST('/v1/establishments', {
      body: { name: 'Barbearia Teste', timezone, slot_minutes: 15, queue_max_length: 500, max_future_bookings_per_customer: 500 },
    }),
  );
  const day = [['00:00', '24:00']];
  const hours = { mon: day, tue: day, wed: day, thu: day, fri: day, sat: day, sun: day };
  const staff = await ok(
    api.POST('/v1/establishments/{id}/staff', { params: { path: { id: shop.id } }, body: { name: 'Carlos', hours } }),
  );
  const service = await ok(
    api.POST('/v1/establishments/{id}/services', {
      params: { path: { id: shop.id } },
      body: { name: 'Corte', duration_minutes: 30, price_cents: 5000, staff_ids: [staff.id] },
    }),
  );
  return { owner, id: shop.id, staffId: staff.id, serviceId: service.id };
}

/** Poll `check` until it holds or `timeoutMs` passes (then fail with `what`). */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}
