// Passive ICE-TCP on the SFU's media port (RFC 6544 with RFC 4571 framing; media/tcp_port.hpp): a WHIP answer
// carries a TCP passive candidate on the media port below the UDP one; a STUN Binding request framed on a TCP
// connection to that port gets a success response with the connection's address, whichever worker the kernel gave
// the connection to; a first frame that is garbage, a frame over the maximum, an unknown ufrag, a check that does
// not authenticate and a connection that says nothing for ten seconds are closed and counted; --no-sfu-tcp takes
// the candidate and the listener away. The media over TCP is tests/e2e/sfu-tcp.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { freeUdpTcpPort, startServer, ROOT, uniqueRoom } from '../e2e/helpers.mjs';

const vector = (name) => readFileSync(join(ROOT, 'tests/unit/sdp/vectors', name), 'utf8');
const PUBLISHER = vector('chromium156_audio_video.sdp');
const COOKIE = 0x2112a442;

async function withServer(args, fn) {
  const sfuPort = await freeUdpTcpPort();
  const server = await startServer({ extraArgs: ['--no-turn', '--workers', '2', '--sfu-listen', `127.0.0.1:${sfuPort}`, ...args] });
  try {
    await fn(server, sfuPort);
  } finally {
    await server.stop();
  }
}

async function publish(server) {
  const res = await fetch(`${server.url}/whip/${uniqueRoom('icetcp')}`, {
    method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: PUBLISHER,
  });
  assert.equal(res.status, 201, await res.clone().text());
  const answer = await res.text();
  return {
    answer,
    ufrag: answer.match(/a=ice-ufrag:(\S+)/)[1],
    pwd: answer.match(/a=ice-pwd:(\S+)/)[1],
    clientUfrag: PUBLISHER.match(/a=ice-ufrag:(\S+)/)[1],
  };
}

function attr(type, value) {
  const h = Buffer.alloc(4);
  h.writeUInt16BE(type, 0);
  h.writeUInt16BE(value.length, 2);
  return Buffer.concat([h, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
}

// A Binding request as a controlling ICE agent sends it: USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE and
// MESSAGE-INTEGRITY with kaiwa's password.
function bindingRequest(username, pwd) {
  const priority = Buffer.alloc(4);
  priority.writeUInt32BE(0x6e0001ff);
  let body = Buffer.concat([attr(0x0006, Buffer.from(username)), attr(0x0024, priority), attr(0x802a, randomBytes(8)),
    attr(0x0025, Buffer.alloc(0))]);
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0001, 0);
  header.writeUInt32BE(COOKIE, 4);
  randomBytes(12).copy(header, 8);
  header.writeUInt16BE(body.length + 24, 2);
  const mac = createHmac('sha1', pwd).update(Buffer.concat([header, body])).digest();
  body = Buffer.concat([body, attr(0x0008, mac)]);
  return Buffer.concat([header, body]);
}

const frame = (payload) => {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(payload.length);
  return Buffer.concat([h, payload]);
};

// A TCP connection to the media port that collects RFC 4571 frames.
class FramedTcp {
  constructor(port) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.closed = new Promise((r) => this.socket.on('close', r));
    this.socket.on('error', () => {});
    this.socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
        const n = this.buf.readUInt16BE(0);
        this.frames.push(Buffer.from(this.buf.subarray(2, 2 + n)));
        this.buf = this.buf.subarray(2 + n);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }
  ready() { return new Promise((r, j) => { this.socket.once('connect', r); this.socket.once('error', j); }); }
  async nextFrame(ms = 5000) {
    const deadline = Date.now() + ms;
    while (this.frames.length === 0) {
      if (Date.now() > deadline) throw new Error('no frame in time');
      await Promise.race([new Promise((r) => this.waiters.push(r)), new Promise((r) => setTimeout(r, 100)),
        this.closed.then(() => { throw new Error('closed before a frame came'); })]);
    }
    return this.frames.shift();
  }
  async closedWithin(ms) {
    let timer;
    const result = await Promise.race([this.closed.then(() => true),
      new Promise((r) => { timer = setTimeout(() => r(false), ms); })]);
    clearTimeout(timer);
    return result;
  }
  destroy() { this.socket.destroy(); }
}

async function metric(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}
const closedBy = (server, reason) => metric(server, `kaiwa_sfu_tcp_closed_total{reason="${reason}"}`);

function mappedAddress(response) {
  for (let at = 20; at + 4 <= response.length;) {
    const t = response.readUInt16BE(at);
    const len = response.readUInt16BE(at + 2);
    if (t === 0x0020) {
      const v = response.subarray(at + 4, at + 4 + len);
      const port = v.readUInt16BE(2) ^ (COOKIE >>> 16);
      const host = [0, 1, 2, 3].map((i) => v[4 + i] ^ ((COOKIE >>> (24 - 8 * i)) & 0xff)).join('.');
      return { host, port };
    }
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  return null;
}

test('ICE-TCP: a passive TCP candidate below UDP, and framed Binding requests answered on every worker', async () => {
  await withServer([], async (server, sfuPort) => {
    const { answer, ufrag, pwd, clientUfrag } = await publish(server);
    const udp = answer.match(new RegExp(`a=candidate:\\S+ 1 udp (\\d+) 127\\.0\\.0\\.1 ${sfuPort} typ host`));
    const tcp = answer.match(new RegExp(`a=candidate:\\S+ 1 tcp (\\d+) 127\\.0\\.0\\.1 ${sfuPort} typ host tcptype passive`));
    assert.ok(udp, answer);
    assert.ok(tcp, answer);
    assert.ok(Number(tcp[1]) < Number(udp[1]), 'UDP is preferred');

    // Four connections (the most one transport keeps): with two workers, the kernel gives some of them to the worker
    // that does not own the transport, which hands them over.
    const conns = [];
    for (let i = 0; i < 4; i++) {
      const c = new FramedTcp(sfuPort);
      await c.ready();
      // The request in two writes split inside the frame header: the reader must reassemble it.
      const bytes = frame(bindingRequest(`${ufrag}:${clientUfrag}`, pwd));
      c.socket.write(bytes.subarray(0, 1));
      await new Promise((r) => setTimeout(r, 20));
      c.socket.write(bytes.subarray(1));
      const response = await c.nextFrame();
      assert.equal(response.readUInt16BE(0), 0x0101, 'a Binding success response');
      assert.deepEqual(mappedAddress(response), { host: '127.0.0.1', port: c.socket.localPort });
      conns.push(c);
    }
    // A later check on an open connection is answered too (consent).
    conns[0].socket.write(frame(bindingRequest(`${ufrag}:${clientUfrag}`, pwd)));
    assert.equal((await conns[0].nextFrame()).readUInt16BE(0), 0x0101);
    assert.equal(await metric(server, 'kaiwa_sfu_tcp_connections'), 4);

    // A fifth one for the same transport is refused.
    const fifth = new FramedTcp(sfuPort);
    await fifth.ready();
    fifth.socket.write(frame(bindingRequest(`${ufrag}:${clientUfrag}`, pwd)));
    assert.ok(await fifth.closedWithin(5000), 'the fifth connection of a transport is closed');
    assert.equal(await closedBy(server, 'too_many_paths'), 1);
    for (const c of conns) c.destroy();

    // Connections that the kernel gives to the worker that does not own the transport are handed over, and the owner
    // judges their check: here with a wrong password, until one was handed over (each has an even chance).
    const badCheck = await closedBy(server, 'bad_check');
    let opened = 0;
    for (; opened < 40 && (await metric(server, 'kaiwa_sfu_tcp_handovers_total')) === 0; opened++) {
      const c = new FramedTcp(sfuPort);
      await c.ready();
      c.socket.write(frame(bindingRequest(`${ufrag}:${clientUfrag}`, 'wrong-password')));
      assert.ok(await c.closedWithin(5000));
    }
    assert.ok(await metric(server, 'kaiwa_sfu_tcp_handovers_total') > 0, 'no connection was handed over');
    assert.equal(await closedBy(server, 'bad_check'), badCheck + opened, 'the owner judged every check');
  });
});

test('ICE-TCP: garbage, oversized frames, unknown ufrags, failed checks and silence are closed and counted', async () => {
  await withServer([], async (server, sfuPort) => {
    const { ufrag, pwd, clientUfrag } = await publish(server);
    const cases = [
      ['bad_first_frame', frame(Buffer.from('GET / HTTP/1.1\r\n\r\n'))],
      // An HTTP request's first two bytes announce a frame of 0x4745 = 18245 bytes: over the maximum.
      ['too_large', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
      ['too_large', Buffer.from([0xff, 0xff, 1, 2, 3])],
      ['unknown_ufrag', frame(bindingRequest(`w0xnosuchufrag:${clientUfrag}`, pwd))],
      ['bad_check', frame(bindingRequest(`${ufrag}:${clientUfrag}`, 'not-the-password'))],
    ];
    const before = {};
    for (const [reason] of cases) before[reason] = await closedBy(server, reason);
    const expected = {};
    for (const [reason, bytes] of cases) {
      const c = new FramedTcp(sfuPort);
      await c.ready();
      c.socket.write(bytes);
      assert.ok(await c.closedWithin(5000), `closed: ${reason}`);
      expected[reason] = (expected[reason] ?? before[reason]) + 1;
    }
    for (const reason of Object.keys(expected)) {
      assert.equal(await closedBy(server, reason), expected[reason], reason);
    }

    // A connection that sends nothing, and one that sends half a frame, are closed ten seconds after accept.
    const silent = new FramedTcp(sfuPort);
    const half = new FramedTcp(sfuPort);
    await Promise.all([silent.ready(), half.ready()]);
    half.socket.write(Buffer.from([0, 100, 1, 2, 3]));
    const noCheck = await closedBy(server, 'no_check');
    assert.ok(!(await silent.closedWithin(8000)), 'still open before the deadline');
    assert.ok(await silent.closedWithin(5000), 'closed after the first-check deadline');
    assert.ok(await half.closedWithin(2500), 'a partial frame does not keep a connection');
    assert.equal(await closedBy(server, 'no_check'), noCheck + 2);
    assert.equal(await metric(server, 'kaiwa_sfu_tcp_connections'), 0);
  });
});

test('ICE-TCP: --no-sfu-tcp announces no TCP candidate and does not listen', async () => {
  await withServer(['--no-sfu-tcp'], async (server, sfuPort) => {
    const { answer } = await publish(server);
    assert.match(answer, / udp /);
    assert.doesNotMatch(answer, / tcp /);
    const refused = await new Promise((resolve) => {
      const s = net.connect(sfuPort, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(false); });
      s.once('error', () => resolve(true));
    });
    assert.ok(refused, 'nothing listens on the TCP port');
  });
});
