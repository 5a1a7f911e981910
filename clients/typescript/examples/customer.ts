/**
 * A customer app's calls, runnable against `navaro demo`:
 *   npx tsx examples/customer.ts [http://127.0.0.1:8080]
 * Signs in as a demo customer, joins the walk-in queue of the shop they booked at, books
 * the first free slot tomorrow, then follows their own place in the queue.
 */
import { pathToFileURL } from 'node:url';

import WebSocket from 'ws';

import { type LiveFeed, type WebSocketConstructor, connectLive, createNavaroClient, isQueueEvent, ok } from '../src/index.js';

export async function customer(baseUrl: string, email = 'bruno@demo.navaro.dev', password = 'navaro-demo') {
  const { token } = await ok(createNavaroClient({ baseUrl }).POST('/v1/auth/login', { body: { email, password } }));
  const api = createNavaroClient({ baseUrl, token });
  const mine = await ok(api.GET('/v1/me/bookings'));
  const id = mine.bookings[0]?.establishment_id;
  if (!id) throw new Error(`${email} has no bookings: which shop? (run navaro demo)`);
  const path = { params: { path: { id } } };
  const shop = await ok(api.GET('/v1/establishments/{id}', path));
  const service = shop.services[0]!;
  const ticket = await ok(api.POST('/v1/establishments/{id}/queue', { ...path, body: { service_id: service.id } }));
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  const free = await ok(api.GET('/v1/establishments/{id}/availability', { params: { path: { id }, query: { service_id: service.id, from: tomorrow, days: 1 } } }));
  if (!('slots' in free) || !free.slots[0]) throw new Error('no free slot tomorrow');
  const booking = await ok(api.POST('/v1/establishments/{id}/bookings', { ...path, body: { service_id: service.id, start: free.slots[0].start } }));
  const feed: LiveFeed = connectLive({ baseUrl, establishmentId: id, token, tokenIn: 'header', WebSocket: WebSocket as unknown as WebSocketConstructor });
  return { shop, ticket, booking, feed };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { shop, ticket, booking, feed } = await customer(process.argv[2] ?? 'http://127.0.0.1:8080');
  console.log(`${shop.name}: ticket #${ticket.number}, place ${ticket.position}; booked ${booking.start}`);
  for await (const item of feed) {
    if (item.type !== 'reload' && isQueueEvent(item)) {
      const place = item.data.queue.find((p) => p.ticket_id === ticket.id);
      console.log(item.type, place ? `place ${place.position}, eta ${place.eta ?? '?'}` : 'no longer waiting');
    }
  }
}
