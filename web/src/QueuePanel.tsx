import { type Establishment, type NavaroClient, NavaroApiError, type Ticket, ok } from '@navaro/client';
import { type FormEvent, useState } from 'react';

import { localTime, relative } from './time';

interface Props {
  api: NavaroClient;
  establishment: Establishment;
  tickets: Record<string, Ticket>;
  now: Date;
}

type Action = 'start' | 'finish' | 'no-show';

/** The walk-in queue: who is being served, who waits (place and estimate), and the buttons that move it. */
export function QueuePanel({ api, establishment: est, tickets, now }: Props) {
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const staffName = (id?: string | null) => est.staff.find((s) => s.id === id)?.name;
  const serviceName = (id: string) => est.services.find((s) => s.id === id)?.name ?? 'Service';
  const who = (t: Ticket) => t.name ?? 'App customer';
  const all = Object.values(tickets);
  const waiting = all.filter((t) => t.status === 'waiting').sort((a, b) => (a.position ?? 1e9) - (b.position ?? 1e9));
  const serving = all
    .filter((t) => t.status === 'called' || t.status === 'in_service')
    .sort((a, b) => a.number - b.number);
  const served = all.filter((t) => t.status === 'done').length;
  const path = { params: { path: { id: est.id } } };

  async function run(key: string, what: () => Promise<string>) {
    setBusy(key);
    try {
      setMessage({ text: await what(), error: false });
    } catch (failure) {
      const text =
        failure instanceof NavaroApiError
          ? failure.message
          : failure instanceof Error
            ? failure.message
            : String(failure);
      setMessage({ text, error: true });
    } finally {
      setBusy(null);
    }
  }

  const callNext = (staffId: string, name: string) =>
    run(`call-${staffId}`, async () => {
      try {
        const ticket = await ok(api.POST('/v1/establishments/{id}/queue/call-next', { ...path, body: { staff_id: staffId } }));
        return `Called #${ticket.number} ${who(ticket)} for ${name}.`;
      } catch (failure) {
        if (failure instanceof NavaroApiError && failure.status === 404) {
          throw new Error(`Nobody is waiting for ${name}.`);
        }
        throw failure;
      }
    });

  const act = (ticket: Ticket, action: Action) =>
    run(`${action}-${ticket.id}`, async () => {
      const params = { params: { path: { id: est.id, ticket_id: ticket.id } } };
      if (action === 'start') await ok(api.POST('/v1/establishments/{id}/queue/{ticket_id}/start', params));
      if (action === 'finish') await ok(api.POST('/v1/establishments/{id}/queue/{ticket_id}/finish', params));
      if (action === 'no-show') await ok(api.POST('/v1/establishments/{id}/queue/{ticket_id}/no-show', params));
      const verb = { start: 'Started', finish: 'Finished', 'no-show': 'Marked as no-show:' }[action];
      return `${verb} #${ticket.number} ${who(ticket)}.`;
    });

  return (
    <section className="panel queue" aria-labelledby="queue-title">
      <div className="panel-head">
        <h2 id="queue-title">Walk-in queue</h2>
        <p className="counts">
          <strong data-testid="waiting-count">{waiting.length}</strong> waiting · {served} served today
        </p>
      </div>

      <div className="call-next" role="group" aria-label="Call the next customer">
        {est.staff.map((s) => (
          <button
            key={s.id}
            type="button"
            className="primary"
            disabled={busy !== null}
            onClick={() => callNext(s.id, s.name)}
          >
            Call next · {s.name}
          </button>
        ))}
      </div>

      <p className={message?.error ? 'feedback error' : 'feedback'} role="status" aria-live="polite">
        {message?.text ?? ''}
      </p>

      <h3>Now serving</h3>
      {serving.length === 0 ? (
        <p className="empty">Nobody is being served.</p>
      ) : (
        <ul className="tickets serving" aria-label="Now serving">
          {serving.map((t) => (
            <li key={t.id} className={`ticket ${t.status}`} data-testid="serving-ticket" data-number={t.number}>
              <span className="number" aria-label={`Ticket ${t.number}`}>
                {t.number}
              </span>
              <span className="who">
                <strong>{who(t)}</strong>
                <span>
                  {serviceName(t.service_id)}
                  {staffName(t.staff_id) ? ` · ${staffName(t.staff_id)}` : ''}
                </span>
              </span>
              <span className="status-text">{t.status === 'called' ? 'Called' : 'In the chair'}</span>
              <span className="actions">
                {t.status === 'called' ? (
                  <>
                    <button type="button" disabled={busy !== null} onClick={() => act(t, 'start')}>
                      Start #{t.number}
                    </button>
                    <button type="button" className="quiet" disabled={busy !== null} onClick={() => act(t, 'no-show')}>
                      No-show #{t.number}
                    </button>
                  </>
                ) : (
                  <button type="button" disabled={busy !== null} onClick={() => act(t, 'finish')}>
                    Finish #{t.number}
                  </button>
                )}
              </span>
            </li>
          ))}
        </ul>
      )}

      <h3>Waiting</h3>
      {waiting.length === 0 ? (
        <p className="empty">Nobody is waiting.</p>
      ) : (
        <ol className="tickets waiting" aria-label="Waiting">
          {waiting.map((t) => (
            <li key={t.id} className="ticket waiting" data-testid="waiting-ticket" data-number={t.number}>
              <span className="position" aria-label={`Position ${t.position ?? '?'}`}>
                {t.position ?? '–'}
              </span>
              <span className="number" aria-label={`Ticket ${t.number}`}>
                #{t.number}
              </span>
              <span className="who">
                <strong>{who(t)}</strong>
                <span>
                  {serviceName(t.service_id)}
                  {staffName(t.staff_id) ? ` · wants ${staffName(t.staff_id)}` : ''}
                </span>
              </span>
              <span className="eta">
                {t.eta ? (
                  <>
                    <time dateTime={t.eta}>{localTime(est.timezone, t.eta)}</time>
                    <span className="relative">{relative(t.eta, now)}</span>
                  </>
                ) : (
                  <span className="relative">no estimate</span>
                )}
              </span>
            </li>
          ))}
        </ol>
      )}

      <AddWalkIn api={api} establishment={est} onDone={(text, error) => setMessage({ text, error })} />
    </section>
  );
}

function AddWalkIn({
  api,
  establishment: est,
  onDone,
}: {
  api: NavaroClient;
  establishment: Establishment;
  onDone: (text: string, error: boolean) => void;
}) {
  const [name, setName] = useState('');
  const [service, setService] = useState(est.services[0]?.id ?? '');
  const [staff, setStaff] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    try {
      const ticket = await ok(
        api.POST('/v1/establishments/{id}/queue', {
          params: { path: { id: est.id } },
          body: { service_id: service, name: name.trim(), staff_id: staff || null },
        }),
      );
      onDone(`Added #${ticket.number} ${ticket.name ?? ''}.`, false);
      setName('');
    } catch (failure) {
      onDone(failure instanceof Error ? failure.message : String(failure), true);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="walk-in" onSubmit={submit} aria-labelledby="walk-in-title">
      <h3 id="walk-in-title">Add a walk-in</h3>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
      </label>
      <label>
        Service
        <select value={service} onChange={(e) => setService(e.target.value)} required>
          {est.services.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Staff
        <select value={staff} onChange={(e) => setStaff(e.target.value)}>
          <option value="">Anyone</option>
          {est.staff.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
      </label>
      <button type="submit" disabled={busy || !service}>
        Add to queue
      </button>
    </form>
  );
}
