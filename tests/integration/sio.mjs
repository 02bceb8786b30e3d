// Socket.IO test harness shared by tests/integration/socketio.test.mjs and tests/e2e/socketio.test.mjs.
//
// SIO_TARGET=reference runs the tests against the guide's server on the real `socket.io` npm package
// (bench/socketio-reference/server.mjs) instead of kaiwa, to prove that the tests encode what socket.io does.
// Otherwise kaiwa (KAIWA_BIN, default build/kaiwa) is started with the helper every integration test uses.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { io } from 'socket.io-client';
import { ROOT, startServer } from '../e2e/helpers.mjs';
import { WAIT, Waiters } from './client.mjs';

export const TARGET = process.env.SIO_TARGET === 'reference' ? 'reference' : 'kaiwa';
export const REFERENCE = TARGET === 'reference';
const REFERENCE_SERVER = join(ROOT, 'bench', 'socketio-reference', 'server.mjs');
const DEBUG = process.env.E2E_DEBUG === '1';

/** stop(): SIGTERM, SIGKILL after 5 s; resolves once the process is gone. */
function stopper(proc, exitPromise, isExited) {
  return async () => {
    if (isExited()) return;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exitPromise;
    clearTimeout(killer);
  };
}

function spawnLogged(cmd, args, tag) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  const logs = [];
  const keep = (chunk) => {
    const text = chunk.toString();
    if (DEBUG) process.stderr.write(`[${tag}] ${text}`);
    logs.push(text);
    if (logs.length > 500) logs.shift();
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  const exitPromise = new Promise((r) => proc.on('exit', (code, signal) => { exited = { code, signal }; r(exited); }));
  return { proc, logs, exitPromise, isExited: () => exited };
}

async function startReference(port = 0) {
  const { proc, logs, exitPromise, isExited } = spawnLogged(process.execPath, [REFERENCE_SERVER, String(port)], 'ref');
  const deadline = Date.now() + 15_000;
  while (!isExited() && Date.now() < deadline) {
    const m = /listening (\d+)/.exec(logs.join(''));
    if (m) {
      const p = Number(m[1]);
      return { url: `http://127.0.0.1:${p}`, port: p, proc, logs: () => logs.join(''),
        stop: stopper(proc, exitPromise, isExited) };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!isExited()) proc.kill('SIGKILL');
  throw new Error(`reference server did not start: ${JSON.stringify(isExited())} ${logs.join('').slice(-2000)}`);
}

/** kaiwa on a given port (startServer picks its own port; a restart must reuse the old one). */
async function startKaiwaOnPort(port, extraArgs) {
  const bin = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');
  if (!existsSync(bin)) throw new Error(`kaiwa server binary not found at ${bin} (build it, or set KAIWA_BIN)`);
  const args = ['serve', '--listen', `127.0.0.1:${port}`];
  if (process.env.KAIWA_WEB_ROOT) args.push('--web-root', resolve(process.env.KAIWA_WEB_ROOT));
  const { proc, logs, exitPromise, isExited } = spawnLogged(bin, [...args, ...extraArgs], 'kaiwa');
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  while (!isExited() && Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return { url, port, proc, logs: () => logs.join(''), stop: stopper(proc, exitPromise, isExited) };
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!isExited()) proc.kill('SIGKILL');
  throw new Error(`kaiwa did not become healthy on ${url}: ${JSON.stringify(isExited())} ${logs.join('').slice(-2000)}`);
}

/**
 * Starts the server under test on 127.0.0.1: { url, port, stop(), logs() }. `port` reuses a port (for a restart);
 * `kaiwaArgs` are extra `kaiwa serve` flags (ignored for the reference).
 */
export async function startTarget({ port, kaiwaArgs = [] } = {}) {
  if (REFERENCE) return startReference(port ?? 0);
  // Polling clients here (engine.io-client in Node) open a TCP connection per request, from one address: faster
  // than the default per-address connect rate (50/s, burst 200) over a whole suite.
  const extraArgs = ['--no-turn', '--address-connect-rate', '0', ...kaiwaArgs];
  if (port === undefined) return startServer({ extraArgs });
  return startKaiwaOnPort(port, extraArgs);
}

/** The client transports every Socket.IO test runs with. */
export const TRANSPORTS = {
  'polling then upgrade': {},
  websocket: { transports: ['websocket'] },
  'polling only': { transports: ['polling'] },
};

/** A socket.io-client socket that records every event it receives, with bounded waits (JsonSocket's style). */
export class SioPeer {
  /** Connects and resolves once the socket is connected (bounded). */
  static async connect(server, opts = {}, what = 'connect') {
    const socket = io(server.url, {
      forceNew: true, // one Engine.IO connection per socket, as separate browsers would have
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      timeout: 5000,
      ...opts,
    });
    const p = new SioPeer(socket);
    p.what = what;
    p.where = new Error().stack.split('\n').slice(2, 5).join(' | ');
    SioPeer.all.add(p);
    try {
      await p.until(() => socket.connected, WAIT, what);
    } catch (e) {
      p.close();
      throw e;
    }
    return p;
  }

  /** Every socket made, so that a suite can close what a failed test left behind (no reconnect loop survives). */
  static all = new Set();

  static closeAll() {
    const left = [...SioPeer.all].filter((p) => p.socket.active);
    for (const p of SioPeer.all) p.close();
    SioPeer.all.clear();
    return left;
  }

  constructor(socket) {
    this.socket = socket;
    this.events = []; // { event, args }
    this.disconnects = []; // reasons
    this.connectErrors = [];
    this.waits = new Waiters(() => `connected=${this.socket.connected} ` +
      `disconnects=${JSON.stringify(this.disconnects)} errors=${JSON.stringify(this.connectErrors.slice(-3))} ` +
      `last events ${JSON.stringify(this.events.slice(-5), replacer)}`);
    socket.onAny((event, ...args) => {
      this.events.push({ event, args });
      this.wake();
    });
    socket.on('connect', () => this.wake());
    socket.on('disconnect', (reason) => {
      this.disconnects.push(reason);
      this.wake();
    });
    socket.on('connect_error', (e) => {
      this.connectErrors.push(e.message);
      this.wake();
    });
  }

  get id() {
    return this.socket.id;
  }

  wake() {
    this.waits.wake();
  }

  // Some conditions (the transport's name) change without an event: probed on a timer too.
  until(check, ms = WAIT, what = 'a condition') {
    return this.waits.until(check, ms, what, 25);
  }


  /** The arguments of the first `event` (seen so far or later) whose arguments satisfy `pred`. */
  async waitFor(event, pred = () => true, what = event) {
    const found = await this.until(() => this.events.find((e) => e.event === event && pred(...e.args)), WAIT, what);
    return found.args;
  }

  received(event, pred = () => true) {
    return this.events.filter((e) => e.event === event && pred(...e.args));
  }

  emit(event, ...args) {
    this.socket.emit(event, ...args);
  }

  /** Emits with an ack callback; resolves with the ack's arguments, rejects after `ms` without an ack. */
  emitWithAck(event, args, ms = WAIT) {
    return new Promise((resolvePromise, reject) => {
      this.socket.timeout(ms).emit(event, ...args, (err, ...ackArgs) => {
        if (err) reject(err);
        else resolvePromise(ackArgs);
      });
    });
  }

  transportName() {
    return this.socket.io.engine?.transport?.name;
  }

  close() {
    this.socket.disconnect();
  }
}

function replacer(key, value) {
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) return `<Buffer ${value.data.length} bytes>`;
  if (typeof value === 'string' && value.length > 200) return `${value.slice(0, 200)}…(${value.length})`;
  return value;
}

/** Bytes of a binary value as a Buffer, whatever form the client produced (Buffer, ArrayBuffer, typed array). */
export function bytesOf(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new Error(`not binary: ${typeof v} ${JSON.stringify(v)?.slice(0, 100)}`);
}

/** An Engine.IO WebSocket without socket.io-client: raw frames in and out (Node's WebSocket). */
export class RawEio {
  static async open(server) {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    ws.binaryType = 'arraybuffer';
    const r = new RawEio(ws);
    const open = await r.until(() => r.frames.find((f) => typeof f === 'string' && f.startsWith('0')), 'open packet');
    r.handshake = JSON.parse(open.slice(1));
    return r;
  }

  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.closed = null;
    this.waits = new Waiters(() => `closed=${JSON.stringify(this.closed)} ` +
      `last frames ${JSON.stringify(this.frames.slice(-5).map((f) => String(f).slice(0, 200)))}`);
    ws.onmessage = (e) => {
      if (e.data === '2') ws.send('3'); // answer the server's heartbeat
      this.frames.push(e.data);
      this.wake();
    };
    ws.onclose = (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    };
    ws.onerror = () => undefined;
  }

  wake() {
    this.waits.wake();
  }

  until(check, what, ms = WAIT) {
    return this.waits.until(check, ms, what);
  }


  send(data) {
    this.ws.send(data);
  }

  /** Socket.IO CONNECT to the default namespace; resolves with the socket id. */
  async connectNamespace() {
    this.send('40');
    const f = await this.until(() => this.frames.find((x) => typeof x === 'string' && x.startsWith('40')), 'CONNECT');
    this.sid = JSON.parse(f.slice(2)).sid;
    return this.sid;
  }

  waitClosed() {
    return this.until(() => this.closed, 'close');
  }

  close() {
    this.ws.close();
  }
}

/** An Engine.IO polling session without socket.io-client: raw GETs and POSTs (fetch), each bounded. */
export class RawPolling {
  static async open(server) {
    const r = new RawPolling(server);
    const res = await fetch(r.base(), { signal: AbortSignal.timeout(WAIT) });
    const text = await res.text();
    if (res.status !== 200 || text[0] !== '0') throw new Error(`polling handshake: ${res.status} ${text}`);
    r.handshake = JSON.parse(text.slice(1));
    r.eioSid = r.handshake.sid;
    return r;
  }

  constructor(server) {
    this.server = server;
  }

  base() {
    const sid = this.eioSid ? `&sid=${encodeURIComponent(this.eioSid)}` : '';
    return `${this.server.url}/socket.io/?EIO=4&transport=polling${sid}`;
  }

  /** One long poll: { status, text, packets } (packets split on the record separator). */
  async get(ms = WAIT) {
    const res = await fetch(this.base(), { signal: AbortSignal.timeout(ms) });
    const text = await res.text();
    return { status: res.status, text, packets: res.status === 200 ? text.split('\x1e') : [] };
  }

  async post(body) {
    const res = await fetch(this.base(), {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      body,
      signal: AbortSignal.timeout(WAIT),
    });
    return { status: res.status, text: await res.text() };
  }

  /** Socket.IO CONNECT to the default namespace over polling; resolves with the socket id. */
  async connectNamespace() {
    const posted = await this.post('40');
    if (posted.status !== 200) throw new Error(`POST 40: ${posted.status} ${posted.text}`);
    const deadline = Date.now() + WAIT;
    while (Date.now() < deadline) {
      const { status, packets, text } = await this.get();
      if (status !== 200) throw new Error(`GET after 40: ${status} ${text}`);
      const connect = packets.find((p) => p.startsWith('40'));
      if (connect) {
        this.sid = JSON.parse(connect.slice(2)).sid;
        return this.sid;
      }
    }
    throw new Error('no CONNECT answer over polling');
  }
}

/**
 * An Engine.IO WebSocket over a bare TCP socket (masked frames written by hand), so that a test can drop the
 * connection without a close frame: `destroy()` is a peer that vanished (a phone leaving Wi-Fi, a killed tab).
 */
export async function openTcpEio(server) {
  const { connect } = await import('node:net');
  const { randomBytes } = await import('node:crypto');
  const sock = connect(server.port, '127.0.0.1');
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  sock.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let seen = '';
  sock.on('data', (d) => { seen += d.toString('latin1'); });
  sock.on('error', () => undefined);
  const waitText = (needle) => new Promise((resolvePromise, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${needle} on the TCP socket; got ${seen.slice(-300)}`)), WAIT);
    const check = () => {
      const i = seen.indexOf(needle);
      if (i >= 0) {
        clearTimeout(t);
        sock.off('data', check);
        resolvePromise(seen.slice(i));
      }
    };
    sock.on('data', check);
    check();
  });
  const frame = (text) => {
    const payload = Buffer.from(text);
    if (payload.length >= 126) throw new Error('short frames only');
    const mask = randomBytes(4);
    return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask,
      Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
  };
  const sendText = (text) => sock.write(frame(text));
  // Several packets in one write: the server reads them in one go (loopback), as a burst from a busy client.
  const sendTexts = (texts) => sock.write(Buffer.concat(texts.map(frame)));
  await waitText('0{"sid"');
  sendText('40');
  const connected = await waitText('40{"sid":"');
  const sid = /^40\{"sid":"([^"]+)"/.exec(connected)[1];
  return { sock, sid, sendText, sendTexts, waitText, destroy: () => sock.destroy() };
}

/**
 * One HTTP request to `url` from a chosen loopback address (127.0.0.x: each counts as its own client address for the
 * server's per-address limits), through `agent` when given (a keep-alive agent sends many over one connection):
 * resolves with { status, text }; bounded.
 */
export async function httpFrom(url, { method = 'GET', body, localAddress = '127.0.0.1', agent, ms = WAIT } = {}) {
  const http = await import('node:http');
  return new Promise((resolvePromise, reject) => {
    const req = http.request(url, {
      method, localAddress, agent, timeout: ms,
      headers: body === undefined ? {} : { 'content-type': 'text/plain;charset=UTF-8' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolvePromise({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${url} within ${ms} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** An Engine.IO polling session from `localAddress` (see httpFrom): { sid, handshake, get(), post(body) }. */
export async function pollingFrom(server, { localAddress = '127.0.0.1', query = '', agent } = {}) {
  const base = `${server.url}/socket.io/?EIO=4&transport=polling${query}`;
  const open = await httpFrom(base, { localAddress, agent });
  if (open.status !== 200 || open.text[0] !== '0') return { refused: open };
  const handshake = JSON.parse(open.text.slice(1));
  const url = `${base}&sid=${encodeURIComponent(handshake.sid)}`;
  return {
    sid: handshake.sid,
    handshake,
    get: (ms) => httpFrom(url, { localAddress, agent, ms }),
    post: (body) => httpFrom(url, { method: 'POST', body, localAddress, agent }),
  };
}
