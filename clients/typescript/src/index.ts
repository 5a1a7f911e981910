/**
 * `@navaro/client`: the Navaro API for TypeScript apps (browsers, React Native, Node).
 *
 * - {@link createNavaroClient}: every route, typed from the server's `/openapi.json`.
 * - {@link connectLive}: the live feed, kept connected, resumed with `since`, reloaded
 *   on `reload`, as a typed stream.
 * - {@link NavaroSession}: a sign-in whose short-lived access token is refreshed with
 *   `POST /v1/auth/refresh` (rotated, one refresh at a time; a refused one signs out).
 */
export { createNavaroClient, NavaroApiError, newKey, ok } from './api.js';
export type { ErrorBody, NavaroClient, NavaroClientOptions } from './api.js';
export { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { isBookingEvent, isQueueEvent } from './frames.js';
export type {
  FeedItem,
  HelloFrame,
  LiveEvent,
  LiveEventOf,
  LiveEventType,
  LiveFrame,
  ReloadFrame,
} from './frames.js';
export { CloseCode, connectLive, FeedOverflowError, LiveFeed } from './live.js';
export { NavaroSession } from './session.js';
export type { SessionOptions, SessionTokens } from './session.js';
export type {
  FeedState,
  LiveFeedOptions,
  StopReason,
  Token,
  WebSocketConstructor,
  WebSocketLike,
} from './live.js';
export type { components, paths } from './generated/openapi.js';

import type { components } from './generated/openapi.js';

type Schemas = components['schemas'];
export type Booking = Schemas['BookingDto'];
export type BookingStatus = Schemas['BookingStatus'];
export type Ticket = Schemas['TicketDto'];
export type TicketStatus = Schemas['TicketStatus'];
export type QueuePosition = Schemas['QueuePositionDto'];
export type Establishment = Schemas['EstablishmentDto'];
export type Staff = Schemas['StaffDto'];
export type Service = Schemas['ServiceDto'];
export type Me = Schemas['MeResponse'];
