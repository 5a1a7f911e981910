/** The signed-in user's token, kept in this browser until it expires or they sign out. */
export interface Session {
  token: string;
  expiresAt: string;
  email: string;
}

const KEY = 'navaro.pro.session';

export function loadSession(): Session | null {
  try {
    const session = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Session | null;
    if (session && new Date(session.expiresAt).getTime() > Date.now()) return session;
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
