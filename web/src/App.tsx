import { NavaroSession, createNavaroClient } from '@navaro/client';
import { useCallback, useEffect, useMemo, useState } from 'react';

import { Board } from './Board';
import { type Session, loadSession, saveSession } from './session';
import { SignIn } from './SignIn';

/** The board talks to the server that served it (same origin: no CORS, the feed's Origin check passes). */
const baseUrl = window.location.origin;

const ENDED = 'Your session ended: sign in again.';

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
  // One refreshing session per sign-in: renewals are saved for the next visit but do
  // not change `session`, so they make no new one (it keeps its own tokens).
  const live = useMemo(() => {
    if (!session) return null;
    return new NavaroSession({
      baseUrl,
      tokens: session.tokens,
      // Each renewal spends the stored refresh token: store its successor at once.
      onTokens: (tokens) => saveSession({ tokens, email: session.email }),
      // Revoked (signed out elsewhere, a password change) or a reused refresh token.
      onSignedOut: () => signOut(ENDED),
    });
  }, [session, signOut]);
  const api = useMemo(() => createNavaroClient({ baseUrl, token: live?.token ?? null }), [live]);
  // Renew ahead of expiry while the board is open, so that the feed's reconnects and the
  // next click find a valid token without waiting.
  useEffect(() => {
    if (!live) return;
    const timer = window.setInterval(() => void live.token().catch(() => undefined), 60_000);
    return () => window.clearInterval(timer);
  }, [live]);
  const leave = useCallback(
    (why?: string) => {
      if (!why) void live?.signOut().catch(() => undefined);
      signOut(why);
    },
    [live, signOut],
  );

  if (!session || !live) return <SignIn api={api} onSignedIn={signIn} notice={notice} />;
  return <Board api={api} session={session} token={live.token} onSignOut={leave} />;
}
