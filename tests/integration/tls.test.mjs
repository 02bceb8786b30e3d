// WSS: kaiwa's WebSockets over TLS (--tls-self-signed), served by the same bare-descriptor layer as plain TCP once
// Asio has done the TLS handshake and read the upgrade request (src/http/websocket.cpp).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { startServer, uniqueRoom } from '../e2e/helpers.mjs';
import { Client, WAIT, clientFrame, metric, sleep } from './client.mjs';

// The server's certificate is self-signed: this process (one test file) trusts it blindly, on loopback only.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

/** kaiwa over HTTPS with the certificate it makes at start-up, without TURN. */
function startTlsServer(extra = []) {
  return startServer({ tls: true, extraArgs: ['--no-turn', ...extra] });
}

/** A raw TLS connection upgraded to a WebSocket on /ws and joined to `room`; `got` collects what it reads. */
async function openRawTls(server, room, socket) {
  const tls = tlsConnect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false, socket });
  await new Promise((r, j) => { tls.once('secureConnect', r); tls.once('error', j); });
  const peer = { tls, got: Buffer.alloc(0), ended: false };
  tls.on('data', (d) => { peer.got = Buffer.concat([peer.got, d]); });
  tls.on('end', () => { peer.ended = true; });
  tls.on('error', () => {});
  const until = async (pred, what) => {
    const deadline = Date.now() + WAIT;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`no ${what}`);
      await sleep(10);
    }
  };
  tls.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await until(() => peer.got.includes('"type":"hello"'), 'upgrade');
  tls.write(clientFrame(1, Buffer.from(JSON.stringify({ v: 1, type: 'join', id: 1, room, name: 'Raw' }))));
  await until(() => peer.got.includes('"re":1'), 'join reply');
  peer.until = until;
  return peer;
}

test('WSS: join, relay, large messages across TLS records, chat and leave', async () => {
  const server = await startTlsServer();
  try {
    const room = uniqueRoom('tls');
    const a = await Client.open(server);
    const b = await Client.open(server);
    assert.equal((await a.join(room, 'Alice')).type, 'ok');
    assert.equal((await b.join(room, 'Bob')).type, 'ok');
    b.send({ type: 'signal', to: a.peer, data: { description: { type: 'offer', sdp: 'v=0\r\n' } } });
    assert.equal((await a.waitFor((m) => m.type === 'signal')).data.description.sdp, 'v=0\r\n');
    // 60 000 bytes: four TLS records each way, and more than one read.
    const big = 'あ'.repeat(20_000);
    a.send({ type: 'message', to: b.peer, data: big });
    assert.equal((await b.waitFor((m) => m.type === 'message')).data, big);
    b.send({ type: 'message', to: a.peer, data: big + '!' });
    assert.equal((await a.waitFor((m) => m.type === 'message')).data, big + '!');
    for (let i = 0; i < 50; i++) a.send({ type: 'message', to: b.peer, data: i });
    await b.until(() => b.messages.filter((m) => m.type === 'message').length === 51, WAIT, '50 more');
    assert.deepEqual(b.messages.filter((m) => m.type === 'message').slice(1).map((m) => m.data),
      Array.from({ length: 50 }, (_, i) => i), 'in order');
    assert.equal((await b.request({ type: 'chat', text: 'TLS でも' })).type, 'ok');
    assert.equal((await a.waitFor((m) => m.type === 'chat')).text, 'TLS でも');
    assert.equal((await a.request({ type: 'leave' })).type, 'ok');
    assert.equal((await b.waitFor((m) => m.type === 'peer-left')).peer, a.peer);
    a.close();
    assert.equal((await a.waitClosed()).code, 1005);
    b.close();
    await b.waitClosed();
    // Each connection goes once its close handshake, our close_notify and the peer's FIN are through.
    let open = NaN;
    for (const deadline = Date.now() + WAIT; Date.now() < deadline;) {
      open = await metric(server, 'kaiwa_websocket_connections');
      if (open === 0) break;
      await sleep(50);
    }
    assert.equal(open, 0);
  } finally {
    await server.stop();
  }
});

test('WSS on the wire: ping between fragments, 1007 for bad UTF-8, then close_notify and the end', async () => {
  const server = await startTlsServer();
  try {
    const room = uniqueRoom('tls');
    const reader = await Client.open(server);
    await reader.join(room, 'Reader');
    const raw = await openRawTls(server, room);
    const text = Buffer.from(JSON.stringify({ v: 1, type: 'chat', text: '断片 over TLS' }));
    raw.tls.write(clientFrame(1, text.subarray(0, 10), { fin: false }));
    raw.tls.write(clientFrame(9, Buffer.from('hi')));
    raw.tls.write(clientFrame(0, text.subarray(10)));
    assert.equal((await reader.waitFor((m) => m.type === 'chat')).text, '断片 over TLS');
    await raw.until(() => raw.got.includes(Buffer.from([0x8a, 0x02, 0x68, 0x69])), 'pong');
    raw.tls.write(clientFrame(1, Buffer.from([0x7b, 0xc0, 0xaf, 0x7d])));
    await raw.until(() => raw.got.includes(Buffer.from([0x88, 0x02, 0x03, 0xef])), 'close frame with 1007');
    raw.tls.write(clientFrame(8, Buffer.from([0x03, 0xef])));  // the client's half of the close handshake
    await raw.until(() => raw.ended, 'close_notify (end of the TLS stream)');
    assert.equal((await reader.request({ type: 'chat', text: 'still here' })).type, 'ok');
    reader.close();
  } finally {
    await server.stop();
  }
});

test('WSS: a corrupt TLS record closes that connection only, and is counted', async () => {
  // No grace period: a dropped peer leaves at once, which the other member sees.
  const server = await startTlsServer(['--resume-grace', '0s']);
  try {
    const room = uniqueRoom('tls');
    const other = await Client.open(server);
    await other.join(room, 'Other');
    const tcp = tcpConnect({ host: '127.0.0.1', port: server.port });
    await new Promise((r) => tcp.once('connect', r));
    const raw = await openRawTls(server, room, tcp);
    const closed = new Promise((r) => tcp.once('close', r));
    // An application-data record of garbage, written under the TLS layer: it cannot decrypt.
    tcp.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), randomBytes(64)]));
    await closed;
    assert.ok(await other.waitFor((m) => m.type === 'peer-left'));
    assert.equal(await metric(server, 'kaiwa_dropped_total{reason="tls_bad"}'), 1);
    assert.equal((await other.request({ type: 'chat', text: 'fine' })).type, 'ok');
    other.close();
    raw.tls.destroy();
  } finally {
    await server.stop();
  }
});

test('WSS: SIGTERM tells the client bye and closes its WebSocket', async () => {
  const server = await startTlsServer(['--shutdown-timeout', '3s']);
  try {
    const a = await Client.open(server);
    await a.join(uniqueRoom('tls'), 'A');
    server.proc.kill('SIGTERM');
    assert.equal((await a.waitFor((m) => m.type === 'bye')).type, 'bye');
    assert.equal((await a.waitClosed()).code, 1001);
  } finally {
    await server.stop();
  }
});

test('WSS: a client that sends its first frame without waiting for the 101 is served', async () => {
  const server = await startTlsServer();
  try {
    const tls = tlsConnect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false });
    await new Promise((r, j) => { tls.once('secureConnect', r); tls.once('error', j); });
    let got = Buffer.alloc(0);
    tls.on('data', (d) => { got = Buffer.concat([got, d]); });
    // The request and a join in one burst: the join is read with the request (it reaches the WebSocket as bytes left
    // over past the request) or is still a record inside Asio's stream at the upgrade, read out when the WebSocket
    // takes the TLS state over. Either way it is answered.
    tls.cork();
    tls.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    tls.write(clientFrame(1, Buffer.from(JSON.stringify({ v: 1, type: 'join', id: 1, room: uniqueRoom('tls'), name: 'Eager' }))));
    tls.uncork();
    const deadline = Date.now() + WAIT;
    while (!got.includes('"re":1') && Date.now() < deadline) await sleep(10);
    assert.ok(got.includes('"type":"hello"') && got.includes('"re":1,'), 'hello and the join reply');
    tls.destroy();
  } finally {
    await server.stop();
  }
});

test('WSS: socket.io-client over HTTPS, polling then the upgrade to WebSocket, relays the guide\'s events', async () => {
  const server = await startTlsServer();
  const { io } = await import('socket.io-client');
  const opts = { forceNew: true, reconnection: false, timeout: 5000, rejectUnauthorized: false };
  const a = io(server.url, opts);  // default transports: long polling over HTTPS first, then the upgrade
  const b = io(server.url, opts);
  try {
    await Promise.all([a, b].map((s) => new Promise((r, j) => { s.once('connect', r); s.once('connect_error', j); })));
    const upgraded = (s) => new Promise((r) => {
      if (s.io.engine.transport.name === 'websocket') r();
      else s.io.engine.once('upgrade', r);
    });
    await Promise.all([upgraded(a), upgraded(b)]);
    const room = uniqueRoom('tls');
    const joined = new Promise((r) => a.on('user-joined', r));
    a.emit('join-room', room);
    await sleep(100);
    b.emit('join-room', room);
    assert.equal(await joined, b.id);
    const offer = new Promise((r) => b.on('offer', r));
    a.emit('offer', { to: b.id, offer: { type: 'offer', sdp: 'v=0\r\n' } });
    assert.deepEqual(await offer, { from: a.id, offer: { type: 'offer', sdp: 'v=0\r\n' } });
  } finally {
    a.close();
    b.close();
    await server.stop();
  }
});

test('WSS: direct socket.io-client WebSockets move, TLS state and all, to the worker of the room they join', async () => {
  const server = await startTlsServer(['--workers', '4']);
  const { io } = await import('socket.io-client');
  const opts = { forceNew: true, reconnection: false, timeout: 5000, rejectUnauthorized: false,
    transports: ['websocket'] };
  const sockets = [];
  try {
    for (let i = 0; i < 6; i++) {
      const room = uniqueRoom(`tls-move${i}`);
      const [a, b] = [io(server.url, opts), io(server.url, opts)];
      sockets.push(a, b);
      await Promise.all([a, b].map((s) => new Promise((r, j) => { s.once('connect', r); s.once('connect_error', j); })));
      await a.timeout(WAIT).emitWithAck('join-room', room);
      const joined = new Promise((r) => a.on('user-joined', r));
      // b's join-room, then at once (the same tick: likely the same TLS read) a 40 kB offer that spans records.
      const offers = new Promise((r) => a.on('offer', r));
      b.emit('join-room', room);
      const sdp = 'v=0\r\n' + 'a=x\r\n'.repeat(8000);
      b.emit('offer', { to: a.id, offer: { type: 'offer', sdp } });
      assert.equal(await joined, b.id);
      assert.deepEqual(await offers, { from: b.id, offer: { type: 'offer', sdp } });
      const answer = new Promise((r) => b.on('answer', r));
      a.emit('answer', { to: b.id, answer: { type: 'answer', sdp: 'v=0\r\n' } });
      assert.equal((await answer).from, a.id);
    }
    // 12 sockets joined; each moved unless it was accepted on its room's worker (one chance in four).
    const moves = await metric(server, 'kaiwa_ws_moves_total');
    assert.ok(moves >= 1 && moves <= 12, `kaiwa_ws_moves_total ${moves}`);
    assert.equal(await metric(server, 'kaiwa_dropped_total{reason="tls_bad"}'), 0);
  } finally {
    for (const s of sockets) s.close();
    await server.stop();
  }
});
