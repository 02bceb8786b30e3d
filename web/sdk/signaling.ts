/**
 * The WebSocket signaling client for the kaiwa native protocol (docs/protocol.md).
 *
 * - request ids with promise replies (`ok` / `error` with `re`) and per-request timeouts;
 * - application heartbeat (`ping` every `hello.heartbeat` ms) and a liveness check: a connection that has
 *   received nothing for three heartbeats is treated as dead;
 * - automatic reconnect with exponential backoff and jitter. The socket layer only reconnects and says so
 *   (`reopen`); the Room re-attaches with `resume` (or a fresh `join`) and then calls `setAttached(true)`;
 *   room messages sent meanwhile wait in a bounded outbox;
 * - client-side pacing below the server's `messagesPerSecond` so bursts (ICE candidates) are not dropped.
 */
import { Emitter } from './emitter.js';
import { KaiwaError, PROTOCOL_VERSION, type ByeReason, type HelloMessage, type ServerMessage } from './types.js';

export type SignalingState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface SignalingEvents {
  /** Connection state: `connected` means the socket is open *and* the room session is attached. */
  state: SignalingState;
  /** Every server event that is not a reply (`peer-joined`, `signal`, `chat`, ...). */
  message: ServerMessage;
  /** A new socket is open after a drop and `hello` arrived: the owner should `resume` now. */
  reopen: HelloMessage;
  /** An `error` event that answers no request of ours (e.g. `rate-limited`, `unknown-peer` for a signal). */
  error: KaiwaError;
  bye: { reason: ByeReason };
}

export interface SignalingOptions {
  /** Reply timeout for requests, ms. */
  requestTimeoutMs?: number;
  /** Timeout for opening the socket and receiving `hello`, ms. */
  connectTimeoutMs?: number;
  /** Backoff: first delay and cap, ms. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Give up reconnecting after this long without success, ms. */
  reconnectTimeoutMs?: number;
  /** The WebSocket constructor (for tests or non-browser runtimes). */
  WebSocketImpl?: typeof WebSocket;
}

interface Pending {
  resolve: (m: ServerMessage) => void;
  reject: (e: KaiwaError) => void;
  timer: ReturnType<typeof setTimeout>;
  type: string;
  /** Written to a socket (a reply can only come on that socket). */
  sent: boolean;
}

interface Outgoing {
  frame: string;
  /** Request id, if this frame is a request (so a queued request can be failed). */
  id?: number;
}

const MAX_OUTBOX = 1024;

export class SignalingClient extends Emitter<SignalingEvents> {
  readonly url: string;
  private readonly opts: Required<Omit<SignalingOptions, 'WebSocketImpl'>> & { WebSocketImpl: typeof WebSocket };
  private ws: WebSocket | null = null;
  private _state: SignalingState = 'closed';
  private _hello: HelloMessage | null = null;
  private attached = false;
  private closedByUser = false;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  /** Room messages waiting for an attached session or for pacing tokens. */
  private outbox: Outgoing[] = [];
  /** Frames that may go out before the session is attached (join, resume, leave, ping). */
  private priority: Outgoing[] = [];
  private tokens = 0;
  private lastRefill = 0;
  private pumpTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private reconnectAttempt = 0;
  private reconnectSince = 0;
  private reconnectDueAt = 0;
  private lastReceived = 0;
  private noReconnect = false;
  private holdReconnectMs = 0;
  /** Number of sockets opened so far (1 = the first connection). */
  connectionCount = 0;

  constructor(url: string, options: SignalingOptions = {}) {
    super();
    this.url = url;
    this.opts = {
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      backoffInitialMs: options.backoffInitialMs ?? 250,
      backoffMaxMs: options.backoffMaxMs ?? 5_000,
      reconnectTimeoutMs: options.reconnectTimeoutMs ?? 120_000,
      WebSocketImpl: options.WebSocketImpl ?? WebSocket,
    };
  }

  get state(): SignalingState {
    return this._state;
  }

  /** The last `hello` received (heartbeat and limits). */
  get hello(): HelloMessage | null {
    return this._hello;
  }

  /** When the next reconnect attempt is due (`Date.now()` ms), 0 when none is scheduled. */
  get nextAttemptAt(): number {
    return this.reconnectTimer ? this.reconnectDueAt : 0;
  }

  /** Reconnect attempts since the connection dropped. */
  get attempts(): number {
    return this.reconnectAttempt;
  }

  /**
   * Tries to reconnect now instead of waiting for the backoff (a "Retry" button); after giving up (state
   * `closed` without `close()`), starts reconnecting again. No effect while connected or after `close()`.
   */
  retryNow(): void {
    if (this.closedByUser || this.noReconnect) return;
    if (this._state !== 'reconnecting' && this._state !== 'closed') return;
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) return; // an attempt is under way
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.reconnectSince = performance.now();
    this.reconnectAttempt = 0;
    this.holdReconnectMs = 0;
    this.setState('reconnecting');
    this.scheduleReconnect(0);
  }

  /** Opens the first connection; resolves with `hello`. */
  async connect(): Promise<HelloMessage> {
    this.closedByUser = false;
    this.setState('connecting');
    try {
      return await this.open();
    } catch (err) {
      this.setState('closed');
      throw err;
    }
  }

  /**
   * Marks the room session attached (after `join`/`resume` succeeded) or detached. While detached, room
   * messages wait in the outbox.
   */
  setAttached(attached: boolean): void {
    this.attached = attached;
    if (attached && this.ws?.readyState === WebSocket.OPEN) {
      this.reconnectAttempt = 0;
      this.setState('connected');
    }
    this.pump();
  }

  /**
   * Sends a request and resolves with the `ok` reply (rejects with a KaiwaError for `error`, a timeout, or a
   * closed connection). `priority` requests (join, resume) go out even while the session is detached.
   */
  request(type: string, fields: Record<string, unknown> = {}, opts: { timeoutMs?: number; priority?: boolean } = {}):
    Promise<ServerMessage> {
    if (this.closedByUser) return Promise.reject(new KaiwaError('closed', 'The connection is closed.'));
    const id = this.nextId++;
    const frame = JSON.stringify({ ...fields, v: PROTOCOL_VERSION, type, id });
    const tooBig = this.checkSize(frame);
    if (tooBig) return Promise.reject(tooBig);
    return new Promise<ServerMessage>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.opts.requestTimeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.dropQueued(id);
        reject(new KaiwaError('timeout', `No reply to "${type}" within ${timeoutMs} ms.`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, type, sent: false });
      this.enqueue({ frame, id }, opts.priority === true);
    });
  }

  /** Sends a message without waiting for a reply. Room messages wait while the session is detached. */
  send(type: string, fields: Record<string, unknown> = {}, opts: { priority?: boolean } = {}): void {
    if (this.closedByUser) return;
    const frame = JSON.stringify({ ...fields, v: PROTOCOL_VERSION, type });
    const tooBig = this.checkSize(frame);
    if (tooBig) {
      this.emit('error', tooBig);
      return;
    }
    this.enqueue({ frame }, opts.priority === true);
  }

  /**
   * Closes for good. With `leave` (default) a `leave` frame goes out first when the socket is open, so the
   * others see `peer-left` at once instead of after the grace period.
   */
  close(opts: { leave?: boolean } = {}): void {
    if (this.closedByUser) return;
    this.closedByUser = true;
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN && opts.leave !== false) {
      try {
        ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type: 'leave' }));
      } catch {
        /* closing anyway */
      }
    }
    this.teardownSocket(1000, 'bye');
    this.clearTimers();
    this.failAll(new KaiwaError('closed', 'The connection was closed.'));
    this.outbox = [];
    this.priority = [];
    this.setState('closed');
    this.removeAllListeners();
  }

  /**
   * Test hook: closes the WebSocket without `leave`, as a network drop would. The client then reconnects and
   * resumes, unless `reconnect: false` (then it stays detached, as a crashed tab would). `reconnectAfterMs`
   * holds the first reconnect attempt back that long (to outlast the server's grace period on purpose).
   */
  dropForTest(opts: { reconnect?: boolean; reconnectAfterMs?: number } = {}): void {
    if (opts.reconnect === false) this.noReconnect = true;
    if (opts.reconnectAfterMs !== undefined) this.holdReconnectMs = opts.reconnectAfterMs;
    this.ws?.close(4000, 'dropped for test');
  }

  // ---------------------------------------------------------------------------------------------

  private setState(s: SignalingState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit('state', s);
  }

  private checkSize(frame: string): KaiwaError | null {
    const max = this._hello?.limits?.maxMessageBytes;
    if (max && new TextEncoder().encode(frame).length > max) {
      return new KaiwaError('too-large', `The message is larger than the server's limit of ${max} bytes.`);
    }
    return null;
  }

  private enqueue(o: Outgoing, priority: boolean): void {
    const q = priority ? this.priority : this.outbox;
    if (q.length >= MAX_OUTBOX) {
      const dropped = q.shift()!;
      if (dropped.id !== undefined) this.failPending(dropped.id, new KaiwaError('closed', 'The outgoing queue overflowed.'));
    }
    q.push(o);
    this.pump();
  }

  private dropQueued(id: number): void {
    this.outbox = this.outbox.filter((o) => o.id !== id);
    this.priority = this.priority.filter((o) => o.id !== id);
  }

  /** Sends what may be sent now, within the pacing budget. */
  private pump(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this._hello) return;
    this.refill();
    while (this.tokens >= 1) {
      const q = this.priority.length > 0 ? this.priority : this.attached ? this.outbox : null;
      if (!q || q.length === 0) break;
      const o = q.shift()!;
      this.tokens -= 1;
      try {
        ws.send(o.frame);
        if (o.id !== undefined) {
          const p = this.pending.get(o.id);
          if (p) p.sent = true;
        }
      } catch {
        q.unshift(o);
        break;
      }
    }
    const waiting = this.priority.length > 0 || (this.attached && this.outbox.length > 0);
    if (waiting && !this.pumpTimer) {
      const rate = this.rate();
      this.pumpTimer = setTimeout(() => {
        this.pumpTimer = null;
        this.pump();
      }, Math.ceil(1000 / rate));
    }
  }

  /** Messages per second we allow ourselves: a little under the server's rate. */
  private rate(): number {
    const server = this._hello?.limits?.messagesPerSecond ?? 50;
    return Math.max(1, server * 0.8);
  }

  private refill(): void {
    const now = performance.now();
    const rate = this.rate();
    const burst = Math.max(1, this._hello?.limits?.messagesPerSecond ?? 50);
    if (this.lastRefill === 0) this.tokens = burst;
    else this.tokens = Math.min(burst, this.tokens + ((now - this.lastRefill) / 1000) * rate);
    this.lastRefill = now;
  }

  /** Opens a socket and waits for `hello`. */
  private open(): Promise<HelloMessage> {
    return new Promise<HelloMessage>((resolve, reject) => {
      let settled = false;
      let ws: WebSocket;
      try {
        ws = new this.opts.WebSocketImpl(this.url);
      } catch (err) {
        reject(new KaiwaError('connect-failed', `Cannot open ${this.url}.`, err));
        return;
      }
      this.ws = ws;
      this.connectionCount += 1;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        ws.close();
        reject(new KaiwaError('connect-failed', `No hello from ${this.url} within ${this.opts.connectTimeoutMs} ms.`));
      }, this.opts.connectTimeoutMs);

      ws.onmessage = (ev) => {
        if (this.ws !== ws) return;
        this.lastReceived = performance.now();
        const msg = parse(ev.data);
        if (!msg) return;
        if (!settled && msg.type === 'hello') {
          settled = true;
          clearTimeout(timer);
          this._hello = msg as unknown as HelloMessage;
          this.lastRefill = 0;
          this.startHeartbeat();
          resolve(this._hello);
          this.pump();
          return;
        }
        this.onMessage(msg);
      };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        clearTimeout(timer);
        this.ws = null;
        if (!settled) {
          settled = true;
          reject(new KaiwaError('connect-failed', `Cannot connect to ${this.url} (code ${ev.code}).`));
          return;
        }
        this.onDrop();
      };
      ws.onerror = () => {
        /* onclose follows and handles it */
      };
    });
  }

  private onMessage(msg: ServerMessage): void {
    if (typeof msg.re === 'number') {
      const p = this.pending.get(msg.re);
      if (!p) return; // a late reply to a request that timed out
      this.pending.delete(msg.re);
      clearTimeout(p.timer);
      if (msg.type === 'error') p.reject(toError(msg));
      else p.resolve(msg);
      return;
    }
    switch (msg.type) {
      case 'pong':
        return;
      case 'error':
        this.emit('error', toError(msg));
        return;
      case 'bye': {
        const reason = String(msg.reason ?? '');
        this.emit('bye', { reason });
        if (reason === 'replaced') this.noReconnect = true;
        return; // the server closes the socket; onclose handles the rest
      }
      default:
        this.emit('message', msg);
    }
  }

  /** The socket went away without close(): reconnect unless told not to. */
  private onDrop(): void {
    this.stopHeartbeat();
    this.attached = false;
    // Replies to requests sent on the old socket will never come; join/resume/ping frames are per socket.
    // Room requests still in the outbox go out after the session is re-attached.
    const err = new KaiwaError('closed', 'The connection dropped before the reply arrived.');
    for (const o of this.priority) if (o.id !== undefined) this.failPending(o.id, err);
    this.priority = [];
    for (const [id, p] of [...this.pending]) if (p.sent) this.failPending(id, err);
    if (this.closedByUser) return;
    if (this.noReconnect) {
      this.setState('closed');
      return;
    }
    if (this.reconnectSince === 0) this.reconnectSince = performance.now();
    this.setState('reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(forceDelay?: number): void {
    if (this.reconnectTimer || this.closedByUser) return;
    if (performance.now() - this.reconnectSince > this.opts.reconnectTimeoutMs) {
      this.emit('error', new KaiwaError('connect-failed', 'Gave up reconnecting to the server.'));
      this.setState('closed');
      return;
    }
    const base = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** this.reconnectAttempt);
    const delay = forceDelay ?? Math.max(this.holdReconnectMs, base / 2 + Math.random() * (base / 2));
    this.reconnectDueAt = Date.now() + delay;
    this.holdReconnectMs = 0;
    this.reconnectAttempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.closedByUser) return;
      this.open().then(
        (hello) => {
          this.reconnectSince = 0;
          this.emit('reopen', hello);
        },
        () => this.scheduleReconnect(),
      );
    }, delay);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const interval = Math.max(1000, this._hello?.heartbeat ?? 10_000);
    this.heartbeatTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (performance.now() - this.lastReceived > 3 * interval) {
        // Nothing from the server for three heartbeats: the path is dead even if TCP has not noticed.
        ws.close(4001, 'heartbeat timeout');
        return;
      }
      this.enqueue({ frame: JSON.stringify({ v: PROTOCOL_VERSION, type: 'ping' }) }, true);
    }, interval);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private clearTimers(): void {
    this.stopHeartbeat();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
  }

  private teardownSocket(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
      /* already closed */
    }
  }

  private failPending(id: number, err: KaiwaError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.reject(err);
  }

  private failAll(err: KaiwaError): void {
    for (const id of [...this.pending.keys()]) this.failPending(id, err);
  }
}

function parse(data: unknown): ServerMessage | null {
  if (typeof data !== 'string') return null;
  try {
    const v = JSON.parse(data) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
    const m = v as ServerMessage;
    return typeof m.type === 'string' ? m : null;
  } catch {
    return null;
  }
}

function toError(msg: ServerMessage): KaiwaError {
  const code = typeof msg.code === 'string' ? msg.code : 'internal';
  const message = typeof msg.message === 'string' && msg.message ? msg.message : code;
  return new KaiwaError(code, message);
}
