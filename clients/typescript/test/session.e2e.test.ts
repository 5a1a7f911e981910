/**
 * `NavaroSession` against the real `navaro` binary: it refreshes the access token
 * before it expires (rotating the refresh token), shares one refresh among concurrent
 * callers (a second refresh with the same token would revoke the session), and signs
 * out when the server ends the session, here because a stolen copy of an old refresh
 * token was used. A fake clock stands for the 15 minutes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { NavaroApiError, NavaroSession, type SessionTokens, createNavaroClient, ok } from '../src/index.js';
import { NavaroServer } from './harness.js';

let server: NavaroServer;

beforeAll(async () => {
  server = await NavaroServer.start();
});

afterAll(async () => {
  await server?.dispose();
});

async function signUp(): Promise<SessionTokens> {
  const email = `session-${process.pid}-${Date.now()}@example.com`;
  return ok(
    server.client().POST('/v1/auth/register', {
      body: { email, password: 'correct horse battery', name: 'Session' },
    }),
  );
}

/** `fetch` that counts the refreshes it carries. */
function counting(): { fetch: typeof fetch; refreshes: () => number } {
  let refreshes = 0;
  return {
    fetch: (input, init) => {
      if (String(input).endsWith('/v1/auth/refresh')) refreshes += 1;
      return globalThis.fetch(input, init);
    },
    refreshes: () => refreshes,
  };
}

describe('a session against the real server', () => {
  test('refreshes before expiry, once for concurrent callers, and signs out when the server ends it', async () => {
    const first = await signUp();
    let clock = Date.now();
    const stored: SessionTokens[] = [];
    const ended: NavaroApiError[] = [];
    const { fetch, refreshes } = counting();
    const session = new NavaroSession({
      baseUrl: server.baseUrl,
      tokens: first,
      onTokens: (tokens) => stored.push(tokens),
      onSignedOut: (error) => ended.push(error),
      fetch,
      now: () => clock,
    });
    const api = createNavaroClient({ baseUrl: server.baseUrl, token: session.token });

    // Fresh: no refresh.
    await ok(api.GET('/v1/me'));
    expect(refreshes()).toBe(0);

    // Near expiry: one refresh for five callers at once, a new pair, the same session.
    clock = Date.parse(first.expires_at) - 30_000;
    const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => session.token()));
    expect(refreshes()).toBe(1);
    expect(new Set(tokens).size).toBe(1);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.refresh_token).not.toBe(first.refresh_token);
    expect(stored[0]!.session_id).toBe(first.session_id);
    clock = Date.now();
    await ok(api.GET('/v1/me'));

    // A thief replays the first refresh token: the server revokes the session.
    const thief = new NavaroSession({ baseUrl: server.baseUrl, tokens: first, now: () => Date.parse(first.expires_at) });
    await expect(thief.token()).rejects.toMatchObject({ status: 401 });

    // The device's next refresh is refused: it signs out, once, and stays out.
    clock = Date.parse(session.current.expires_at) + 1_000;
    await expect(session.token()).rejects.toBeInstanceOf(NavaroApiError);
    expect(ended).toHaveLength(1);
    expect(session.signedOut).toBe(true);
    await expect(session.token()).rejects.toMatchObject({ status: 401 });
    expect(refreshes()).toBe(2);
  });

  test('signing out revokes the tokens on the server', async () => {
    const tokens = await signUp();
    const session = new NavaroSession({ baseUrl: server.baseUrl, tokens });
    const api = createNavaroClient({ baseUrl: server.baseUrl, token: tokens.token });
    await ok(api.GET('/v1/me'));
    await session.signOut();
    const { response } = await api.GET('/v1/me');
    expect(response.status).toBe(401);
    await expect(session.token()).rejects.toMatchObject({ status: 401 });
  });

  test('a failed refresh (server unreachable) keeps the session and its unexpired token', async () => {
    const tokens = await signUp();
    let clock = Date.parse(tokens.expires_at) - 10_000;
    let down = true;
    const session = new NavaroSession({
      baseUrl: server.baseUrl,
      tokens,
      fetch: (input, init) => (down ? Promise.reject(new TypeError('network down')) : globalThis.fetch(input, init)),
      now: () => clock,
    });
    expect(await session.token()).toBe(tokens.token);
    expect(session.signedOut).toBe(false);
    // Expired and still unreachable: an error, not a sign-out; reachable again: refreshed.
    clock = Date.parse(tokens.expires_at) + 1_000;
    await expect(session.token()).rejects.toThrow('network down');
    down = false;
    await session.token();
    // (The access token may be byte-identical if issued within the same second.)
    expect(session.current.refresh_token).not.toBe(tokens.refresh_token);
    expect(session.signedOut).toBe(false);
  });
});
