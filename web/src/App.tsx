import { createNavaroClient } from '@navaro/client';
import { useCallback, useEffect, useMemo, useState } from 'react';

import { Board } from './Board';
import { type Session, loadSession, saveSession } from './session';
import { SignIn } from './SignIn';

/** The board talks to the server that served it (same origin: no CORS, the feed's Origin check passes). */
const baseUrl = window.location.origin;

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [notice, setNotice] = useState<string | null>(null);

  const signIn = useCallback((next: Session) => {
    saveSession(next);
    setNotice(null);
    setSession(next);
  }, []);
  const signOut = useCallback((why?: string) => {
    saveSession(null);
    setNotice(why ?? null);
    setSession(null);
  }, []);
  const api = useMemo(() => createNavaroClient({ baseUrl, token: session?.token ?? null }), [session]);
  // Tokens are not refreshed yet (the server has no refresh route): when this one
  // expires, ask for the password again rather than failing every call.
  useEffect(() => {
    if (!session) return;
    const left = new Date(session.expiresAt).getTime() - Date.now();
    const timer = window.setTimeout(() => signOut('Your session ended: sign in again.'), Math.min(Math.max(0, left), 2_147_483_647));
    return () => window.clearTimeout(timer);
  }, [session, signOut]);

  if (!session) return <SignIn api={api} onSignedIn={signIn} notice={notice} />;
  return <Board api={api} session={session} onSignOut={signOut} />;
}
