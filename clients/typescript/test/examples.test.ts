/**
 * The README's walk with the examples: `navaro demo`, the Pro example following the
 * demo shop, the customer example joining its queue and booking; the Pro side sees both.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';

import { customer } from '../examples/customer.js';
import { pro } from '../examples/pro.js';
import { NavaroServer, eventually } from './harness.js';

let server: NavaroServer;

beforeAll(async () => {
  server = await NavaroServer.start({ command: 'demo' });
});

afterAll(async () => {
  await server?.dispose();
});

test('the customer example books and queues at the demo shop; the Pro example sees it live', async () => {
  const lines: string[] = [];
  const desk = await pro(server.baseUrl, (line) => lines.push(line));
  await eventually('the Pro feed to be live', () => desk.feed.state.status === 'live');
  expect(lines).toContain('loaded 2 tickets'); // the demo's two walk-ins
  const { shop, ticket, booking, feed } = await customer(server.baseUrl);
  expect(shop.id).toBe(desk.id);
  await eventually('the join and the booking on the Pro feed', () =>
    lines.some((l) => l.endsWith('queue.joined')) && lines.some((l) => l.endsWith(`booking.confirmed ${booking.start}`)),
  );
  expect(desk.queue.get(ticket.id)?.status).toBe('waiting');
  expect(ticket.position).toBe(3);
  feed.close();
  desk.feed.close();
});
