import { type NavaroClient, NavaroApiError, ok } from '@navaro/client';
import { type FormEvent, useState } from 'react';

import type { Session } from './session';

interface Props {
  api: NavaroClient;
  onSignedIn: (session: Session) => void;
  notice: string | null;
}

export function SignIn({ api, onSignedIn, notice }: Props) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const login = await ok(api.POST('/v1/auth/login', { body: { email: email.trim(), password } }));
      onSignedIn({ tokens: login, email: email.trim() });
    } catch (failure) {
      if (failure instanceof NavaroApiError && failure.status === 401) setError('Wrong email or password.');
      else if (failure instanceof NavaroApiError && failure.status === 429) setError('Too many attempts: wait a minute and try again.');
      else setError(failure instanceof Error ? failure.message : 'Could not sign in.');
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="sign-in">
      <form onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Navaro Pro</h1>
        <p className="lead">Sign in to run today's queue and agenda.</p>
        {notice && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        <label htmlFor="email">Email</label>
        <input
          id="email"
          type="email"
          autoComplete="username"
          required
          autoFocus
          value={email}
          onChange={(e) => setEmail(e.target.value)}
        />
        <label htmlFor="password">Password</label>
        <input
          id="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
