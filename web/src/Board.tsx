import { type Establishment, type NavaroClient, NavaroApiError, type Token, ok } from '@navaro/client';
import { useEffect, useState } from 'react';

import { Agenda } from './Agenda';
import { useBoard } from './board';
import { ConnectionBadge } from './ConnectionBadge';
import { QueuePanel } from './QueuePanel';
import { type Session, lastEstablishment, rememberEstablishment } from './session';
import { localTime, longDate } from './time';

interface Props {
  api: NavaroClient;
  session: Session;
  /** The access token, renewed as it nears expiry. */
  token: Token;
  onSignOut: (why?: string) => void;
}

/** Picks the establishment (the last one used, else the newest), then shows its board. */
export function Board({ api, session, token, onSignOut }: Props) {
  const [places, setPlaces] = useState<Establishment[] | null>(null);
  const [chosen, setChosen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        const me = await ok(api.GET('/v1/me'));
        const ids = me.memberships
          .filter((m) => m.role === 'owner' || m.role === 'staff')
          .map((m) => m.establishment_id)
          .sort();
        const found = await Promise.all(
          ids.map((id) => ok(api.GET('/v1/establishments/{id}', { params: { path: { id } } }))),
        );
        if (cancelled) return;
        setPlaces(found);
        const last = lastEstablishment();
        // Ids are UUIDv7: the last sorts newest.
        setChosen(found.find((e) => e.id === last)?.id ?? found.at(-1)?.id ?? null);
      } catch (failure) {
        if (cancelled) return;
        if (failure instanceof NavaroApiError && failure.status === 401) onSignOut('Your session ended: sign in again.');
        else setError(failure instanceof Error ? failure.message : String(failure));
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [api, onSignOut]);

  if (error) return <Message title="Could not load your establishments" text={error} onSignOut={onSignOut} />;
  if (!places) return <Message title="Loading…" onSignOut={onSignOut} />;
  if (!chosen) {
    return (
      <Message
        title="No establishment"
        text={`${session.email} is not the owner or staff of any establishment.`}
        onSignOut={onSignOut}
      />
    );
  }
  return (
    <EstablishmentBoard
      key={chosen}
      api={api}
      token={token}
      establishmentId={chosen}
      places={places}
      onChoose={(id) => {
        rememberEstablishment(id);
        setChosen(id);
      }}
      onSignOut={onSignOut}
    />
  );
}

function Message({ title, text, onSignOut }: { title: string; text?: string; onSignOut: (why?: string) => void }) {
  return (
    <main className="message">
      <h1>{title}</h1>
      {text && <p>{text}</p>}
      <button type="button" onClick={() => onSignOut()}>
        Sign out
      </button>
    </main>
  );
}

interface BoardProps {
  api: NavaroClient;
  token: Token;
  establishmentId: string;
  places: Establishment[];
  onChoose: (id: string) => void;
  onSignOut: (why?: string) => void;
}

function EstablishmentBoard({ api, token, establishmentId, places, onChoose, onSignOut }: BoardProps) {
  const { state, connection, loadError, now } = useBoard(api, token, establishmentId, () =>
    onSignOut('Your session ended: sign in again.'),
  );
  const est = state.establishment;
  return (
    <div className="board">
      <header className="topbar">
        <div className="title">
          {places.length > 1 ? (
            <label className="picker">
              <span className="visually-hidden">Establishment</span>
              <select value={establishmentId} onChange={(e) => onChoose(e.target.value)}>
                {places.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            </label>
          ) : (
            <h1>{est?.name ?? places[0]?.name}</h1>
          )}
          {est && (
            <p className="today">
              {longDate(est.timezone, now)} · <time>{localTime(est.timezone, now)}</time>
            </p>
          )}
        </div>
        <ConnectionBadge state={connection} />
        <button type="button" className="quiet" onClick={() => onSignOut()}>
          Sign out
        </button>
      </header>
      {loadError && !est && (
        <p className="error" role="alert">
          Could not load the board: {loadError}
        </p>
      )}
      {est && (
        <main className="panels">
          <QueuePanel api={api} establishment={est} tickets={state.tickets} now={now} />
          <Agenda establishment={est} bookings={state.bookings} now={now} />
        </main>
      )}
    </div>
  );
}
