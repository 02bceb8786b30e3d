// kaiwa's TURN/STUN service against coturn's own client tools (Debian package `coturn`): turnutils_stunclient and
// turnutils_uclient over UDP and TCP, with long-term and REST credentials, channels and Send indications, echoed by
// turnutils_peer on loopback. Relaying to 127.0.0.0/8 is turned on explicitly (--turn-allow-peer); a server without
// it refuses the same peer. Skipped when the tools are not installed (scripts/install-deps.sh installs them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { freeUdpTcpPort, startServer } from '../e2e/helpers.mjs';
import { SANITIZED_SKIP } from './process.mjs';
import { metric, sleep } from './client.mjs';

const haveTools = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v turnutils_uclient && command -v turnutils_peer && command -v turnutils_stunclient'],
      { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = haveTools ? false : 'coturn client tools not installed (apt-get install coturn)';

// A port free for both TCP and UDP on 127.0.0.1.
function run(cmd, args, timeoutMs = 60_000) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGINT', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? err.signal) : 0, out: stdout + stderr });
    });
  });
}

// turnutils_uclient's totals: "tot_send_msgs=N, tot_recv_msgs=M" and "Total lost packets L".
function totals(out) {
  const m = [...out.matchAll(/start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/g)].pop();
  const lost = [...out.matchAll(/Total lost packets (\d+)/g)].pop();
  return m ? { sent: Number(m[1]), received: Number(m[2]), lost: lost ? Number(lost[1]) : NaN } : null;
}

async function metricValue(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
  return m ? Number(m[1]) : NaN;
}

async function withTurn(extra, fn) {
  const turnPort = await freeUdpTcpPort();
  const tlsPort = await freeUdpTcpPort();
  const peerPort = await freeUdpTcpPort();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-realm', 'example.test', '--turn-user', 'alice:alicepw',
      '--turn-secret', 's3cr3t', '--turn-ports', '40000-44999', '--turn-tls-listen', `127.0.0.1:${tlsPort}`, ...extra],
  });
  const peer = spawn('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)], { stdio: 'ignore' });
  await sleep(200);
  try {
    await fn({ server, turnPort, tlsPort, peerPort });
  } finally {
    peer.kill('SIGKILL');
    await server.stop();
  }
}

const CLIENTS = 5;
const MESSAGES = 100;
const uclient = (turnPort, peerPort, args) => run('turnutils_uclient',
  [...args, '-e', '127.0.0.1', '-r', String(peerPort), '-m', String(CLIENTS), '-n', String(MESSAGES), '-z', '5', '-c',
    '-p', String(turnPort), '127.0.0.1']);

test('TURN interop with coturn client tools', { skip }, async (t) => {
  await withTurn(['--turn-allow-peer', '127.0.0.0/8'], async ({ server, turnPort, tlsPort, peerPort }) => {
    await t.test('turnutils_stunclient gets its reflexive address', async () => {
      const r = await run('turnutils_stunclient', ['-p', String(turnPort), '127.0.0.1'], 20_000);
      assert.match(r.out, /UDP reflexive addr: 127\.0\.0\.1:\d+/, r.out);
    });

    const cases = [
      ['UDP, long-term credentials, channels', ['-u', 'alice', '-w', 'alicepw']],
      ['TCP, long-term credentials, channels', ['-t', '-u', 'alice', '-w', 'alicepw']],
      ['UDP, REST credentials', ['-W', 's3cr3t', '-u', 'bob']],
      ['TCP, REST credentials', ['-t', '-W', 's3cr3t', '-u', 'bob']],
      ['UDP, Send/Data indications', ['-s', '-u', 'alice', '-w', 'alicepw']],
      ['TCP, Send/Data indications', ['-t', '-s', '-u', 'alice', '-w', 'alicepw']],
    ];
    for (const [name, args] of cases) {
      await t.test(`turnutils_uclient ${name}: no loss`, async () => {
        const r = await uclient(turnPort, peerPort, args);
        const tot = totals(r.out);
        assert.ok(tot, r.out.slice(-2000));
        assert.equal(tot.sent, CLIENTS * MESSAGES, r.out.slice(-1500));
        assert.equal(tot.received, tot.sent, r.out.slice(-1500));
        assert.equal(tot.lost, 0);
        assert.doesNotMatch(r.out, /ERROR/);
      });
    }

    await t.test('turnutils_uclient over TLS (self-signed certificate), long-term and REST credentials', async () => {
      for (const args of [['-u', 'alice', '-w', 'alicepw'], ['-W', 's3cr3t', '-u', 'bob']]) {
        const r = await uclient(tlsPort, peerPort, ['-t', '-S', ...args]);
        const tot = totals(r.out);
        assert.ok(tot, r.out.slice(-2000));
        assert.equal(tot.sent, CLIENTS * MESSAGES, r.out.slice(-1500));
        // The relay-to-peer leg is UDP: on a loaded machine a datagram may be lost; TLS itself must not lose any.
        assert.ok(tot.received >= tot.sent * 0.99, r.out.slice(-1500));
        assert.doesNotMatch(r.out, /ERROR/);
      }
    });

    await t.test('the turns: URL and credentials from /api/ice-servers work over TLS', async () => {
      const body = await (await fetch(`${server.url}/api/ice-servers`)).json();
      const entry = body.iceServers.find((s) => s.urls.some((u) => u.startsWith('turns:')));
      assert.ok(entry, JSON.stringify(body));
      const url = entry.urls.find((u) => u.startsWith('turns:'));
      assert.equal(url, `turns:127.0.0.1:${tlsPort}?transport=tcp`);
      const r = await uclient(tlsPort, peerPort, ['-t', '-S', '-u', entry.username, '-w', entry.credential]);
      const tot = totals(r.out);
      assert.ok(tot, r.out.slice(-2000));
      assert.ok(tot.received >= tot.sent * 0.99, r.out.slice(-1500));
      assert.doesNotMatch(r.out, /ERROR/);
    });

    // RFC 6062: -T makes pairs of clients with TCP allocations that Connect to each other's relayed address (one gets
    // a ConnectionAttempt), ConnectionBind data connections and exchange the messages through them.
    for (const [name, port, args] of [['TCP', 'turnPort', []], ['TLS', 'tlsPort', ['-S']]]) {
      await t.test(`turnutils_uclient -T (TCP relays, RFC 6062) over ${name}: no loss`, async () => {
        const r = await uclient(port === 'turnPort' ? turnPort : tlsPort, peerPort, ['-T', ...args, '-u', 'alice', '-w',
          'alicepw']);
        const tot = totals(r.out);
        assert.ok(tot, r.out.slice(-2000));
        // -T pairs the clients (an odd -m gets one more).
        assert.ok(tot.sent >= CLIENTS * MESSAGES, r.out.slice(-1500));
        assert.equal(tot.received, tot.sent, r.out.slice(-1500));
        assert.equal(tot.lost, 0);
        assert.doesNotMatch(r.out, /ERROR/);
      });
    }

    await t.test('turnutils_uclient -P (passive TCP relay, the peer connects in)', async () => {
      const r = await uclient(turnPort, peerPort, ['-P', '-u', 'alice', '-w', 'alicepw']);
      const tot = totals(r.out);
      assert.ok(tot, r.out.slice(-2000));
      assert.ok(tot.sent >= CLIENTS * MESSAGES, r.out.slice(-1500));
      // In this mode the tool counts only one direction's messages as received: Debian's coturn turnserver gives
      // the same half (checked by hand); none may be missing beyond that.
      assert.ok(tot.received >= tot.sent / 2, r.out.slice(-1500));
      assert.doesNotMatch(r.out, /ERROR/);
    });

    await t.test('a wrong password is refused', async () => {
      const before = await metricValue(server, 'kaiwa_turn_auth_failures_total');
      const r = await run('turnutils_uclient', ['-u', 'alice', '-w', 'wrong', '-e', '127.0.0.1', '-r', String(peerPort),
        '-m', '1', '-n', '5', '-c', '-p', String(turnPort), '127.0.0.1'], 20_000);
      assert.match(r.out, /Cannot complete Allocation|error 401/, r.out.slice(-1000));
      await sleep(1200);  // metrics are published once a second
      assert.ok(await metricValue(server, 'kaiwa_turn_auth_failures_total') > before);
    });

    await t.test('relayed traffic shows in /metrics', async () => {
      await sleep(1200);
      assert.ok(await metricValue(server, 'kaiwa_turn_channeldata_in_total') >= CLIENTS * MESSAGES);
      assert.ok(await metricValue(server, 'kaiwa_turn_channeldata_out_total') >= CLIENTS * MESSAGES);
      assert.ok(await metricValue(server, 'kaiwa_turn_send_indications_total') >= CLIENTS * MESSAGES);
    });
  });
});

test('TURN refuses loopback peers by default', { skip }, async () => {
  await withTurn([], async ({ server, turnPort, peerPort }) => {
    const r = await run('turnutils_uclient', ['-u', 'alice', '-w', 'alicepw', '-e', '127.0.0.1', '-r', String(peerPort),
      '-m', '1', '-n', '5', '-c', '-p', String(turnPort), '127.0.0.1'], 20_000);
    assert.match(r.out, /error 403|Forbidden/, r.out.slice(-1000));
    await sleep(1200);
    assert.equal(await metricValue(server, 'kaiwa_turn_channeldata_in_total'), 0);
  });
});

// Needs no coturn tools: what the web app gets to reach kaiwa's TURN.
test('/api/ice-servers: turns: with a TLS listener, credentials that live --turn-credential-ttl', async () => {
  const turnPort = await freeUdpTcpPort();
  const tlsPort = await freeUdpTcpPort();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-tls-listen', `127.0.0.1:${tlsPort}`,
      '--turn-secret', 's3cr3t', '--turn-credential-ttl', '2m'],
  });
  try {
    const before = Math.floor(Date.now() / 1000);
    const body = await (await fetch(`${server.url}/api/ice-servers`)).json();
    const after = Math.floor(Date.now() / 1000);
    assert.equal(body.ttl, 120, JSON.stringify(body));
    const turn = body.iceServers.find((s) => s.urls.some((u) => u.startsWith('turn:')));
    assert.deepEqual(turn.urls, [`turn:127.0.0.1:${turnPort}?transport=udp`, `turn:127.0.0.1:${turnPort}?transport=tcp`,
      `turns:127.0.0.1:${tlsPort}?transport=tcp`]);
    const expiry = Number(turn.username.split(':')[0]);
    assert.ok(expiry >= before + 120 - 2 && expiry <= after + 120 + 2, `expiry ${expiry}, now ${before}..${after}`);
    assert.equal(turn.credential, createHmac('sha1', 's3cr3t').update(turn.username).digest('base64'));
  } finally {
    await server.stop();
  }
  // Without a TLS listener: no turns:.
  const plain = await startServer({ extraArgs: ['--turn-listen', `127.0.0.1:${await freeUdpTcpPort()}`] });
  try {
    const body = await (await fetch(`${plain.url}/api/ice-servers`)).json();
    assert.equal(body.ttl, 3600);
    assert.ok(body.iceServers.every((s) => s.urls.every((u) => !u.startsWith('turns:'))), JSON.stringify(body));
  } finally {
    await plain.stop();
  }
});

// --- TCP allocations (RFC 6062) ---------------------------------------------------------------------------------
// A small TURN client over net.Socket: STUN encoding with long-term credentials (MESSAGE-INTEGRITY, HMAC-SHA1 with
// MD5(user:realm:password)), stream framing, and the Allocate/Connect/ConnectionBind/ConnectionAttempt exchange.

const M = { allocate: 0x003, refresh: 0x004, createPermission: 0x008, connect: 0x00a, connectionBind: 0x00b,
  connectionAttempt: 0x00c };
const A = { username: 0x0006, messageIntegrity: 0x0008, errorCode: 0x0009, lifetime: 0x000d, xorPeerAddress: 0x0012,
  realm: 0x0014, nonce: 0x0015, xorRelayedAddress: 0x0016, requestedTransport: 0x0019, connectionId: 0x002a };
const COOKIE = 0x2112a442;

function stunType(method, cls) {  // cls: 0 request, 1 indication, 2 success, 3 error
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7);
}

function xorAddress(host, port) {
  const v = Buffer.alloc(8);
  v[1] = 0x01;
  v.writeUInt16BE(port ^ (COOKIE >>> 16), 2);
  host.split('.').forEach((o, i) => { v[4 + i] = Number(o) ^ ((COOKIE >>> (24 - 8 * i)) & 0xff); });
  return v;
}

function u32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function encodeStun(method, cls, attrs, key) {
  const tx = randomBytes(12);
  const parts = [];
  for (const [type, value] of attrs) {
    const h = Buffer.alloc(4);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(value.length, 2);
    parts.push(h, value, Buffer.alloc((4 - (value.length % 4)) % 4));
  }
  let body = Buffer.concat(parts);
  const header = Buffer.alloc(20);
  header.writeUInt16BE(stunType(method, cls), 0);
  header.writeUInt32BE(COOKIE, 4);
  tx.copy(header, 8);
  if (key) {
    header.writeUInt16BE(body.length + 24, 2);
    const mac = createHmac('sha1', key).update(Buffer.concat([header, body])).digest();
    const h = Buffer.alloc(4);
    h.writeUInt16BE(A.messageIntegrity, 0);
    h.writeUInt16BE(20, 2);
    body = Buffer.concat([body, h, mac]);
  }
  header.writeUInt16BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function decodeStun(buf) {
  const type = buf.readUInt16BE(0);
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const cls = ((type >> 4) & 1) | ((type >> 7) & 2);
  const attrs = new Map();
  for (let at = 20; at + 4 <= buf.length;) {
    const t = buf.readUInt16BE(at);
    const len = buf.readUInt16BE(at + 2);
    if (!attrs.has(t)) attrs.set(t, buf.subarray(at + 4, at + 4 + len));
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  const addr = (t) => {
    const v = attrs.get(t);
    if (!v) return null;
    const port = v.readUInt16BE(2) ^ (COOKIE >>> 16);
    const host = [0, 1, 2, 3].map((i) => v[4 + i] ^ ((COOKIE >>> (24 - 8 * i)) & 0xff)).join('.');
    return { host, port };
  };
  const err = attrs.get(A.errorCode);
  return {
    method, cls, attrs, addr, tx: Buffer.from(buf.subarray(8, 20)),
    code: cls === 2 ? 200 : err ? err[2] * 100 + err[3] : null,
    text: (t) => attrs.get(t)?.toString(),
    connectionId: attrs.get(A.connectionId)?.readUInt32BE(0),
  };
}

// A STUN-framed TCP connection to the TURN server: requests with answers, indications and ChannelData in queues.
// `socket`: another connected stream (a TLS socket) instead of a TCP connection to `port`.
class TurnTcp {
  constructor(port, creds, socket = null) {
    this.creds = creds;
    this.socket = socket ?? net.connect(port, '127.0.0.1');
    this.connectEvent = socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect';
    if (!socket) this.socket.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.framed = true;
    this.messages = [];
    this.channelData = [];
    this.waiters = [];
    this.raw = [];  // bytes after a ConnectionBind
    this.rawWaiters = [];
    this.closed = new Promise((r) => this.socket.on('close', r));
    this.socket.on('error', () => {});
    this.socket.on('data', (d) => this.onData(d));
  }
  ready() { return new Promise((r, j) => { this.socket.once(this.connectEvent, r); this.socket.once('error', j); }); }
  onData(d) {
    if (!this.framed) return this.onRaw(d);
    this.buf = Buffer.concat([this.buf, d]);
    while (this.framed && this.buf.length >= 4) {
      if ((this.buf[0] & 0xc0) === 0x40) {  // ChannelData, padded to 4 bytes on a stream
        const n = this.buf.readUInt16BE(2);
        const len = 4 + n + ((4 - (n % 4)) % 4);
        if (this.buf.length < len) break;
        this.channelData.push({ channel: this.buf.readUInt16BE(0), data: Buffer.from(this.buf.subarray(4, 4 + n)) });
        this.buf = this.buf.subarray(len);
        this.wake();
        continue;
      }
      if (this.buf.length < 20) break;
      const len = 20 + this.buf.readUInt16BE(2);
      if (this.buf.length < len) break;
      const m = decodeStun(this.buf.subarray(0, len));
      this.buf = this.buf.subarray(len);
      this.messages.push(m);
      // A ConnectionBind success: the connection is a raw pipe from the next byte on.
      if (m.method === M.connectionBind && m.cls === 2) this.framed = false;
      this.wake();
    }
    if (!this.framed && this.buf.length) {
      const rest = this.buf;
      this.buf = Buffer.alloc(0);
      this.onRaw(rest);
    }
  }
  onRaw(d) {
    this.raw.push(d);
    for (const w of this.rawWaiters.splice(0)) w();
  }
  wake() { for (const w of this.waiters.splice(0)) w(); }
  // Waits until `n` ChannelData messages arrived and returns them.
  async channelMessages(n, ms = 10_000) {
    const deadline = Date.now() + ms;
    while (this.channelData.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out with ${this.channelData.length} of ${n} ChannelData messages`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, left); });
    }
    return this.channelData.splice(0, n);
  }
  async next(pred, what, ms = 10_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.messages.findIndex(pred);
      if (i >= 0) return this.messages.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, left); });
    }
  }
  // Sends a request and returns its answer; authenticates (401 → realm and nonce) as a client does.
  async request(method, attrs = []) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const auth = this.nonce ? [[A.username, Buffer.from(this.creds.user)], [A.realm, Buffer.from(this.realm)],
        [A.nonce, Buffer.from(this.nonce)]] : [];
      const key = this.nonce ? createHash('md5').update(`${this.creds.user}:${this.realm}:${this.creds.password}`).digest()
        : null;
      const msg = encodeStun(method, 0, [...attrs, ...auth], key);
      const tx = msg.subarray(8, 20);
      this.socket.write(msg);
      const r = await this.next((m) => m.cls >= 2 && m.method === method && m.tx.equals(tx),
        `answer to method ${method}`);
      if ((r.code === 401 || r.code === 438) && r.text(A.nonce)) {
        this.realm = r.text(A.realm);
        this.nonce = r.text(A.nonce);
        continue;
      }
      return r;
    }
    throw new Error('authentication did not succeed');
  }
  async readRaw(n, ms = 10_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const total = this.raw.reduce((s, b) => s + b.length, 0);
      if (total >= n) {
        const all = Buffer.concat(this.raw);
        this.raw = [all.subarray(n)];
        return all.subarray(0, n);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out with ${total} of ${n} bytes`);
      await new Promise((r) => { this.rawWaiters.push(r); setTimeout(r, left); });
    }
  }
  close() { this.socket.destroy(); }
}

const ALICE = { user: 'alice', password: 'alicepw' };
const tcpTransport = [A.requestedTransport, Buffer.from([6, 0, 0, 0])];

async function tcpAllocation(turnPort) {
  const control = new TurnTcp(turnPort, ALICE);
  await control.ready();
  const r = await control.request(M.allocate, [tcpTransport]);
  assert.equal(r.code, 200, `Allocate: ${r.code}`);
  return { control, relayed: r.addr(A.xorRelayedAddress) };
}

async function bindData(turnPort, control, connectionId) {
  const data = new TurnTcp(turnPort, ALICE);
  await data.ready();
  data.realm = control.realm;
  data.nonce = control.nonce;
  const r = await data.request(M.connectionBind, [[A.connectionId, u32(connectionId)]]);
  return { data, r };
}

// A TCP echo server on 127.0.0.1 that remembers where its connections came from.
async function echoServer() {
  const sockets = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, sockets, port: server.address().port,
    close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

const closedWithin = (promise, ms, what) => Promise.race([promise,
  sleep(ms).then(() => { throw new Error(`${what} still open after ${ms} ms`); })]);

test('TCP allocations (RFC 6062) with a Node client', async (t) => {
  const turnPort = await freeUdpTcpPort();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-realm', 'example.test', '--turn-user', 'alice:alicepw',
      '--turn-user', 'bob:bobpw', '--turn-ports', '45000-45999', '--turn-allow-peer', '127.0.0.0/8'],
  });
  const echo = await echoServer();
  try {
    await t.test('Connect to a TCP echo server, ConnectionBind, bytes round-trip both ways', async () => {
      const { control, relayed } = await tcpAllocation(turnPort);
      assert.equal(relayed.host, '127.0.0.1');
      assert.ok(relayed.port >= 45000 && relayed.port <= 45999, JSON.stringify(relayed));
      const c = await control.request(M.connect, [[A.xorPeerAddress, xorAddress('127.0.0.1', echo.port)]]);
      assert.equal(c.code, 200);
      assert.ok(c.connectionId > 0);
      // The connection to the peer comes from the relayed transport address.
      for (let i = 0; i < 250 && echo.sockets.length === 0; i++) await sleep(20);
      assert.equal(echo.sockets.length, 1);
      assert.equal(echo.sockets[0].remotePort, relayed.port);
      // A second Connect to the same peer: 446.
      const again = await control.request(M.connect, [[A.xorPeerAddress, xorAddress('127.0.0.1', echo.port)]]);
      assert.equal(again.code, 446);
      const { data, r } = await bindData(turnPort, control, c.connectionId);
      assert.equal(r.code, 200);
      // 1 MiB through the pipe and back (more than the server buffers per direction: back-pressure, no loss).
      const payload = randomBytes(1 << 20);
      data.socket.write(payload);
      const back = await data.readRaw(payload.length, 20_000);
      assert.ok(back.equals(payload));
      const before = await metricValue(server, 'kaiwa_turn_tcp_bytes_to_peers_total');
      // Closing the client data connection closes the peer's.
      const peerSide = echo.sockets[0];
      const peerClosed = new Promise((res) => peerSide.on('close', res));
      data.close();
      await closedWithin(peerClosed, 5000, 'the peer connection');
      await sleep(1200);  // metrics are published once a second
      assert.ok(await metricValue(server, 'kaiwa_turn_tcp_bytes_to_peers_total') >= Math.max(before, 1 << 20));
      assert.ok(await metricValue(server, 'kaiwa_turn_tcp_bytes_to_clients_total') >= 1 << 20);
      assert.ok(await metricValue(server, 'kaiwa_turn_tcp_binds_total') >= 1);
      control.close();
    });

    await t.test('a peer connecting in: closed without a permission, ConnectionAttempt with one', async () => {
      const { control, relayed } = await tcpAllocation(turnPort);
      // No permission: the server accepts and closes; the client hears nothing.
      const stranger = net.connect(relayed.port, '127.0.0.1');
      stranger.on('error', () => {});
      const strangerGone = new Promise((res) => stranger.on('close', res));
      stranger.on('data', () => assert.fail('data from the relay without a permission'));
      await closedWithin(strangerGone, 5000, 'a connection without permission');
      assert.ok(!control.messages.some((m) => m.method === M.connectionAttempt));

      const p = await control.request(M.createPermission, [[A.xorPeerAddress, xorAddress('127.0.0.1', 1)]]);
      assert.equal(p.code, 200);
      const peer = net.connect(relayed.port, '127.0.0.1');
      peer.on('error', () => {});
      await new Promise((res) => peer.once('connect', res));
      const peerGone = new Promise((res) => peer.on('close', res));
      const attempt = await control.next((m) => m.method === M.connectionAttempt && m.cls === 1, 'ConnectionAttempt');
      assert.deepEqual(attempt.addr(A.xorPeerAddress), { host: '127.0.0.1', port: peer.localPort });
      peer.write('early bytes;');  // sent before the bind: kept for the data connection
      const { data, r } = await bindData(turnPort, control, attempt.connectionId);
      assert.equal(r.code, 200);
      data.socket.write('pong');
      const got = [];
      peer.on('data', (d) => got.push(d));
      assert.equal((await data.readRaw('early bytes;'.length)).toString(), 'early bytes;');
      peer.write('ping');
      assert.equal((await data.readRaw(4)).toString(), 'ping');
      for (let i = 0; i < 100 && Buffer.concat(got).length < 4; i++) await sleep(20);
      assert.equal(Buffer.concat(got).toString(), 'pong');
      // The same id cannot be bound twice.
      const { data: second, r: r2 } = await bindData(turnPort, control, attempt.connectionId);
      assert.equal(r2.code, 400);
      second.close();
      // Closing the control connection closes the allocation's data and peer connections.
      control.close();
      await closedWithin(peerGone, 5000, 'the peer connection');
      await closedWithin(data.closed, 5000, 'the client data connection');
    });

    await t.test('errors: 447 for a refused peer, 400 for an unknown id, 441 for another user, 403 filtered', async () => {
      const { control } = await tcpAllocation(turnPort);
      const closedPort = await freeUdpTcpPort();
      const refused = await control.request(M.connect, [[A.xorPeerAddress, xorAddress('127.0.0.1', closedPort)]]);
      assert.equal(refused.code, 447);
      const { data, r } = await bindData(turnPort, control, 12345);
      assert.equal(r.code, 400);
      data.close();
      const c = await control.request(M.connect, [[A.xorPeerAddress, xorAddress('127.0.0.1', echo.port)]]);
      assert.equal(c.code, 200);
      const bob = new TurnTcp(turnPort, { user: 'bob', password: 'bobpw' });
      await bob.ready();
      const rb = await bob.request(M.connectionBind, [[A.connectionId, u32(c.connectionId)]]);
      assert.equal(rb.code, 441);
      bob.close();
      const filtered = await control.request(M.connect, [[A.xorPeerAddress, xorAddress('10.1.2.3', 80)]]);
      assert.equal(filtered.code, 403);
      control.close();
    });

    await t.test('a TCP allocation over UDP is refused with 400', async () => {
      const sock = dgram.createSocket('udp4');
      const answers = [];
      sock.on('message', (m) => answers.push(decodeStun(m)));
      await new Promise((r) => sock.bind(0, '127.0.0.1', r));
      const send = async (attrs, key) => {
        const before = answers.length;
        sock.send(encodeStun(M.allocate, 0, attrs, key), turnPort, '127.0.0.1');
        for (let i = 0; i < 100 && answers.length === before; i++) await sleep(20);
        return answers.at(-1);
      };
      const challenge = await send([tcpTransport]);
      assert.equal(challenge.code, 401);
      const realm = challenge.text(A.realm);
      const nonce = challenge.text(A.nonce);
      const key = createHash('md5').update(`alice:${realm}:alicepw`).digest();
      const r = await send([tcpTransport, [A.username, Buffer.from('alice')], [A.realm, Buffer.from(realm)],
        [A.nonce, Buffer.from(nonce)]], key);
      assert.equal(r.code, 400);
      sock.close();
    });

    await t.test('TCP relay connections show in /metrics', async () => {
      await sleep(1200);
      assert.ok(await metricValue(server, 'kaiwa_turn_tcp_connections_total') >= 3);
      assert.equal(await metricValue(server, 'kaiwa_turn_tcp_connections'), 0);
    });
  } finally {
    echo.close();
    await server.stop();
  }
});

// Needs no coturn tools: datagrams the kernel drops on a worker's full TURN socket are counted in /metrics.
test('datagrams dropped by the kernel on a full TURN socket are counted (reason="socket_buffer")', async () => {
  const turnPort = await freeUdpTcpPort();
  const server = await startServer({ extraArgs: ['--workers', '1', '--turn-listen', `127.0.0.1:${turnPort}`] });
  const sock = dgram.createSocket('udp4');
  const dropped = () => metric(server, 'kaiwa_turn_dropped_total{reason="socket_buffer"}');
  try {
    assert.equal(await dropped(), 0);
    // The worker stopped, 48 MB of datagrams (more than its receive buffer holds: 8 MiB at most), then resumed.
    server.proc.kill('SIGSTOP');
    const junk = randomBytes(1200);
    for (let i = 0; i < 40_000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, () => new Promise((r) => sock.send(junk, turnPort, '127.0.0.1', r))));
    }
    server.proc.kill('SIGCONT');
    let n = 0;
    for (let i = 0; i < 50 && !(n > 0); i++) {
      await sleep(100);
      n = await dropped();
    }
    assert.ok(n > 0, `socket_buffer drops counted: ${n}`);
    assert.ok(n < 40_000, 'the datagrams the socket held were read (and dropped as malformed by kaiwa itself)');
  } finally {
    server.proc.kill('SIGCONT');
    sock.close();
    await server.stop();
  }
});

// The TLS transport below a Node TLS client, shaping how its records reach the server: 'pass' writes them as they
// come, 'hold' keeps them until release() writes them all in one socket write (one TCP segment up to the MSS),
// 'trickle' writes every record in pieces of 1 to 7 bytes a few milliseconds apart (records split over the server's
// reads). `paused` stops reading from the server (a slow client: the kernel's buffers fill up).
class ShapedTransport extends Duplex {
  constructor(port) {
    super();
    this.mode = 'pass';
    this.held = [];
    this.queue = Promise.resolve();
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.setNoDelay(true);
    this.sock.on('data', (d) => { if (!this.push(d)) this.sock.pause(); });
    this.sock.on('end', () => this.push(null));
    this.sock.on('error', (e) => this.destroy(e));
    this.sock.on('close', () => this.destroy());
  }
  _read() { if (!this.paused) this.sock.resume(); }
  setPaused(paused) {
    this.paused = paused;
    if (paused) this.sock.pause();
    else this.sock.resume();
  }
  _write(chunk, _enc, cb) {
    if (this.mode === 'hold') {
      this.held.push(chunk);
      return cb();
    }
    if (this.mode === 'pass') return this.sock.write(chunk, cb);
    this.queue = this.queue.then(async () => {
      for (let at = 0, k = 1; at < chunk.length; at += k, k = (k % 7) + 1) {
        this.sock.write(chunk.subarray(at, at + k));
        await sleep(2);
      }
    });
    this.queue.then(() => cb(), cb);
  }
  _final(cb) { this.queue.then(() => this.sock.end(cb)); }
  release() {
    const all = Buffer.concat(this.held);
    this.held = [];
    return new Promise((r) => this.sock.write(all, r));
  }
  _destroy(err, cb) {
    this.sock.destroy();
    cb(err);
  }
}

const channelBindMethod = 0x009;
const channelNumberAttr = 0x000c;

function channelData(channel, data) {
  const h = Buffer.alloc(4);
  h.writeUInt16BE(channel, 0);
  h.writeUInt16BE(data.length, 2);
  return Buffer.concat([h, data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
}

// Writes `data` as one TLS record (the write's callback: the record reached the transport).
const writeRecord = (socket, data) => new Promise((r, j) => socket.write(data, (e) => (e ? j(e) : r())));

test('TURN over TLS: records and messages in any arrangement, close_notify, a slow client', async (t) => {
  const tlsPort = await freeUdpTcpPort();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${await freeUdpTcpPort()}`, '--turn-tls-listen', `127.0.0.1:${tlsPort}`,
      '--turn-realm', 'example.test', '--turn-user', 'alice:alicepw', '--turn-ports', '46000-46999',
      '--turn-allow-peer', '127.0.0.0/8', '--turn-unauthenticated-rate', '0'],
  });
  // A UDP peer that echoes every datagram and remembers what it got.
  const peer = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  const got = [];
  peer.on('message', (m, rinfo) => {
    got.push(m);
    if (!peer.flood) peer.send(m, rinfo.port, rinfo.address);
  });
  await new Promise((r) => peer.bind(0, '127.0.0.1', r));
  const peerPort = peer.address().port;
  const CHANNEL = 0x4001;

  // A TLS control connection with a UDP allocation and a channel to the peer.
  async function channel() {
    const transport = new ShapedTransport(tlsPort);
    const socket = tls.connect({ socket: transport, rejectUnauthorized: false });
    const client = new TurnTcp(tlsPort, ALICE, socket);
    await client.ready();
    const a = await client.request(M.allocate, [[A.requestedTransport, Buffer.from([17, 0, 0, 0])]]);
    assert.equal(a.code, 200, `Allocate: ${a.code}`);
    const b = await client.request(channelBindMethod, [[channelNumberAttr, Buffer.from([0x40, 0x01, 0, 0])],
      [A.xorPeerAddress, xorAddress('127.0.0.1', peerPort)]]);
    assert.equal(b.code, 200, `ChannelBind: ${b.code}`);
    return { client, socket, transport, relayed: a.addr(A.xorRelayedAddress) };
  }
  const payload = (i, size = 100) => {
    const p = randomBytes(size);
    p.writeUInt32BE(i, 0);
    return p;
  };
  // The peer got `sent` (in this order, nothing else), and the client got each back on the channel.
  async function relayed(client, sent) {
    const back = await client.channelMessages(sent.length).catch((e) => { throw new Error(`${e.message}; the peer got ${got.length}`); });
    assert.deepEqual(got.splice(0).map((m) => m.toString('hex')), sent.map((m) => m.toString('hex')));
    assert.deepEqual(back.map((m) => m.data.toString('hex')), sent.map((m) => m.toString('hex')));
    assert.ok(back.every((m) => m.channel === CHANNEL));
  }

  try {
    await t.test('several ChannelData messages and a request in one record', async () => {
      const { client, socket } = await channel();
      const sent = Array.from({ length: 12 }, (_, i) => payload(i, 20 + 37 * i));
      await writeRecord(socket, Buffer.concat(sent.map((p) => channelData(CHANNEL, p))));
      await relayed(client, sent);
      // A Refresh between two ChannelData messages, all in one record.
      const refresh = encodeStun(M.refresh, 0, [[A.username, Buffer.from(ALICE.user)],
        [A.realm, Buffer.from(client.realm)], [A.nonce, Buffer.from(client.nonce)]],
      createHash('md5').update(`${ALICE.user}:${client.realm}:${ALICE.password}`).digest());
      const two = [payload(100), payload(101)];
      await writeRecord(socket, Buffer.concat([channelData(CHANNEL, two[0]), refresh, channelData(CHANNEL, two[1])]));
      const r = await client.next((m) => m.method === M.refresh && m.tx.equals(refresh.subarray(8, 20)), 'Refresh');
      assert.equal(r.code, 200);
      await relayed(client, two);
      socket.destroy();
    });

    await t.test('a message split over records, records split over reads', async () => {
      const { client, socket, transport } = await channel();
      // One ChannelData message in three records.
      const big = payload(7, 1200);
      const frame = channelData(CHANNEL, big);
      for (const [from, to] of [[0, 3], [3, 700], [700, frame.length]]) await writeRecord(socket, frame.subarray(from, to));
      await relayed(client, [big]);
      // Records written a few bytes at a time: the server reads parts of records.
      transport.mode = 'trickle';
      const sent = [payload(8), payload(9, 40), payload(10, 5)];
      for (const p of sent) await writeRecord(socket, channelData(CHANNEL, p));
      await relayed(client, sent);
      socket.destroy();
    });

    await t.test('hundreds of records in one write: more than one read of the socket takes', async () => {
      const { client, socket, transport } = await channel();
      transport.mode = 'hold';
      const sent = Array.from({ length: 300 }, (_, i) => payload(1000 + i));
      for (const p of sent) await writeRecord(socket, channelData(CHANNEL, p));  // 300 records, ~38 KB
      assert.ok(transport.held.reduce((n, b) => n + b.length, 0) > 32 * 1024);
      transport.mode = 'pass';
      await transport.release();
      await relayed(client, sent);
      socket.destroy();
    });

    await t.test('close_notify: the server closes the connection and deletes its allocation', async () => {
      await sleep(1200);  // the gauge is published once a second
      const before = await metricValue(server, 'kaiwa_turn_allocations');
      const { client, socket } = await channel();
      await sleep(1200);
      assert.equal(await metricValue(server, 'kaiwa_turn_allocations'), before + 1);
      const ended = new Promise((r) => socket.on('close', r));
      socket.end();  // close_notify, then FIN
      await closedWithin(ended, 5000, 'the TLS connection after close_notify');
      await sleep(1200);
      assert.equal(await metricValue(server, 'kaiwa_turn_allocations'), before);
      client.close();
    });

    await t.test('a client that stops reading: its queue is bounded, the rest dropped and counted', async () => {
      const { client, socket, transport, relayed: relay } = await channel();
      await sleep(1200);
      const dropped = () => metric(server, 'kaiwa_turn_dropped_total{reason="send_failed"}');
      const before = await dropped();
      transport.setPaused(true);
      // The peer sends 40 MB to the client, which reads none of it: far more than the kernel's socket buffers and
      // the server's 1 MiB queue per connection hold.
      peer.flood = true;
      const junk = randomBytes(1000);
      for (let i = 0; i < 40_000; i += 200) {
        await Promise.all(Array.from({ length: 200 }, () => new Promise((r) => peer.send(junk, relay.port, '127.0.0.1', r))));
      }
      let n = before;
      for (let i = 0; i < 50 && !(n > before); i++) {
        await sleep(100);
        n = await dropped();
      }
      assert.ok(n > before, `send_failed drops counted: ${before} -> ${n}`);
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.proc.pid}/status`, 'utf8'))[1]);
      assert.ok(rss < 200 * 1024, `server RSS ${rss} kB`);
      // Reading again, the client gets what was queued, and the connection still works.
      peer.flood = false;
      transport.setPaused(false);
      for (let i = 0, last = -1; i < 200 && client.channelData.length !== last; i++) {
        last = client.channelData.length;
        await sleep(300);
      }
      assert.ok(client.channelData.length > 1000, `the backlog: ${client.channelData.length} messages`);
      client.channelData.length = 0;
      got.length = 0;
      const late = [payload(5000)];
      await writeRecord(socket, channelData(CHANNEL, late[0]));
      const deadline = Date.now() + 20_000;
      while (!client.channelData.some((m) => m.data.equals(late[0])) && Date.now() < deadline) await sleep(50);
      assert.ok(client.channelData.some((m) => m.data.equals(late[0])), 'the echo after the backlog');
      socket.destroy();
    });
  } finally {
    peer.close();
    await server.stop();
  }
});

// --- Quotas, /api/ice-servers access, timeouts, accept errors (the security-hardening issue) ------------------------

// A TCP Allocate with the credentials of one /api/ice-servers answer, on a new connection; its answer's code.
async function allocateWith(turnPort, entry) {
  const c = new TurnTcp(turnPort, { user: entry.username, password: entry.credential });
  await c.ready();
  const r = await c.request(M.allocate, [[A.requestedTransport, Buffer.from([17, 0, 0, 0])]]);
  return { c, code: r.code };
}

const turnEntry = (body) => body.iceServers.find((s) => s.urls.some((u) => u.startsWith('turn:')));

test('/api/ice-servers: every answer is a TURN user of its own; per-user and per-address quotas', async () => {
  const turnPort = await freeUdpTcpPort();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-user-quota', '2', '--turn-address-quota', '3'],
  });
  const open = [];
  try {
    const a = turnEntry(await (await fetch(`${server.url}/api/ice-servers`)).json());
    const b = turnEntry(await (await fetch(`${server.url}/api/ice-servers`)).json());
    assert.notEqual(a.username, b.username);
    assert.match(a.username, /^\d+:[A-Za-z0-9]{16}$/);
    const codes = [];
    for (const entry of [a, a, a, b, b]) {
      const { c, code } = await allocateWith(turnPort, entry);
      open.push(c);
      codes.push(code);
    }
    // a: two (its quota), the third 486; b: one more for 127.0.0.1 (its quota of 3), then 486.
    assert.deepEqual(codes, [200, 200, 486, 200, 486]);
    await sleep(1200);  // the workers publish once a second
    assert.equal(await metric(server, 'kaiwa_turn_allocation_refusals_total{quota="user"}'), 1);
    assert.equal(await metric(server, 'kaiwa_turn_allocation_refusals_total{quota="address"}'), 1);
    assert.equal(await metric(server, 'kaiwa_turn_allocation_refusals_total{quota="total"}'), 0);
  } finally {
    for (const c of open) c.close();
    await server.stop();
  }
});

test('/api/ice-servers with --auth-secret needs a room token (Authorization: Bearer or ?token=)', async () => {
  const secret = 'ice-auth-secret';
  const bin = process.env.KAIWA_BIN;
  const token = (room, ttl = '1h') => execFileSync(bin ?? 'build/kaiwa', ['token', '--secret', secret, '--room', room,
    '--user', 'alice', '--ttl', ttl]).toString().trim();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${await freeUdpTcpPort()}`, '--auth-secret', secret],
  });
  try {
    const get = (query = '', headers = {}) => fetch(`${server.url}/api/ice-servers${query}`, { headers });
    const refused = async (res) => {
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      const body = await res.json();
      assert.equal(body.error, 'unauthorized');
      assert.equal(typeof body.message, 'string');
      assert.equal(body.iceServers, undefined);
    };
    await refused(await get());
    await refused(await get('?room=demo'));
    await refused(await get('?room=demo', { Authorization: `Bearer ${token('other')}` }));
    await refused(await get('?room=demo&token=not.a.token'));
    await refused(await get('', { Authorization: `Bearer ${token('demo')}` }));  // no ?room=: only "*" tokens
    await refused(await get('?room=demo', { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }));
    const ok = await get('?room=demo', { Authorization: `Bearer ${token('demo')}` });
    assert.equal(ok.status, 200);
    assert.ok(turnEntry(await ok.json()).username);
    assert.equal((await get(`?room=demo&token=${token('demo')}`)).status, 200);
    assert.equal((await get(`?token=${token('*')}`)).status, 200);
    assert.equal((await get('?room=x', { Authorization: `Bearer ${token('*')}` })).status, 200);
  } finally {
    await server.stop();
  }
  // Without --auth-secret nothing is asked.
  const open = await startServer({ extraArgs: ['--turn-listen', `127.0.0.1:${await freeUdpTcpPort()}`] });
  try {
    assert.equal((await fetch(`${open.url}/api/ice-servers`)).status, 200);
  } finally {
    await open.stop();
  }
});

test('TURN TCP/TLS connections time out: silent, half a frame, stalled TLS handshake, idle after the allocation', async (t) => {
  const turnPort = await freeUdpTcpPort();
  const tlsPort = await freeUdpTcpPort();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-tls-listen', `127.0.0.1:${tlsPort}`,
      '--turn-realm', 'example.test', '--turn-user', 'alice:alicepw', '--turn-tls-handshake-timeout', '1s',
      '--turn-tcp-allocate-timeout', '1s', '--turn-tcp-frame-timeout', '1s', '--turn-tcp-idle-timeout', '1s'],
  });
  const timeouts = (reason) => metric(server, `kaiwa_turn_tcp_timeouts_total{reason="${reason}"}`);
  const udpAllocate = [A.requestedTransport, Buffer.from([17, 0, 0, 0])];
  try {
    await t.test('a TCP connection that sends nothing is closed', async () => {
      const sock = net.connect(turnPort, '127.0.0.1');
      sock.on('error', () => {});
      const closed = new Promise((r) => sock.on('close', r));
      await closedWithin(closed, 10_000, 'the silent connection');
      assert.ok(await timeouts('no_allocation') >= 1);
    });

    await t.test('an allocated connection that sends half a frame is closed', async () => {
      const client = new TurnTcp(turnPort, ALICE);
      await client.ready();
      assert.equal((await client.request(M.allocate, [udpAllocate])).code, 200);
      client.socket.write(Buffer.from([0x40, 0x01, 0x00, 0x10, 1, 2, 3]));  // ChannelData announcing 16 bytes, 3 sent
      await closedWithin(client.closed, 10_000, 'the connection holding half a frame');
      assert.equal(await timeouts('partial_frame'), 1);
    });

    await t.test('a TLS connection that stalls in the handshake is closed', async () => {
      const sock = net.connect(tlsPort, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise((r) => sock.once('connect', r));
      sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));  // the start of a ClientHello, no more
      await closedWithin(new Promise((r) => sock.on('close', r)), 10_000, 'the stalled TLS handshake');
      assert.equal(await timeouts('tls_handshake'), 1);
    });

    await t.test('a connection with a live allocation stays; once it is deleted, a silent one is closed', async () => {
      const client = new TurnTcp(turnPort, ALICE);
      await client.ready();
      assert.equal((await client.request(M.allocate, [udpAllocate])).code, 200);
      let closed = false;
      client.closed.then(() => { closed = true; });
      await sleep(2500);  // past every timeout: an allocation keeps its connection
      assert.equal(closed, false);
      assert.equal((await client.request(M.refresh, [[A.lifetime, u32(0)]])).code, 200);  // deletes it
      await closedWithin(client.closed, 10_000, 'the connection without its allocation');
      assert.equal(await timeouts('idle'), 1);
    });
  } finally {
    await server.stop();
  }
});

// Out of file descriptors, accept() fails while connections wait in the backlog: the listener pauses (100 ms doubling
// to 1 s) instead of retrying at once, which spun a core with millions of failed accepts.
test('TURN TCP accept failures (EMFILE) back off, and accepting resumes', { skip: SANITIZED_SKIP }, async () => {
  const turnPort = await freeUdpTcpPort();
  const server = await startServer({ extraArgs: ['--workers', '1', '--turn-listen', `127.0.0.1:${turnPort}`] });
  const pid = server.proc.pid;
  const limits = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--raw', '--noheadings'])
    .toString().trim().split(/\s+/);  // RESOURCE DESCRIPTION SOFT HARD UNITS
  const [soft, hard] = limits.filter((w) => /^\d+$/.test(w));
  const socks = [];
  try {
    const openFds = readdirSync(`/proc/${pid}/fd`).length;
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${openFds}:${hard}`]);  // no fd left for an accept
    for (let i = 0; i < 5; i++) {
      const s = net.connect(turnPort, '127.0.0.1');  // completed by the kernel, waiting in the backlog
      s.on('error', () => {});
      socks.push(s);
    }
    await sleep(1500);
    for (const s of socks) s.destroy();
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
    // Accepting resumes (after at most a second): a Binding request over TCP is answered.
    const client = new TurnTcp(turnPort, ALICE);
    await client.ready();
    client.socket.write(encodeStun(0x001, 0, []));
    const r = await client.next((m) => m.method === 0x001 && m.cls === 2, 'Binding answer', 10_000);
    assert.equal(r.code, 200);
    client.close();
    const errors = await metric(server, 'kaiwa_turn_accept_errors_total');
    // 1.5 s of 100, 200, 400, 800 ms pauses: a handful (an accept retried at once fails hundreds of thousands of times).
    assert.ok(errors >= 1 && errors <= 20, `accept errors: ${errors}`);
    assert.match(server.logs(), /accepting a TURN TCP connection failed: Too many open files/);
  } finally {
    for (const s of socks) s.destroy();
    await server.stop();
  }
});
