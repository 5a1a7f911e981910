/**
 * The live feed client: `GET /v1/establishments/{id}/live` over WebSocket, kept open.
 *
 * What it does, per `docs/api.md` ("Live feed"):
 * - connects with the subprotocol (`navaro.v1.json`, or `navaro.v1.msgpack` whose
 *   frames are binary MessagePack) and the token (the `access_token` query parameter,
 *   which every platform can send, or the `Authorization` header where the WebSocket
 *   takes headers: React Native, Node's `ws`); the token is asked for again on every
 *   connection, so a refreshed one is used;
 * - keeps the last seq it delivered and resumes after any close with `since=<seq>`, so
 *   a drop or a server restart loses and repeats nothing: a frame whose seq it already
 *   delivered is dropped;
 * - on `reload` (its `since` was too old, or ahead of a server that lost its data) calls
 *   your `reload()` to refetch, holds back the events that arrive meanwhile, and then
 *   delivers only those after what the refetched state reflects;
 * - reconnects after 1001 (shutdown), 1012 (the feed ended), 4008 (slow consumer),
 *   4009 (no pong) or a lost connection, waiting with exponential backoff and jitter;
 *   a refused upgrade is probed over HTTP, and 401 (bad token, unless `token` is a
 *   function that may give a new one), 403 or 404 stop it with that reason;
 * - exposes the frames as a typed stream (`for await (const item of feed)`), and as
 *   callbacks (`feed.on('event' | 'state', ...)`).
 *
 * It uses only `WebSocket`, `fetch` and timers, so it runs in browsers, React Native
 * and Node (pass `WebSocket` from the `ws` package on Node 20; Node 22 has one).
 */
import { decode as decodeMsgPack } from '@msgpack/msgpack';

import { type BackoffOptions, backoffDelay } from './backoff.js';
import type { FeedItem, LiveEvent, LiveFrame, ReloadFrame } from './frames.js';

/** Close codes the server documents; each means "reconnect with since". */
export const CloseCode = {
  GoingAway: 1001,
  FeedEnded: 1012,
  SlowConsumer: 4008,
  NoPong: 4009,
} as const;

/** The WebSocket the feed needs: the browser's, React Native's or `ws`'s. */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (
  url: string,
  protocols: string | string[],
  options?: { headers?: Record<string, string> },
) => WebSocketLike;

/** Why the feed stopped for good. */
export type StopReason = 'closed' | 'unauthorized' | 'forbidden' | 'not_found';

/** Where the feed stands; `live` once the server's hello arrived. */
export type FeedState =
  | { status: 'connecting'; attempt: number }
  | { status: 'live'; seq: number }
  | { status: 'reloading'; seq: number }
  | {
      status: 'reconnecting';
      attempt: number;
      retryInMs: number;
      /** The close code of the connection that ended, if it had opened. */
      closeCode: number | null;
      /** The HTTP status the probe of a refused upgrade got (401 with a token function). */
      refused?: number;
    }
  | { status: 'stopped'; reason: StopReason };

export type Token = string | (() => string | Promise<string>);

export interface LiveFeedOptions {
  /** The server, `http(s)://host[:port]`; the feed is at `ws(s)://` the same. */
  baseUrl: string;
  establishmentId: string;
  /** The bearer token, or a function asked before each connection (token refresh). */
  token: Token;
  /** Resume after this seq. Omitted: `reload()` first if given (load, then follow), else from now. */
  since?: number;
  /**
   * Refetch what you show (the queue, the agenda) and return the seq it reflects (the
   * queue's or the establishment's `seq`); called on `reload` frames and, without
   * `since`, before the first connection.
   */
  reload?: () => Promise<number | void>;
  /** `json` (default) or `msgpack` (smaller frames, binary). */
  encoding?: 'json' | 'msgpack';
  /** `query` (default; browsers cannot send headers on a WebSocket) or `header`. */
  tokenIn?: 'query' | 'header';
  /** Defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** For the probe of a refused upgrade; defaults to `globalThis.fetch`. */
  fetch?: typeof fetch;
  backoff?: BackoffOptions;
  /** Most items a `for await` consumer may fall behind before its iteration fails. */
  maxBuffered?: number;
  /** For tests: the jitter's randomness, and the timers. */
  random?: () => number;
  setTimeout?: (run: () => void, ms: number) => unknown;
  clearTimeout?: (timer: unknown) => void;
}

type Listener<T> = (value: T) => void;

/** Thrown by a `for await` over a feed whose consumer fell `maxBuffered` items behind. */
export class FeedOverflowError extends Error {
  constructor(limit: number) {
    super(`the consumer fell more than ${limit} items behind the live feed`);
    this.name = 'FeedOverflowError';
  }
}

const DEFAULT_MAX_BUFFERED = 10_000;

/** Open a live feed; it connects at once and keeps itself connected until `close()`. */
export function connectLive(options: LiveFeedOptions): LiveFeed {
  const feed = new LiveFeed(options);
  feed.start();
  return feed;
}

export class LiveFeed implements AsyncIterable<FeedItem> {
  private readonly options: LiveFeedOptions;
  private socket: WebSocketLike | null = null;
  private timer: unknown = null;
  private attempt = 0;
  private lastSeq: number | null;
  private current: FeedState = { status: 'connecting', attempt: 0 };
  private stopped = false;
  private started = false;
  /** Events that arrived while `reload()` ran. */
  private held: LiveEvent[] | null = null;
  /** Whether the current socket got its hello. */
  private helloSeen = false;
  private readonly eventListeners = new Set<Listener<FeedItem>>();
  private readonly stateListeners = new Set<Listener<FeedState>>();
  private readonly onOnline = () => this.wake();

  constructor(options: LiveFeedOptions) {
    if (!options.WebSocket && !(globalThis as { WebSocket?: unknown }).WebSocket) {
      throw new Error('no WebSocket here: pass options.WebSocket (on Node 20, the `ws` package)');
    }
    this.options = options;
    this.lastSeq = options.since ?? null;
  }

  /** The seq of the last event delivered (or the hello's); resume after it. */
  get seq(): number | null {
    return this.lastSeq;
  }

  get state(): FeedState {
    return this.current;
  }

  /** Start connecting (done by `connectLive`). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const events = globalThis as { addEventListener?: (type: string, listener: () => void) => void };
    events.addEventListener?.('online', this.onOnline);
    this.resume();
  }

  /** Load first when there is nothing to resume from and a way to load; then connect. */
  private resume(): void {
    if (this.lastSeq === null && this.options.reload) {
      void this.initialLoad();
    } else {
      void this.connect();
    }
  }

  /** Stop for good: closes the socket, ends every stream. */
  close(): void {
    if (this.stopped) return;
    this.stop('closed');
  }

  /** Reconnect now if waiting to retry (the app came to the foreground, the network returned). */
  wake(): void {
    if (this.current.status === 'reconnecting' && this.timer !== null) {
      this.clear(this.timer);
      this.timer = null;
      this.resume();
    }
  }

  on(type: 'event', listener: Listener<FeedItem>): () => void;
  on(type: 'state', listener: Listener<FeedState>): () => void;
  on(type: 'event' | 'state', listener: Listener<FeedItem> | Listener<FeedState>): () => void {
    if (type === 'event') {
      const l = listener as Listener<FeedItem>;
      this.eventListeners.add(l);
      return () => this.eventListeners.delete(l);
    }
    const l = listener as Listener<FeedState>;
    this.stateListeners.add(l);
    return () => this.stateListeners.delete(l);
  }

  /** The frames as a stream; ends when the feed stops. */
  [Symbol.asyncIterator](): AsyncIterator<FeedItem> {
    const limit = this.options.maxBuffered ?? DEFAULT_MAX_BUFFERED;
    const queue: FeedItem[] = [];
    let waiting: ((result: IteratorResult<FeedItem>) => void) | null = null;
    let error: Error | null = null;
    let done = false;
    const finish = () => {
      done = true;
      offEvent();
      offState();
      waiting?.({ value: undefined, done: true });
      waiting = null;
    };
    const offEvent = this.on('event', (item) => {
      if (waiting) {
        const resolve = waiting;
        waiting = null;
        resolve({ value: item, done: false });
      } else if (queue.length >= limit) {
        error = new FeedOverflowError(limit);
        offEvent();
      } else {
        queue.push(item);
      }
    });
    const offState = this.on('state', (state) => {
      if (state.status === 'stopped' && queue.length === 0) finish();
    });
    return {
      next: () => {
        const item = queue.shift();
        if (item) return Promise.resolve({ value: item, done: false });
        if (error) {
          finish();
          return Promise.reject(error);
        }
        if (done || this.stopped) {
          finish();
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve) => {
          waiting = resolve;
        });
      },
      return: () => {
        queue.length = 0;
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private async initialLoad(): Promise<void> {
    const reload = this.options.reload;
    if (!reload) return this.connect();
    this.setState({ status: 'reloading', seq: 0 });
    try {
      const seq = await reload();
      if (this.stopped) return;
      if (typeof seq === 'number') this.lastSeq = seq;
      this.emit({ type: 'reload', seq: this.lastSeq ?? 0 });
      void this.connect();
    } catch {
      if (!this.stopped) this.retry(null);
    }
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setState({ status: 'connecting', attempt: this.attempt });
    let token: string;
    try {
      token = await this.token();
    } catch {
      this.retry(null);
      return;
    }
    if (this.stopped) return;
    const Socket =
      this.options.WebSocket ?? (globalThis as unknown as { WebSocket: WebSocketConstructor }).WebSocket;
    const msgpack = this.options.encoding === 'msgpack';
    const protocol = msgpack ? 'navaro.v1.msgpack' : 'navaro.v1.json';
    const inHeader = this.options.tokenIn === 'header';
    const url = this.url(inHeader ? null : token);
    const socket = inHeader
      ? new Socket(url, [protocol], { headers: { Authorization: `Bearer ${token}` } })
      : new Socket(url, [protocol]);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.helloSeen = false;
    let opened = false;
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      const frame = this.decode(message.data);
      if (frame) this.receive(frame);
    };
    socket.onerror = () => {
      // A close event follows; that is where the feed decides what to do.
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.helloSeen = false;
      if (this.stopped) return;
      if (!opened) {
        void this.refused(token);
      } else {
        this.retry(event.code);
      }
    };
  }

  private url(token: string | null): string {
    const base = this.options.baseUrl.replace(/\/+$/, '').replace(/^http/, 'ws');
    // Built by hand: React Native's URLSearchParams cannot `set`.
    const query: string[] = [];
    if (this.lastSeq !== null) query.push(`since=${this.lastSeq}`);
    if (token !== null) query.push(`access_token=${encodeURIComponent(token)}`);
    const id = encodeURIComponent(this.options.establishmentId);
    return `${base}/v1/establishments/${id}/live${query.length ? `?${query.join('&')}` : ''}`;
  }

  private async token(): Promise<string> {
    const token = this.options.token;
    return typeof token === 'function' ? await token() : token;
  }

  private decode(data: unknown): LiveFrame | null {
    try {
      if (typeof data === 'string') return JSON.parse(data) as LiveFrame;
      if (data instanceof ArrayBuffer) return decodeMsgPack(new Uint8Array(data)) as LiveFrame;
      if (ArrayBuffer.isView(data)) {
        return decodeMsgPack(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) as LiveFrame;
      }
    } catch {
      // A frame that does not decode is not ours to act on; the seq check catches loss.
    }
    return null;
  }

  private receive(frame: LiveFrame): void {
    switch (frame.type) {
      case 'hello':
        this.attempt = 0;
        this.helloSeen = true;
        if (this.lastSeq === null) this.lastSeq = frame.seq;
        if (this.held === null) this.setState({ status: 'live', seq: this.lastSeq });
        return;
      case 'reload':
        void this.reload(frame);
        return;
      default:
        this.event(frame);
    }
  }

  private event(event: LiveEvent): void {
    if (this.held !== null) {
      this.held.push(event);
      return;
    }
    if (this.lastSeq !== null && event.seq <= this.lastSeq) return; // already delivered
    this.lastSeq = event.seq;
    this.emit(event);
  }

  private async reload(frame: ReloadFrame): Promise<void> {
    this.lastSeq = frame.seq;
    const reload = this.options.reload;
    if (!reload) {
      this.emit(frame);
      this.setState({ status: 'live', seq: frame.seq });
      return;
    }
    if (this.held !== null) return; // one reload at a time; its events are held
    this.held = [];
    this.setState({ status: 'reloading', seq: frame.seq });
    const socket = this.socket;
    try {
      const seq = await reload();
      if (typeof seq === 'number') this.lastSeq = Math.max(frame.seq, seq);
    } catch {
      // Reconnect from the seq we had: the server answers with `reload` again.
      this.held = null;
      this.lastSeq = frame.seq;
      if (this.socket === socket && socket) {
        this.socket = null;
        socket.close(1000, 'reload failed');
        if (!this.stopped) this.retry(null);
      }
      return;
    }
    const held = this.held ?? [];
    this.held = null;
    if (this.stopped) return;
    this.emit({ type: 'reload', seq: this.lastSeq ?? frame.seq });
    for (const event of held) this.event(event);
    if (this.helloSeen) this.setState({ status: 'live', seq: this.lastSeq ?? frame.seq });
  }

  /** The upgrade was refused or the connection failed before it: find out which. */
  private async refused(token: string): Promise<void> {
    const status = await this.probe(token);
    if (this.stopped) return;
    if (status === 401 && typeof this.options.token !== 'function') {
      this.stop('unauthorized');
    } else if (status === 403) {
      this.stop('forbidden');
    } else if (status === 404) {
      this.stop('not_found');
    } else {
      this.retry(null, status ?? undefined);
    }
  }

  /** The status the same credentials get from the queue (any user may read it). */
  private async probe(token: string): Promise<number | null> {
    const fetcher = this.options.fetch ?? globalThis.fetch;
    if (!fetcher) return null;
    const base = this.options.baseUrl.replace(/\/+$/, '');
    const id = encodeURIComponent(this.options.establishmentId);
    try {
      const response = await fetcher(`${base}/v1/establishments/${id}/queue`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      return response.status;
    } catch {
      return null; // the network: retry
    }
  }

  private retry(closeCode: number | null, refused?: number): void {
    if (this.stopped) return;
    const random = this.options.random ?? Math.random;
    const delay = backoffDelay(this.attempt, this.options.backoff, random);
    this.attempt += 1;
    const state: FeedState = { status: 'reconnecting', attempt: this.attempt, retryInMs: delay, closeCode };
    if (refused !== undefined && refused >= 400) state.refused = refused;
    this.setState(state);
    this.timer = this.schedule(() => {
      this.timer = null;
      this.resume();
    }, delay);
  }

  private stop(reason: StopReason): void {
    this.stopped = true;
    if (this.timer !== null) this.clear(this.timer);
    this.timer = null;
    const events = globalThis as { removeEventListener?: (type: string, listener: () => void) => void };
    events.removeEventListener?.('online', this.onOnline);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, 'client closed');
    this.setState({ status: 'stopped', reason });
  }

  private schedule(run: () => void, ms: number): unknown {
    return (this.options.setTimeout ?? globalThis.setTimeout)(run, ms);
  }

  private clear(timer: unknown): void {
    (this.options.clearTimeout ?? ((t: unknown) => globalThis.clearTimeout(t as never)))(timer);
  }

  private emit(item: FeedItem): void {
    for (const listener of [...this.eventListeners]) {
      try {
        listener(item);
      } catch (error) {
        // A listener's bug must not stop the feed; surface it where errors go.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  private setState(state: FeedState): void {
    this.current = state;
    for (const listener of [...this.stateListeners]) {
      try {
        listener(state);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
