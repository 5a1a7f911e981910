/**
 * A Pro app's live view, runnable against `navaro demo`:
 *   npx tsx examples/pro.ts [http://127.0.0.1:8080]
 * Signs in as the demo owner, loads the queue, then follows every change (run
 * examples/customer.ts or book from /docs in another window to see them arrive).
 */
import { pathToFileURL } from 'node:url';

import WebSocket from 'ws';

import { type LiveFeed, type Ticket, type WebSocketConstructor, connectLive, createNavaroClient, ok } from '../src/index.js';

export async function pro(baseUrl: string, onChange: (line: string) => void, email = 'owner@demo.navaro.dev', password = 'navaro-demo') {
  const { token } = await ok(createNavaroClient({ baseUrl }).POST('/v1/auth/login', { body: { email, password } }));
  const api = createNavaroClient({ baseUrl, token });
  const me = await ok(api.GET('/v1/me'));
  const id = me.memberships.find((m) => m.role === 'owner')?.establishment_id;
  if (!id) throw new Error(`${email} owns no establishment`);
  const queue = new Map<string, Ticket>();
  const feed: LiveFeed = connectLive({
    baseUrl, establishmentId: id, token, encoding: 'msgpack', WebSocket: WebSocket as unknown as WebSocketConstructor,
    reload: async () => {
      const q = await ok(api.GET('/v1/establishments/{id}/queue', { params: { path: { id } } }));
      queue.clear();
      for (const t of q.tickets) queue.set(t.id, t);
      return q.seq;
    },
  });
  feed.on('state', (s) => onChange(`feed ${s.status}`));
  feed.on('event', (e) => {
    if (e.type === 'reload') return onChange(`loaded ${queue.size} tickets`);
    if (e.type.startsWith('queue.') && 'ticket' in e.data && e.data.ticket) queue.set(e.data.ticket.id, e.data.ticket);
    onChange(`${e.seq} ${e.type}${'booking' in e.data ? ` ${e.data.booking.start}` : ''}`);
  });
  return { id, feed, queue, api };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await pro(process.argv[2] ?? 'http://127.0.0.1:8080', (line) => console.log(line));
}
