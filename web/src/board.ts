/**
 * The board's state: the establishment, today's bookings and the walk-in queue, loaded
 * over REST and then kept current by the live feed. Events are applied in seq order;
 * each carries the whole item after the change (and every waiting place), so applying
 * them is an upsert and replaying ones the loaded state already has is harmless.
 */
import {
  type Booking,
  type Establishment,
  type FeedState,
  type LiveEvent,
  type NavaroClient,
  type QueuePosition,
  type Ticket,
  type Token,
  connectLive,
  ok,
} from '@navaro/client';
import { useEffect, useReducer, useRef, useState } from 'react';

import { localDate } from './time';

export interface BoardState {
  establishment: Establishment | null;
  /** The local day shown. */
  date: string;
  bookings: Record<string, Booking>;
  tickets: Record<string, Ticket>;
}

type Action =
  | { type: 'loaded'; establishment: Establishment; date: string; bookings: Booking[]; tickets: Ticket[] }
  | { type: 'event'; event: LiveEvent };

const empty: BoardState = { establishment: null, date: '', bookings: {}, tickets: {} };

function places(tickets: Record<string, Ticket>, queue: QueuePosition[]): Record<string, Ticket> {
  const byId = new Map(queue.map((p) => [p.ticket_id, p]));
  const next: Record<string, Ticket> = {};
  for (const [id, ticket] of Object.entries(tickets)) {
    const place = byId.get(id);
    if (ticket.status === 'waiting' && place) {
      next[id] = { ...ticket, position: place.position, eta: place.eta ?? undefined };
    } else if (ticket.status === 'waiting') {
      next[id] = ticket;
    } else {
      const { position: _position, eta: _eta, ...rest } = ticket;
      next[id] = rest;
    }
  }
  return next;
}

export function reduce(state: BoardState, action: Action): BoardState {
  if (action.type === 'loaded') {
    return {
      establishment: action.establishment,
      date: action.date,
      bookings: Object.fromEntries(action.bookings.map((b) => [b.id, b])),
      tickets: Object.fromEntries(action.tickets.map((t) => [t.id, t])),
    };
  }
  const event = action.event;
  const est = state.establishment;
  if (!est) return state;
  switch (event.type) {
    case 'booking.confirmed':
    case 'booking.cancelled':
    case 'booking.rescheduled':
    case 'booking.completed':
    case 'booking.no_show': {
      const booking = event.data.booking;
      const bookings = { ...state.bookings };
      if (localDate(est.timezone, new Date(booking.start)) === state.date) bookings[booking.id] = booking;
      else delete bookings[booking.id];
      return { ...state, bookings };
    }
    case 'queue.joined':
    case 'queue.called':
    case 'queue.started':
    case 'queue.finished':
    case 'queue.no_show':
    case 'queue.left':
    case 'queue.moved': {
      const tickets = { ...state.tickets };
      if (event.data.ticket) tickets[event.data.ticket.id] = event.data.ticket;
      return { ...state, tickets: places(tickets, event.data.queue) };
    }
    case 'queue.estimates':
      return { ...state, tickets: places(state.tickets, event.data.queue) };
    case 'staff.added':
      return { ...state, establishment: { ...est, staff: [...est.staff, event.data.staff], seq: event.seq } };
    case 'staff.hours_set':
      return {
        ...state,
        establishment: {
          ...est,
          staff: est.staff.map((s) => (s.id === event.data.staff_id ? { ...s, hours: event.data.hours } : s)),
        },
      };
    case 'service.added':
      return { ...state, establishment: { ...est, services: [...est.services, event.data.service] } };
    case 'establishment.updated':
      return { ...state, establishment: { ...est, ...event.data.settings } };
    default:
      return state;
  }
}

/** The board's data and connection for one establishment. */
export function useBoard(api: NavaroClient, token: Token, establishmentId: string, onUnauthorized: () => void) {
  const [state, dispatch] = useReducer(reduce, empty);
  const [connection, setConnection] = useState<FeedState>({ status: 'connecting', attempt: 0 });
  const [loadError, setLoadError] = useState<string | null>(null);
  const unauthorized = useRef(onUnauthorized);
  unauthorized.current = onUnauthorized;
  const latest = useRef<Establishment | null>(null);
  latest.current = state.establishment;
  const [now, setNow] = useState(() => new Date());

  useEffect(() => {
    let cancelled = false;
    const path = { params: { path: { id: establishmentId } } };
    /** Everything the board shows; returns the seq it reflects, for the feed. */
    const load = async (): Promise<number> => {
      try {
        const establishment = await ok(api.GET('/v1/establishments/{id}', path));
        const date = localDate(establishment.timezone);
        const [bookings, queue] = await Promise.all([
          ok(api.GET('/v1/establishments/{id}/bookings', { params: { path: { id: establishmentId }, query: { date } } })),
          ok(api.GET('/v1/establishments/{id}/queue', path)),
        ]);
        if (!cancelled) {
          dispatch({ type: 'loaded', establishment, date, bookings: bookings.bookings, tickets: queue.tickets });
          setLoadError(null);
        }
        // Events after the establishment's seq are replayed over what was loaded after
        // it; each is an upsert, so the replay converges on the server's state.
        return establishment.seq;
      } catch (error) {
        if (!cancelled) setLoadError(error instanceof Error ? error.message : String(error));
        if ((error as { status?: number }).status === 401) unauthorized.current();
        throw error;
      }
    };
    const feed = connectLive({
      baseUrl: window.location.origin,
      establishmentId,
      token,
      reload: load,
    });
    feed.on('event', (item) => {
      if (item.type !== 'reload') dispatch({ type: 'event', event: item });
    });
    feed.on('state', (next) => {
      setConnection(next);
      if (next.status === 'stopped' && next.reason === 'unauthorized') unauthorized.current();
    });
    // The clock, the "now" line and the relative estimates move every 15 s; a new
    // local day reloads for it.
    let shownDate = '';
    const tick = window.setInterval(() => setNow(new Date()), 15_000);
    const dayCheck = window.setInterval(() => {
      const est = latest.current;
      if (!est) return;
      const today = localDate(est.timezone);
      if (shownDate && today !== shownDate) void load().catch(() => undefined);
      shownDate = today;
    }, 60_000);
    // Back to a hidden tab: reconnect now rather than at the end of a long backoff.
    const online = () => {
      if (document.visibilityState === 'visible') feed.wake();
    };
    document.addEventListener('visibilitychange', online);
    return () => {
      cancelled = true;
      feed.close();
      window.clearInterval(tick);
      window.clearInterval(dayCheck);
      document.removeEventListener('visibilitychange', online);
    };
  }, [api, token, establishmentId]);

  return { state, connection, loadError, now };
}
