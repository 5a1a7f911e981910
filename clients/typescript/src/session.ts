/**
 * A signed-in session that keeps its access token fresh with `POST /v1/auth/refresh`.
 *
 * Access tokens are short-lived (15 minutes by default); the session trades its refresh
 * token for a new pair shortly before the access token expires, or at once when asked
 * for a token that has expired. Every refresh token is good once, and presenting a
 * retired one revokes the whole session on the server (`docs/api.md`, "Sessions"), so
 * refreshes here never run concurrently: callers asking during a refresh wait for it.
 * A refresh answered 401 (the session was revoked: signed out elsewhere, a password
 * change, an admin, or the reuse of a retired token) ends the session: `onSignedOut`
 * is called once and every later `token()` rejects. Network failures and 429/503 keep
 * the session; the next `token()` tries again.
 */
import { NavaroApiError, type ErrorBody } from './api.js';

/** The tokens a sign-in (register, login, password change) or a refresh answers. */
export interface SessionTokens {
  token: string;
  expires_at: string;
  refresh_token: string;
  refresh_expires_at: string;
  session_id: string;
}

export interface SessionOptions {
  /** `http(s)://host[:port]`. */
  baseUrl: string;
  /** The tokens of the sign-in (or as last stored). */
  tokens: SessionTokens;
  /** Called with the new tokens after each refresh: store them (the old ones are spent). */
  onTokens?: (tokens: SessionTokens) => void;
  /** Called once when the server ends the session (a refresh answered 401). */
  onSignedOut?: (error: NavaroApiError) => void;
  /** Refresh this long before the access token expires. Default 60 s. */
  refreshMarginMs?: number;
  /** Defaults to `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Milliseconds since the epoch; tests pass a fake clock. */
  now?: () => number;
}

/** A session: pass `session.token` as the `token` of `createNavaroClient` and `connectLive`. */
export class NavaroSession {
  private tokens: SessionTokens;
  private refreshing: Promise<SessionTokens> | null = null;
  private ended: NavaroApiError | null = null;
  private readonly options: SessionOptions;
  private readonly fetcher: typeof fetch;
  private readonly now: () => number;

  constructor(options: SessionOptions) {
    this.options = options;
    this.tokens = options.tokens;
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.now = options.now ?? Date.now;
  }

  /** The current tokens (to store, or for the session id). */
  get current(): SessionTokens {
    return this.tokens;
  }

  /** Whether the server ended the session. */
  get signedOut(): boolean {
    return this.ended !== null;
  }

  /** A valid access token, refreshed first when it is about to expire. */
  readonly token = async (): Promise<string> => {
    if (this.ended) throw this.ended;
    const margin = this.options.refreshMarginMs ?? 60_000;
    const expiresAt = Date.parse(this.tokens.expires_at);
    if (!(expiresAt - margin > this.now())) {
      try {
        await this.refresh();
      } catch (error) {
        // Not signed out (a network failure, 503): the current token serves while it lasts.
        if (this.ended || !(expiresAt > this.now())) throw error;
      }
    }
    return this.tokens.token;
  };

  /** Trade the refresh token for a new pair now; concurrent callers share one refresh. */
  refresh(): Promise<SessionTokens> {
    if (this.ended) return Promise.reject(this.ended);
    this.refreshing ??= this.exchange().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** Sign out on this device (`POST /v1/auth/logout`); the session ends here either way. */
  async signOut(): Promise<void> {
    if (this.ended) return;
    const token = this.tokens.token;
    // Ended here, by the app: `onSignedOut` is for the server ending it.
    this.ended = new NavaroApiError(401, undefined);
    const response = await this.fetcher(this.url('/v1/auth/logout'), {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    await response.body?.cancel();
  }

  private async exchange(): Promise<SessionTokens> {
    const response = await this.fetcher(this.url('/v1/auth/refresh'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: this.tokens.refresh_token }),
    });
    if (response.status === 401) {
      const body = (await response.json().catch(() => undefined)) as ErrorBody | undefined;
      const error = new NavaroApiError(401, body);
      this.end(error);
      throw error;
    }
    if (!response.ok) {
      const body = (await response.json().catch(() => undefined)) as ErrorBody | undefined;
      throw new NavaroApiError(response.status, body);
    }
    const tokens = (await response.json()) as SessionTokens;
    this.tokens = tokens;
    this.options.onTokens?.(tokens);
    return tokens;
  }

  private end(error: NavaroApiError): void {
    if (this.ended) return;
    this.ended = error;
    this.options.onSignedOut?.(error);
  }

  private url(path: string): string {
    return `${this.options.baseUrl.replace(/\/+$/, '')}${path}`;
  }
}
