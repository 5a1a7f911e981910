import type { Booking, Establishment } from '@navaro/client';

import { hhmm, localTime, minuteOfDay, weekday } from './time';

interface Props {
  establishment: Establishment;
  /** Today's bookings (the board's day). */
  bookings: Record<string, Booking>;
  now: Date;
}

/** Pixels per minute of the timeline: an hour is 120 px, a 30-minute cut two lines. */
const PX_PER_MINUTE = 2;

const STATUS_TEXT: Record<Booking['status'], string> = {
  confirmed: 'Booked',
  completed: 'Done',
  no_show: 'No-show',
  cancelled: 'Cancelled',
};

/** Today's agenda: one column per staff member, bookings as blocks on a timeline. */
export function Agenda({ establishment: est, bookings, now }: Props) {
  const day = weekday(est.timezone, now);
  const shown = Object.values(bookings).filter((b) => b.status !== 'cancelled');
  // From the earliest opening to the latest closing today (whole hours), widened to
  // any booking outside them; 08:00-20:00 when nobody works today.
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const s of est.staff) {
    for (const [from, to] of ((s.hours as Record<string, string[][]>)[day] ?? []) as [string, string][]) {
      first = Math.min(first, hhmm(from));
      last = Math.max(last, hhmm(to));
    }
  }
  for (const b of shown) {
    first = Math.min(first, minuteOfDay(est.timezone, b.start));
    last = Math.max(last, minuteOfDay(est.timezone, b.end) || 24 * 60);
  }
  if (!Number.isFinite(first)) [first, last] = [8 * 60, 20 * 60];
  first = Math.floor(first / 60) * 60;
  last = Math.min(24 * 60, Math.ceil(last / 60) * 60);
  const hours = Array.from({ length: (last - first) / 60 + 1 }, (_, i) => first + i * 60);
  const top = (minute: number) => (minute - first) * PX_PER_MINUTE;
  const nowMinute = minuteOfDay(est.timezone, now);
  const service = (id: string) => est.services.find((s) => s.id === id)?.name ?? 'Service';

  return (
    <section className="panel agenda" aria-labelledby="agenda-title">
      <div className="panel-head">
        <h2 id="agenda-title">Today's agenda</h2>
        <p className="counts">
          <strong data-testid="booking-count">{shown.length}</strong> {shown.length === 1 ? 'booking' : 'bookings'}
        </p>
      </div>
      <div className="timeline" style={{ height: top(last) + 8 }}>
        <ol className="hours" aria-hidden="true">
          {hours.map((h) => (
            <li key={h} style={{ top: top(h) }}>
              {String(Math.floor(h / 60) % 24).padStart(2, '0')}:00
            </li>
          ))}
        </ol>
        <div className="columns" style={{ gridTemplateColumns: `repeat(${Math.max(1, est.staff.length)}, 1fr)` }}>
          {est.staff.map((s) => {
            const mine = shown.filter((b) => b.staff_id === s.id).sort((a, b) => a.start.localeCompare(b.start));
            return (
              <div key={s.id} className="column">
                <h3 className="column-head">{s.name}</h3>
                <ul className="blocks" aria-label={`${s.name}: ${mine.length} bookings today`}>
                  {mine.map((b) => {
                    const start = minuteOfDay(est.timezone, b.start);
                    const end = minuteOfDay(est.timezone, b.end) || 24 * 60;
                    return (
                      <li
                        key={b.id}
                        className={`block ${b.status}`}
                        data-testid="booking"
                        style={{ top: top(start), height: Math.max(28, (end - start) * PX_PER_MINUTE - 4) }}
                      >
                        <span className="when">
                          <time dateTime={b.start}>{localTime(est.timezone, b.start)}</time>–
                          <time dateTime={b.end}>{localTime(est.timezone, b.end)}</time>
                        </span>
                        <span className="what">{service(b.service_id)}</span>
                        {b.status !== 'confirmed' && <span className="status-text">{STATUS_TEXT[b.status]}</span>}
                      </li>
                    );
                  })}
                </ul>
              </div>
            );
          })}
        </div>
        {nowMinute >= first && nowMinute <= last && (
          <div className="now-line" style={{ top: top(nowMinute) }} aria-hidden="true">
            <span>{localTime(est.timezone, now)}</span>
          </div>
        )}
      </div>
    </section>
  );
}
