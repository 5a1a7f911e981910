/**
 * The live feed's frames, named from the generated schema (`/openapi.json` describes
 * each frame as a component; see `gateway/src/frames.rs`).
 */
import type { components } from './generated/openapi.js';

type Schemas = components['schemas'];

/** Any frame the server sends, discriminated by `type`. */
export type LiveFrame = Schemas['LiveFrame'];
/** The first frame: the establishment's current seq. */
export type HelloFrame = Schemas['HelloFrame'];
/** `since` was too old or ahead: refetch, then resume after `seq`. */
export type ReloadFrame = Schemas['ReloadFrame'];
/** A change: `{seq, type, at, data}`. */
export type LiveEvent = Exclude<LiveFrame, HelloFrame | ReloadFrame>;
/** `booking.confirmed`, `queue.joined`, ... */
export type LiveEventType = LiveEvent['type'];
/** The event of one type: `LiveEventOf<'queue.joined'>['data']['ticket']`. */
export type LiveEventOf<T extends LiveEventType> = Extract<LiveEvent, { type: T }>;

/**
 * What a live feed's stream yields: events, and `reload` each time the feed's `reload()`
 * loaded the state (first, and on a `reload` frame), with the seq it reflects.
 */
export type FeedItem = LiveEvent | ReloadFrame;

const BOOKING_EVENTS = new Set<string>([
  'booking.confirmed',
  'booking.cancelled',
  'booking.rescheduled',
  'booking.completed',
  'booking.no_show',
]);

/** Whether an event carries a `booking` (the booking after the change). */
export function isBookingEvent(
  event: LiveEvent,
): event is Extract<LiveEvent, { data: { booking: unknown } }> {
  return BOOKING_EVENTS.has(event.type);
}

/** Whether an event is about the walk-in queue (each carries every waiting place). */
export function isQueueEvent(event: LiveEvent): event is Extract<LiveEvent, { type: `queue.${string}` }> {
  return event.type.startsWith('queue.');
}
