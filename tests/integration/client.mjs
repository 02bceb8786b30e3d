// A small native-protocol client for the integration tests (Node's WebSocket, --experimental-websocket on Node 20).
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { freeUdpTcpPort, startServer } from '../e2e/helpers.mjs';

export const WAIT = 10_000;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Bounded waits on conditions that change when something arrives. `until(check, ms, what)` resolves with the first
 * truthy value of `check()`, probed at once, on every `wake()` and, with `pollMs`, on a timer (for state that changes
 * without an event); after `ms` it rejects with `what` and `describe()` (what was seen last).
 */
export class Waiters {
  constructor(describe) {
    this.probes = new Set();
    this.describe = describe;
  }

  wake() {
    for (const p of [...this.probes]) p();
  }

  until(check, ms, what, pollMs = 0) {
    return new Promise((resolve, reject) => {
      const probe = () => {
        const value = check();
        if (value) {
          done();
          resolve(value);
        }
      };
      const poll = pollMs > 0 ? setInterval(probe, pollMs) : null;
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timeout waiting for ${what}; ${this.describe()}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        if (poll) clearInterval(poll);
        this.probes.delete(probe);
      };
      this.probes.add(probe);
      probe();
    });
  }
}

/** A WebSocket carrying JSON text messages, with bounded waits on what arrives. */
export class JsonSocket {
  constructor(ws) {
    this.ws = ws;
    this.messages = [];
    this.closed = null;
    this.waits = new Waiters(() => `last messages ${JSON.stringify(this.messages.slice(-5))}`);
    ws.onmessage = (e) => {
      this.messages.push(JSON.parse(e.data));
      this.wake();
    };
    ws.onclose = (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    };
  }

  wake() {
    this.waits.wake();
  }

  /** Resolves with what `check()` returns once it is truthy (checked now and on every message or close). */
  until(check, ms, what) {
    return this.waits.until(check, ms, what);
  }

  /** The first message (seen so far or later) matching `pred`. */
  waitFor(pred, what = 'a message') {
    return this.until(() => this.messages.find(pred), WAIT, what);
  }

  waitClosed() {
    return this.until(() => this.closed, WAIT, 'close');
  }

  close() {
    this.ws.close();
  }
}

/** kaiwa's native protocol (docs/protocol.md). */
export class Client extends JsonSocket {
  static async open(server, path = '/ws') {
    const c = new Client(new WebSocket(server.url.replace('http', 'ws') + path));
    await c.waitFor((m) => m.type === 'hello');
    return c;
  }

  constructor(ws) {
    super(ws);
    this.nextId = 1;
  }

  send(obj) {
    this.ws.send(JSON.stringify({ v: 1, ...obj }));
  }

  sendRaw(text) {
    this.ws.send(text);
  }

  /** Sends a request with a fresh id and resolves with its `ok` or `error` reply. */
  async request(obj) {
    const id = this.nextId++;
    this.send({ ...obj, id });
    return this.waitFor((m) => m.re === id);
  }

  async join(room, name, extra = {}) {
    const reply = await this.request({ type: 'join', room, name, ...extra });
    if (reply.type === 'ok') {
      this.peer = reply.peer;
      this.resumeToken = reply.resume;
      this.room = room;
    }
    return reply;
  }
}

let counter = 0;
/** A PeerJS id no other test of this process uses. */
export const freshId = () => `p${process.pid}x${++counter}`;

/** PeerServer's protocol (docs/peerjs.md): `{type, payload, dst}` messages, at {server.url}/peerjs. */
export class PeerSocket extends JsonSocket {
  static open(server, { key = 'peerjs', id = freshId(), token = `tok${counter}`, query } = {}) {
    const q = query ?? `key=${encodeURIComponent(key)}&id=${encodeURIComponent(id)}&token=${encodeURIComponent(token)}`;
    const p = new PeerSocket(new WebSocket(`${server.url.replace('http', 'ws')}/peerjs?${q}`));
    p.id = id;
    p.token = token;
    return p;
  }

  async opened() {
    await this.waitFor((m) => m.type === 'OPEN', 'OPEN');
    return this;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }
}

/**
 * One client frame (RFC 6455 §5.2): opcode 0 continuation, 1 text, 8 close, 9 ping. Masked unless `masked` is false
 * (which servers must refuse); `fin` false for all but the last fragment of a message.
 */
export function clientFrame(opcode, payload, { fin = true, masked = true } = {}) {
  const first = (fin ? 0x80 : 0) | opcode;
  const m = masked ? 0x80 : 0;
  const header = payload.length < 126 ? Buffer.from([first, m | payload.length])
    : Buffer.from([first, m | 126, payload.length >> 8, payload.length & 255]);
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([header, mask, body]);
}

/**
 * A raw TCP socket upgraded to a WebSocket on /ws, the server's hello read. `until(text, what)` waits until `text`
 * is in what the socket has read so far.
 */
export async function openRawWebSocket(server, { allowHalfOpen = false } = {}) {
  const { port } = new URL(server.url);
  const sock = connect({ port, host: '127.0.0.1', allowHalfOpen });
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  const key = randomBytes(16).toString('base64');
  sock.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let buffered = '';
  const until = (text, what) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${what}`)), WAIT);
    const onData = (d) => {
      buffered += d.toString('latin1');
      if (buffered.includes(text)) {
        clearTimeout(t);
        sock.off('data', onData);
        resolve();
      }
    };
    sock.on('data', onData);
    onData(Buffer.alloc(0));
  });
  await until('"type":"hello"', 'upgrade');
  return { sock, until };
}

/**
 * A native-protocol peer on a raw TCP socket, joined to `room`: for what Node's WebSocket cannot do (stop reading,
 * send a close frame with a code of the 1xxx range such as 1001, which browsers send when they leave a page).
 */
export async function openRawPeer(server, room, name, { allowHalfOpen = false } = {}) {
  const { sock, until } = await openRawWebSocket(server, { allowHalfOpen });
  sock.write(clientFrame(1, Buffer.from(JSON.stringify({ v: 1, type: 'join', id: 1, room, name }))));
  await until('"re":1', 'join reply');
  return {
    sock,
    /** Sends a close frame with `code`, as a browser leaving the page does with 1001. */
    closeWith(code) {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(code);
      sock.write(clientFrame(8, payload));
    },
  };
}

/**
 * A WebSocket that completes the handshake and joins a room but then never reads from its socket, so the server's
 * writes to it pile up. Raw TCP: Node's WebSocket always reads.
 */
export async function openStalledPeer(server, room, name) {
  const { sock } = await openRawPeer(server, room, name);
  await sleep(200);
  sock.pause(); // stop reading: the kernel buffers fill, then kaiwa's queue grows
  return sock;
}

export async function metric(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : NaN;
}

/** Sends `request` as raw bytes on a fresh connection; resolves with what came back until the server closed. */
export function rawHttp(server, request) {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    const t = setTimeout(() => {
      sock.destroy();
      resolve(data);
    }, 2000);
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d) => { data += d.toString('latin1'); });
    sock.on('error', (e) => { clearTimeout(t); reject(e); });
    sock.on('close', () => { clearTimeout(t); resolve(data); });
  });
}

/**
 * Runs `fn(server, open)` against a server with its SFU media port on loopback (and `args`); `open()` gives a native
 * Client that is closed, with the server, when `fn` ends.
 */
export async function withSfuServer(args, fn) {
  const sfuPort = await freeUdpTcpPort();
  const server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`, ...args] });
  const clients = [];
  const open = async () => {
    const c = await Client.open(server);
    clients.push(c);
    return c;
  };
  try {
    await fn(server, open);
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
}
