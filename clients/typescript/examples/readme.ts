/**
 * The README's two examples, kept here so that the type check proves they compile
 * (`npm run typecheck`); the runnable versions are customer.ts and pro.ts.
 */
import { type FeedState, NavaroSession, type QueuePosition, type Ticket, connectLive, createNavaroClient, isQueueEvent, ok } from '../src/index.js';

declare const baseUrl: string, shopId: string, cutId: string, carlosId: string, email: string, password: string;
declare const SecureStore: { setItemAsync(key: string, value: string): Promise<void> };
declare function showSignIn(): void;
declare function showPlace(place: QueuePosition | undefined): void;
declare function setTickets(tickets: Ticket[]): void;
declare function upsertTicket(ticket: Ticket): void;
declare function setConnection(status: FeedState['status']): void;

export async function customerApp() {
  const tokens = await ok(createNavaroClient({ baseUrl }).POST('/v1/auth/login', { body: { email, password } }));
  const session = new NavaroSession({
    baseUrl, tokens,
    onTokens: (next) => SecureStore.setItemAsync('navaro', JSON.stringify(next)), // each refresh token is good once
    onSignedOut: () => showSignIn(),
  });
  const api = createNavaroClient({ baseUrl, token: session.token });
  const path = { params: { path: { id: shopId } } };
  const free = await ok(api.GET('/v1/establishments/{id}/availability', { params: { path: { id: shopId }, query: { service_id: cutId, from: '2026-12-01', days: 7 } } }));
  if ('slots' in free && free.slots[0]) await ok(api.POST('/v1/establishments/{id}/bookings', { ...path, body: { service_id: cutId, start: free.slots[0].start } }));
  const ticket = await ok(api.POST('/v1/establishments/{id}/queue', { ...path, body: { service_id: cutId } }));
  const feed = connectLive({ baseUrl, establishmentId: shopId, token: session.token, tokenIn: 'header' });
  for await (const item of feed) {
    if (item.type !== 'reload' && isQueueEvent(item)) showPlace(item.data.queue.find((p) => p.ticket_id === ticket.id));
  }
}

export async function proApp(token: string) {
  const api = createNavaroClient({ baseUrl, token });
  const path = { params: { path: { id: shopId } } };
  const feed = connectLive({
    baseUrl, establishmentId: shopId, token, encoding: 'msgpack',
    // Load first, then follow from what was loaded; called again on a `reload` frame.
    reload: async () => { const q = await ok(api.GET('/v1/establishments/{id}/queue', path)); setTickets(q.tickets); return q.seq; },
  });
  feed.on('state', (s) => setConnection(s.status)); // connecting | live | reloading | reconnecting | stopped
  feed.on('event', (e) => { if (e.type !== 'reload' && isQueueEvent(e) && 'ticket' in e.data && e.data.ticket) upsertTicket(e.data.ticket); });
  await ok(api.POST('/v1/establishments/{id}/queue/call-next', { ...path, body: { staff_id: carlosId } }));
}
