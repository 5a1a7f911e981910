import type { SessionTokens } from '@navaro/client';

/**
 * The signed-in user's tokens, kept in this browser while the refresh token lasts: the
 * short-lived access token is renewed with it (`NavaroSession`), and each renewal's
 * tokens replace these (a refresh token is good once).
 */
export interface Session {
  tokens: SessionTokens;
  email: string;
}

const KEY = 'navaro.pro.session';

export function loadSession(): Session | null {
  try {
    const session = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Session | null;
    const until = session?.tokens?.refresh_expires_at;
    if (session && until && new Date(until).getTime() > Date.now()) return session;
  } catch {
    // A damaged entry is no session.
  }
  localStorage.removeItem(KEY);
  return null;
}

export function saveSession(session: Session | null): void {
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
}

const PLACE = 'navaro.pro.establishment';

export function lastEstablishment(): string | null {
  return localStorage.getItem(PLACE);
}

export function rememberEstablishment(id: string): void {
  localStorage.setItem(PLACE, id);
}
