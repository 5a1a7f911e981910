/**
 * The REST client: openapi-fetch typed by the generated `paths`, with the bearer token,
 * an `Idempotency-Key` on every write, and retries of what the server says to retry.
 *
 * Retries follow `docs/api.md`: `503` (`overloaded`, `unavailable`) and `429`
 * (`rate_limited`) carry `Retry-After`; a write is retried only with the same
 * `Idempotency-Key` (the server then answers the first outcome, never books twice), so
 * the client adds one to every POST, PUT, PATCH and DELETE that has none. A network
 * failure is retried the same way.
 */
import createClient, { type Client, type Middleware } from 'openapi-fetch';

import type { components, paths } from './generated/openapi.js';
import type { Token } from './live.js';

export type ErrorBody = components['schemas']['ErrorBody'];

export interface NavaroClientOptions {
  /** `http(s)://host[:port]`. */
  baseUrl: string;
  /** The bearer token, or a function asked before each request; omit for public reads. */
  token?: Token | null;
  /** Tries per request on 429, 503 and network failures, the first included. Default 3. */
  attempts?: number;
  /** The longest wait between tries, whatever `Retry-After` says. Default 5 s. */
  maxRetryWaitMs?: number;
  /** Defaults to `globalThis.fetch`. */
  fetch?: typeof fetch;
}

export type NavaroClient = Client<paths>;

/** A client for the whole API, typed by the server's own document. */
export function createNavaroClient(options: NavaroClientOptions): NavaroClient {
  const baseFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const client = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    fetch: retrying(baseFetch, options.attempts ?? 3, options.maxRetryWaitMs ?? 5_000),
  });
  client.use(auth(options.token ?? null));
  return client;
}

function auth(token: Token | null): Middleware {
  return {
    async onRequest({ request }) {
      const value = typeof token === 'function' ? await token() : token;
      if (value && !request.headers.has('Authorization')) {
        request.headers.set('Authorization', `Bearer ${value}`);
      }
      if (request.method !== 'GET' && request.method !== 'HEAD' && !request.headers.has('Idempotency-Key')) {
        request.headers.set('Idempotency-Key', newKey());
      }
      return request;
    },
  };
}

const RETRIED_STATUSES = new Set([429, 503]);

function retrying(fetcher: typeof fetch, attempts: number, maxWaitMs: number) {
  return async (request: Request): Promise<Response> => {
    const write = request.method !== 'GET' && request.method !== 'HEAD';
    for (let attempt = 1; ; attempt += 1) {
      const last = attempt >= attempts;
      let response: Response;
      try {
        response = await fetcher(last ? request : request.clone());
      } catch (error) {
        // A write without a key might have been applied: only keyed writes are retried.
        if (last || (write && !request.headers.has('Idempotency-Key'))) throw error;
        await sleep(Math.min(maxWaitMs, 250 * 2 ** attempt));
        continue;
      }
      if (last || !RETRIED_STATUSES.has(response.status)) return response;
      const seconds = Number(response.headers.get('Retry-After'));
      const wait = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 250 * 2 ** attempt;
      await response.body?.cancel();
      await sleep(Math.min(maxWaitMs, wait));
    }
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A random UUID (v4): `crypto.randomUUID` where there is one (not on Hermes). */
export function newKey(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  const hex = [...Array(32)].map(() => Math.floor(Math.random() * 16).toString(16));
  hex[12] = '4';
  hex[16] = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/** An error answer, as an exception: `code` is the server's machine-readable code. */
export class NavaroApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly body: ErrorBody | undefined;

  constructor(status: number, body: ErrorBody | undefined) {
    super(body?.error.message ?? `HTTP ${status}`);
    this.name = 'NavaroApiError';
    this.status = status;
    this.code = body?.error.code ?? `http_${status}`;
    this.field = body?.error.field ?? undefined;
    this.body = body;
  }
}

/**
 * The data of an openapi-fetch answer, or a {@link NavaroApiError}:
 * `const booking = await ok(api.POST('/v1/establishments/{id}/bookings', {...}))`.
 */
export async function ok<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) {
    throw new NavaroApiError(response.status, error as ErrorBody | undefined);
  }
  return data as T;
}
