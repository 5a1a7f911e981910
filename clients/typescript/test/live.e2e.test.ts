/**
 * The client against the real `navaro` binary: bookings and queue changes made through
 * the REST client reach other clients' live feeds; a SIGKILL and restart of the server
 * mid-stream loses and repeats nothing; reload, load-then-follow, MessagePack, the
 * header token, and refusals.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import {
  type FeedItem,
  type FeedState,
  type LiveEvent,
  type LiveFeed,
  connectLive,
  isBookingEvent,
  ok,
} from '../src/index.js';
import { NavaroServer, NodeWebSocket, type Shop, eventually, register, setupShop } from './harness.js';

let server: NavaroServer;

beforeAll(async () => {
  server = await NavaroServer.start();
});

afterAll(async () => {
  await server?.dispose();
});

/** A feed that records what it delivers, in order. */
function record(feed: LiveFeed): { items: FeedItem[]; states: FeedState[] } {
  const items: FeedItem[] = [];
  const states: FeedState[] = [feed.state];
  feed.on('event', (item) => items.push(item));
  feed.on('state', (state) => states.push(state));
  return { items, states };
}

function feedOf(shop: Shop, token: string, extra: Partial<Parameters<typeof connectLive>[0]> = {}): LiveFeed {
  return connectLive({
    baseUrl: server.baseUrl,
    establishmentId: shop.id,
    token,
    WebSocket: NodeWebSocket,
    backoff: { initialMs: 50, maxMs: 500 },
    ...extra,
  });
}

async function live(feed: LiveFeed): Promise<void> {
  await eventually('the feed to be live', () => feed.state.status === 'live');
}

/** A free start `days` ahead (on the 15-minute grid), `n` half-hours after 08:00 UTC. */
function start(days: number, n: number): string {
  const at = new Date();
  at.setUTCDate(at.getUTCDate() + days);
  at.setUTCHours(8, 0, 0, 0);
  return new Date(at.getTime() + n * 30 * 60_000).toISOString().replace('.000Z', 'Z');
}

describe('the live feed against the real server', () => {
  test("a booking made through the client appears on a second client's feed, in JSON and MessagePack", async () => {
    const shop = await setupShop(server);
    const owner = feedOf(shop, shop.owner.token);
    const ownerPacked = feedOf(shop, shop.owner.token, { encoding: 'msgpack', tokenIn: 'header' });
    const ownerSeen = record(owner);
    const packedSeen = record(ownerPacked);
    await Promise.all([live(owner), live(ownerPacked)]);

    const customer = await register(server, 'Bruna');
    const mine = feedOf(shop, customer.token);
    const mineSeen = record(mine);
    await live(mine);
    const booking = await ok(
      server.client(customer.token).POST('/v1/establishments/{id}/bookings', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId, start: start(2, 1) },
      }),
    );

    const confirmed = (items: FeedItem[]) =>
      items.find(
        (item): item is Extract<LiveEvent, { type: 'booking.confirmed' }> =>
          item.type === 'booking.confirmed' && item.data.booking.id === booking.id,
      );
    await eventually('the booking on all three feeds', () =>
      [ownerSeen, packedSeen, mineSeen].every(({ items }) => confirmed(items) !== undefined),
    );
    const json = confirmed(ownerSeen.items)!;
    const packed = confirmed(packedSeen.items)!;
    expect(packed).toEqual(json);
    expect(json.seq).toBe(booking.seq);
    expect(json.data.booking.customer_id).toBe(customer.id);
    expect(json.data.booking.start).toBe(booking.start);
    expect(isBookingEvent(json)).toBe(true);
    expect(confirmed(mineSeen.items)?.data.booking.id).toBe(booking.id);
    for (const feed of [owner, ownerPacked, mine]) feed.close();
  });

  test('a customer sees their own ticket and place in the queue, and nothing of anyone else', async () => {
    const shop = await setupShop(server);
    const ana = await register(server, 'Ana');
    const bia = await register(server, 'Bia');
    const anaFeed = feedOf(shop, ana.token);
    const anaSeen = record(anaFeed);
    await live(anaFeed);
    const joined = await ok(
      server.client(ana.token).POST('/v1/establishments/{id}/queue', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId },
      }),
    );
    await ok(
      server.client(bia.token).POST('/v1/establishments/{id}/queue', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId },
      }),
    );
    await eventually("Ana's frames for both joins", () => anaSeen.items.length >= 2);
    const [own, other] = anaSeen.items;
    if (own?.type !== 'queue.joined' || other?.type !== 'queue.joined') throw new Error(`${own?.type} ${other?.type}`);
    expect(own.data.ticket?.id).toBe(joined.id);
    expect(own.data.queue.map((p) => p.ticket_id)).toEqual([joined.id]);
    // Bia's join: Ana learns that her own place holds, and nothing of Bia's ticket.
    expect(other.data.ticket).toBeNull();
    expect(other.data.queue).toEqual([expect.objectContaining({ ticket_id: joined.id, position: 1 })]);
    anaFeed.close();
  });

  test('killing and restarting the server mid-stream loses and duplicates nothing', async () => {
    let current = await NavaroServer.start();
    try {
      const shop = await setupShop(current);
      const establishment = await ok(
        current.client().GET('/v1/establishments/{id}', { params: { path: { id: shop.id } } }),
      );
      const feed = connectLive({
        baseUrl: current.baseUrl,
        establishmentId: shop.id,
        token: shop.owner.token,
        since: establishment.seq,
        WebSocket: NodeWebSocket,
        backoff: { initialMs: 50, maxMs: 400 },
      });
      const seen = record(feed);
      await live(feed);

      // Writes go on while the server dies and comes back; each is retried with its
      // Idempotency-Key until it gets an answer, so each is made exactly once.
      const api = current.client(shop.owner.token);
      const made: { kind: 'ticket' | 'booking'; id: string; seq?: number }[] = [];
      const writes = 40;
      const writer = (async () => {
        for (let n = 0; n < writes; n += 1) {
          if (n % 2 === 0) {
            const ticket = await ok(
              api.POST('/v1/establishments/{id}/queue', {
                params: { path: { id: shop.id } },
                body: { service_id: shop.serviceId, name: `Walk-in ${n}` },
              }),
            );
            made.push({ kind: 'ticket', id: ticket.id });
          } else {
            const booking = await ok(
              api.POST('/v1/establishments/{id}/bookings', {
                params: { path: { id: shop.id } },
                body: { service_id: shop.serviceId, start: start(3, n), customer_id: shop.owner.id },
              }),
            );
            made.push({ kind: 'booking', id: booking.id, seq: booking.seq });
          }
        }
      })();
      await eventually('a few writes before the kill', () => made.length >= 8);
      const restarted = current.restart();
      current = await restarted;
      await writer;

      const final = await ok(
        current.client().GET('/v1/establishments/{id}', { params: { path: { id: shop.id } } }),
      );
      await eventually('the feed to catch up with the server', () => feed.seq === final.seq);
      expect(seen.states.some((s) => s.status === 'reconnecting')).toBe(true);
      expect(feed.state.status).toBe('live');

      const events = seen.items.filter((item): item is LiveEvent => item.type !== 'reload');
      expect(seen.items.length).toBe(events.length); // no reload was needed
      const seqs = events.map((e) => e.seq);
      // A member's feed is gap-free: every seq after `since`, once, in order.
      const expected = Array.from({ length: final.seq - establishment.seq }, (_, i) => establishment.seq + 1 + i);
      expect(seqs).toEqual(expected);

      const joinedTickets = events.flatMap((e) => (e.type === 'queue.joined' && e.data.ticket ? [e.data.ticket.id] : []));
      const confirmedBookings = events.flatMap((e) => (e.type === 'booking.confirmed' ? [e.data.booking.id] : []));
      expect(made.length).toBe(writes);
      expect(joinedTickets.sort()).toEqual(made.filter((m) => m.kind === 'ticket').map((m) => m.id).sort());
      expect(confirmedBookings.sort()).toEqual(made.filter((m) => m.kind === 'booking').map((m) => m.id).sort());
      feed.close();
    } finally {
      await current.dispose();
    }
  }, 120_000);

  test('a reload frame refetches, and only events after the refetched state follow', async () => {
    const shop = await setupShop(server);
    const api = server.client(shop.owner.token);
    let reloads = 0;
    const feed = feedOf(shop, shop.owner.token, {
      since: 1_000_000, // ahead of the establishment: the server answers `reload`
      reload: async () => {
        reloads += 1;
        const queue = await ok(api.GET('/v1/establishments/{id}/queue', { params: { path: { id: shop.id } } }));
        return queue.seq;
      },
    });
    const seen = record(feed);
    await live(feed);
    expect(reloads).toBe(1);
    expect(seen.items[0]?.type).toBe('reload');
    expect(seen.states.some((s) => s.status === 'reloading')).toBe(true);
    const ticket = await ok(
      api.POST('/v1/establishments/{id}/queue', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId, name: 'Depois' },
      }),
    );
    await eventually('the join after the reload', () =>
      seen.items.some((i) => i.type === 'queue.joined' && i.data.ticket?.id === ticket.id),
    );
    expect(feed.seq).toBeLessThan(1_000_000);
    feed.close();
  });

  test('without since, a feed with reload loads first and follows from what it loaded', async () => {
    const shop = await setupShop(server);
    const api = server.client(shop.owner.token);
    await ok(
      api.POST('/v1/establishments/{id}/queue', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId, name: 'Antes' },
      }),
    );
    let loadedSeq = -1;
    const feed = feedOf(shop, shop.owner.token, {
      reload: async () => {
        const queue = await ok(api.GET('/v1/establishments/{id}/queue', { params: { path: { id: shop.id } } }));
        loadedSeq = queue.seq;
        expect(queue.tickets.map((t) => t.name)).toEqual(['Antes']);
        return queue.seq;
      },
    });
    const seen = record(feed);
    await live(feed);
    expect(feed.seq).toBe(loadedSeq);
    await ok(
      api.POST('/v1/establishments/{id}/queue', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId, name: 'Depois' },
      }),
    );
    await eventually('the second join', () => seen.items.length === 2);
    expect(seen.items[0]).toEqual({ type: 'reload', seq: loadedSeq });
    const only = seen.items[1];
    expect(only?.type === 'queue.joined' && only.data.ticket?.name).toBe('Depois');
    feed.close();
  });

  test('a feed is consumed as a typed stream with for await', async () => {
    const shop = await setupShop(server);
    const api = server.client(shop.owner.token);
    const feed = feedOf(shop, shop.owner.token);
    await live(feed);
    const names = ['Um', 'Dois', 'Três'];
    // The stream yields what arrives after it is opened.
    const consumed = (async () => {
      const got: string[] = [];
      for await (const item of feed) {
        if (item.type === 'queue.joined') got.push(item.data.ticket?.name ?? '?');
        if (got.length === names.length) break;
      }
      return got;
    })();
    for (const name of names) {
      await ok(
        api.POST('/v1/establishments/{id}/queue', {
          params: { path: { id: shop.id } },
          body: { service_id: shop.serviceId, name },
        }),
      );
    }
    const got = await consumed;
    expect(got).toEqual(names);
    feed.close();
  });

  test('a bad token stops the feed as unauthorized, an unknown establishment as not_found', async () => {
    const shop = await setupShop(server);
    const bad = feedOf(shop, 'not-a-token');
    await eventually('the bad token to stop the feed', () => bad.state.status === 'stopped');
    expect(bad.state).toEqual({ status: 'stopped', reason: 'unauthorized' });
    const missing = connectLive({
      baseUrl: server.baseUrl,
      establishmentId: '0190c0de-0000-7000-8000-000000000000',
      token: shop.owner.token,
      WebSocket: NodeWebSocket,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    await eventually('the unknown establishment to stop the feed', () => missing.state.status === 'stopped');
    expect(missing.state).toEqual({ status: 'stopped', reason: 'not_found' });
  });

  test('a graceful shutdown (1001) is followed by a resume on the new process', async () => {
    const first = await NavaroServer.start();
    let second: NavaroServer | null = null;
    try {
      const shop = await setupShop(first);
      const feed = connectLive({
        baseUrl: first.baseUrl,
        establishmentId: shop.id,
        token: shop.owner.token,
        WebSocket: NodeWebSocket,
        backoff: { initialMs: 50, maxMs: 300 },
      });
      const seen = record(feed);
      await live(feed);
      await first.terminate();
      await eventually('the close to be seen', () =>
        seen.states.some((s) => s.status === 'reconnecting' && s.closeCode === 1001),
      );
      second = await first.restart();
      await live(feed);
      const ticket = await ok(
        second.client(shop.owner.token).POST('/v1/establishments/{id}/queue', {
          params: { path: { id: shop.id } },
          body: { service_id: shop.serviceId, name: 'Depois do reinício' },
        }),
      );
      await eventually('the join on the new process', () =>
        seen.items.some((i) => i.type === 'queue.joined' && i.data.ticket?.id === ticket.id),
      );
      feed.close();
    } finally {
      await (second ?? first).dispose();
    }
  }, 60_000);
});
