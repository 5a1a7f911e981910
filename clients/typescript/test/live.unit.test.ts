/**
 * The live feed's decisions with a scripted WebSocket and a manual clock: what it
 * resumes from after each documented close code, how long it waits, what it drops,
 * holds and delivers around a reload, and when it gives up.
 */
import { encode } from '@msgpack/msgpack';
import { describe, expect, test } from 'vitest';

import {
  type FeedItem,
  type FeedState,
  type LiveEvent,
  type LiveFeedOptions,
  type WebSocketConstructor,
  type WebSocketLike,
  CloseCode,
  LiveFeed,
  backoffDelay,
} from '../src/index.js';

class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  binaryType = 'blob';
  protocol = '';
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closedByClient: number | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string | string[],
    readonly options?: { headers?: Record<string, string> },
  ) {
    FakeSocket.all.push(this);
  }

  get since(): string | null {
    return new URL(this.url).searchParams.get('since');
  }

  open(): void {
    this.onopen?.({});
  }

  send(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  serverClose(code: number): void {
    this.onclose?.({ code, reason: '' });
  }

  close(code?: number): void {
    this.closedByClient = code ?? 1000;
  }
}

/** Timers run by hand: `clock.next()` fires the earliest. */
class ManualClock {
  timers: { at: number; run: () => void; id: number }[] = [];
  now = 0;
  private ids = 0;
  setTimeout = (run: () => void, ms: number) => {
    this.ids += 1;
    this.timers.push({ at: this.now + ms, run, id: this.ids });
    return this.ids;
  };
  clearTimeout = (id: unknown) => {
    this.timers = this.timers.filter((t) => t.id !== id);
  };
  /** Fire the next timer; returns the delay it had. */
  next(): number {
    this.timers.sort((a, b) => a.at - b.at);
    const timer = this.timers.shift();
    if (!timer) throw new Error('no timer');
    const waited = timer.at - this.now;
    this.now = timer.at;
    timer.run();
    return waited;
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

function event(seq: number, name = `T${seq}`): LiveEvent {
  return {
    seq,
    type: 'queue.joined',
    at: '2026-12-01T09:00:00-03:00',
    data: {
      ticket: { id: `t${seq}`, number: seq, name, service_id: 's', status: 'waiting', joined_at: '2026-12-01T09:00:00-03:00' },
      queue: [],
    },
  };
}

function setup(extra: Partial<LiveFeedOptions> = {}) {
  FakeSocket.all = [];
  const clock = new ManualClock();
  const items: FeedItem[] = [];
  const states: FeedState[] = [];
  const feed = new LiveFeed({
    baseUrl: 'https://navaro.test/',
    establishmentId: 'est',
    token: 'tok',
    WebSocket: FakeSocket as unknown as WebSocketConstructor,
    random: () => 0.5,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    fetch: async () => new Response(null, { status: 200 }),
    ...extra,
  });
  feed.on('event', (item) => items.push(item));
  feed.on('state', (state) => states.push(state));
  feed.start();
  const socket = () => {
    const last = FakeSocket.all.at(-1);
    if (!last) throw new Error('no socket');
    return last;
  };
  return { feed, clock, items, states, socket };
}

describe('the live feed, scripted', () => {
  test('connects with the subprotocol and the token, and resumes after each documented close with since', async () => {
    const { feed, clock, items, socket } = setup({ since: 4 });
    await tick();
    expect(socket().url).toBe('wss://navaro.test/v1/establishments/est/live?since=4&access_token=tok');
    expect(socket().protocols).toEqual(['navaro.v1.json']);
    socket().open();
    socket().send({ type: 'hello', seq: 6 });
    expect(feed.state).toEqual({ status: 'live', seq: 4 });
    socket().send(event(5));
    socket().send(event(6));
    let expected = 6;
    for (const code of [CloseCode.GoingAway, CloseCode.FeedEnded, CloseCode.SlowConsumer, CloseCode.NoPong, 1006]) {
      socket().serverClose(code);
      expect(feed.state).toMatchObject({ status: 'reconnecting', closeCode: code });
      clock.next();
      await tick();
      expect(socket().since).toBe(String(expected));
      socket().open();
      socket().send({ type: 'hello', seq: expected });
      // The server replays from since; what was delivered is dropped.
      socket().send(event(expected));
      expected += 1;
      socket().send(event(expected));
    }
    expect(items.map((i) => (i as LiveEvent).seq)).toEqual([5, 6, 7, 8, 9, 10, 11]);
    feed.close();
  });

  test('waits longer after each failed attempt, with jitter, and starts over once a hello arrives', async () => {
    const { clock, socket } = setup({ since: 0, backoff: { initialMs: 100, maxMs: 1_000 } });
    await tick();
    const waits: number[] = [];
    for (let n = 0; n < 6; n += 1) {
      socket().serverClose(1006); // refused before it opened: probed, then retried
      await tick();
      await tick();
      waits.push(clock.next());
      await tick();
    }
    // random() = 0.5: three quarters of 100, 200, 400, 800, then the 1 s cap.
    expect(waits).toEqual([75, 150, 300, 600, 750, 750]);
    socket().open();
    socket().send({ type: 'hello', seq: 0 });
    socket().serverClose(CloseCode.GoingAway);
    expect(clock.next()).toBe(75);
    expect(backoffDelay(3, { initialMs: 100, maxMs: 1_000 }, () => 0)).toBe(400);
    expect(backoffDelay(3, { initialMs: 100, maxMs: 1_000 }, () => 1)).toBe(800);
  });

  test('a reload holds the events that arrive meanwhile and delivers only those after the refetched state', async () => {
    let finish: (seq: number) => void = () => undefined;
    const { feed, items, socket } = setup({
      since: 2,
      reload: () =>
        new Promise<number>((resolve) => {
          finish = resolve;
        }),
    });
    await tick();
    socket().open();
    socket().send({ type: 'hello', seq: 50 });
    socket().send({ type: 'reload', seq: 50 });
    expect(feed.state).toEqual({ status: 'reloading', seq: 50 });
    socket().send(event(51));
    socket().send(event(52));
    socket().send(event(53));
    expect(items).toEqual([]);
    finish(52); // the refetched state already has 51 and 52
    await tick();
    expect(items.map((i) => (i.type === 'reload' ? `reload ${i.seq}` : i.seq))).toEqual(['reload 52', 53]);
    expect(feed.state).toEqual({ status: 'live', seq: 53 });
  });

  test('a failed reload reconnects from where it was, and the server asks for the reload again', async () => {
    let calls = 0;
    const { clock, socket } = setup({
      since: 2,
      reload: async () => {
        calls += 1;
        throw new Error('offline');
      },
    });
    await tick();
    const first = socket();
    first.open();
    first.send({ type: 'hello', seq: 9 });
    first.send({ type: 'reload', seq: 9 });
    await tick();
    expect(calls).toBe(1);
    expect(first.closedByClient).toBe(1000);
    clock.next();
    await tick();
    expect(socket()).not.toBe(first);
    expect(socket().since).toBe('9');
  });

  test('without since, the feed loads first and connects after what it loaded', async () => {
    const { socket, items } = setup({ reload: async () => 17 });
    await tick();
    await tick();
    expect(socket().since).toBe('17');
    expect(items).toEqual([{ type: 'reload', seq: 17 }]);
  });

  test('MessagePack frames are decoded from binary, and the token can go in a header', async () => {
    const { items, socket } = setup({ since: 0, encoding: 'msgpack', tokenIn: 'header' });
    await tick();
    expect(socket().protocols).toEqual(['navaro.v1.msgpack']);
    expect(socket().url).toBe('wss://navaro.test/v1/establishments/est/live?since=0');
    expect(socket().options?.headers).toEqual({ Authorization: 'Bearer tok' });
    expect(socket().binaryType).toBe('arraybuffer');
    socket().open();
    const bytes = encode(event(1, 'Ana'));
    socket().onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
    expect(items).toEqual([event(1, 'Ana')]);
  });

  test('a refused upgrade is probed: 401 with a fixed token, 403 and 404 stop the feed; others retry', async () => {
    for (const [status, state] of [
      [401, { status: 'stopped', reason: 'unauthorized' }],
      [403, { status: 'stopped', reason: 'forbidden' }],
      [404, { status: 'stopped', reason: 'not_found' }],
      [503, { status: 'reconnecting', refused: 503 }],
    ] as const) {
      const { feed, socket } = setup({ fetch: async () => new Response(null, { status }) });
      await tick();
      socket().serverClose(1006);
      await tick();
      await tick();
      expect(feed.state).toMatchObject(state);
      feed.close();
    }
    // With a token function, 401 retries: the next call may give a refreshed token.
    let issued = 0;
    const { feed, clock, socket } = setup({
      token: () => `tok${++issued}`,
      fetch: async () => new Response(null, { status: 401 }),
    });
    await tick();
    socket().serverClose(1006);
    await tick();
    await tick();
    expect(feed.state).toMatchObject({ status: 'reconnecting', refused: 401 });
    clock.next();
    await tick();
    expect(new URL(socket().url).searchParams.get('access_token')).toBe('tok2');
  });

  test('close() ends the stream, and wake() retries at once', async () => {
    const { feed, clock, socket } = setup({ since: 0 });
    await tick();
    socket().open();
    socket().send({ type: 'hello', seq: 0 });
    socket().serverClose(CloseCode.FeedEnded);
    const before = FakeSocket.all.length;
    feed.wake();
    await tick();
    expect(FakeSocket.all.length).toBe(before + 1);
    expect(clock.timers).toEqual([]);
    const stream = feed[Symbol.asyncIterator]();
    const pending = stream.next();
    socket().open();
    socket().send(event(1));
    expect((await pending).value).toEqual(event(1));
    const ended = stream.next();
    feed.close();
    expect(await ended).toEqual({ value: undefined, done: true });
    expect(socket().closedByClient).toBe(1000);
  });
});
