// kaiwa's native signaling and HTTP surface, end to end over loopback, with the real server binary:
// limits, access control, reconnect, slow consumers, shutdown, metrics, static files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startServer, ROOT, uniqueRoom } from '../e2e/helpers.mjs';
import {
  Client, WAIT, clientFrame, metric, openRawPeer, openRawWebSocket, openStalledPeer, rawHttp, sleep,
} from './client.mjs';

const BIN = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');

async function withServer(args, fn) {
  const server = await startServer({ extraArgs: args });
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

test('join, relay, state, chat and leave between two peers', async () => {
  await withServer([], async (server) => {
    const room = uniqueRoom();
    const a = await Client.open(server);
    const b = await Client.open(server);
    assert.equal((await a.join(room, 'Alice')).type, 'ok');
    const jb = await b.join(room, 'Bob', { state: { videoOff: true } });
    assert.deepEqual(jb.peers.map((p) => p.name), ['Alice']);
    const seen = await a.waitFor((m) => m.type === 'peer-joined');
    assert.equal(seen.peer.id, b.peer);
    assert.equal(seen.peer.state.videoOff, true);

    b.send({ type: 'signal', to: a.peer, data: { description: { type: 'offer', sdp: 'v=0\r\n' } } });
    const sig = await a.waitFor((m) => m.type === 'signal');
    assert.equal(sig.from, b.peer);
    assert.equal(sig.data.description.sdp, 'v=0\r\n');

    a.send({ type: 'state', state: { audioMuted: true } });
    const st = await b.waitFor((m) => m.type === 'peer-state');
    assert.deepEqual(st.state, { audioMuted: true, videoOff: false, screenSharing: false });

    assert.equal((await b.request({ type: 'chat', text: 'こんにちは' })).type, 'ok');
    for (const c of [a, b]) assert.equal((await c.waitFor((m) => m.type === 'chat')).text, 'こんにちは');

    const unknown = await a.request({ type: 'signal', to: 'nobody', data: {} });
    assert.equal(unknown.code, 'unknown-peer');

    assert.equal((await b.request({ type: 'leave' })).type, 'ok');
    assert.equal((await a.waitFor((m) => m.type === 'peer-left')).reason, 'left');
    assert.equal((await b.request({ type: 'chat', text: 'x' })).code, 'not-joined');
    a.close();
    b.close();
  });
});

test('malformed, oversized and binary messages get errors and the connection goes on', async () => {
  await withServer(['--max-message-bytes', '1024'], async (server) => {
    const a = await Client.open(server);
    a.sendRaw('not json');
    assert.equal((await a.waitFor((m) => m.type === 'error')).code, 'bad-message');
    a.sendRaw('x'.repeat(2000));
    assert.equal((await a.waitFor((m) => m.code === 'too-large')).type, 'error');
    a.ws.send(new Uint8Array([1, 2, 3]));
    await a.waitFor((m) => m.message?.includes('binary'));
    assert.equal((await a.request({ type: 'dance' })).code, 'bad-message');
    assert.equal((await a.request({ type: 'join', room: 'bad room', name: 'x' })).code, 'bad-message');
    assert.equal((await a.join(uniqueRoom(), 'Still here')).type, 'ok');
    assert.ok((await metric(server, 'kaiwa_dropped_total{reason="malformed"}')) >= 2);
    assert.ok((await metric(server, 'kaiwa_dropped_total{reason="too_large"}')) >= 1);
    // Far over the limit (4x, at least 1 MiB): the frame is not even read; the connection is closed with 1009.
    a.sendRaw('y'.repeat(1100 * 1024));
    assert.equal((await a.waitClosed()).code, 1009);
  });
});

test('a client still writing an oversized frame reads the 1009 close, not a reset', async () => {
  // The server stops reading at the frame header; it must keep draining what follows until the client has read the
  // close frame, or the kernel resets the connection and the client's writes fail (what Beast's own teardown did).
  await withServer(['--max-message-bytes', '1024'], async (server) => {
    const { sock } = await openRawPeer(server, uniqueRoom(), 'Big', { allowHalfOpen: true });
    let received = Buffer.alloc(0);
    let writeError = null;
    sock.on('data', (d) => { received = Buffer.concat([received, d]); });
    sock.on('error', (e) => { writeError = e; });
    const ended = new Promise((r) => sock.once('close', r));
    const size = 1100 * 1024;
    const header = Buffer.alloc(14);
    header[0] = 0x81; header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(size), 2); // the mask key stays 0
    sock.write(header);
    for (let sent = 0; sent < size && !writeError; sent += 64 * 1024) {
      sock.write(Buffer.alloc(Math.min(64 * 1024, size - sent), 0x79), (e) => { if (e) writeError ??= e; });
      await sleep(5); // slower than the server: it has given up on the frame long before the end
    }
    sock.end();
    await ended;
    assert.equal(writeError, null);
    const close = received.indexOf(Buffer.from([0x88, 0x02, 0x03, 0xf1])); // close frame, code 1009
    assert.ok(close >= 0, 'a close frame with 1009');
  });
});

test('RFC 6455 on the wire: fragments around a ping, pong, and 1007 / 1002 for bad UTF-8 and unmasked frames', async () => {
  await withServer([], async (server) => {
    const room = uniqueRoom();
    const b = await Client.open(server);
    await b.join(room, 'Reader');
    const raw = await openRawPeer(server, room, 'Raw');
    let got = Buffer.alloc(0);
    raw.sock.on('data', (d) => { got = Buffer.concat([got, d]); });
    const closed = new Promise((r) => raw.sock.once('close', r));
    // A chat message in three fragments with a ping between them: the server answers the ping at once and relays
    // the reassembled message.
    const text = Buffer.from(JSON.stringify({ v: 1, type: 'chat', text: '断片 fragmented' }));
    raw.sock.write(clientFrame(1, text.subarray(0, 10), { fin: false }));
    raw.sock.write(clientFrame(9, Buffer.from('hi')));
    raw.sock.write(clientFrame(0, text.subarray(10, 20), { fin: false }));
    raw.sock.write(clientFrame(0, text.subarray(20)));
    assert.equal((await b.waitFor((m) => m.type === 'chat')).text, '断片 fragmented');
    assert.ok(got.includes(Buffer.from([0x8a, 0x02, 0x68, 0x69])), 'a pong with the ping\'s payload');
    // Text that is not UTF-8: the connection fails with 1007; the other peer goes on.
    raw.sock.write(clientFrame(1, Buffer.from([0x7b, 0xc0, 0xaf, 0x7d])));
    await closed;
    assert.ok(got.includes(Buffer.from([0x88, 0x02, 0x03, 0xef])), 'a close frame with 1007');
    assert.equal((await b.request({ type: 'chat', text: 'still here' })).type, 'ok');

    const unmasked = await openRawPeer(server, room, 'Unmasked');
    let got2 = Buffer.alloc(0);
    unmasked.sock.on('data', (d) => { got2 = Buffer.concat([got2, d]); });
    const closed2 = new Promise((r) => unmasked.sock.once('close', r));
    unmasked.sock.write(clientFrame(1, Buffer.from('{"v":1,"type":"leave"}'), { masked: false }));
    await closed2;
    assert.ok(got2.includes(Buffer.from([0x88, 0x02, 0x03, 0xea])), 'a close frame with 1002');
    b.close();
  });
});

test('more connections ready at once than one poll takes are all served (none waits for another event)', async () => {
  // The worker takes ready connections from its epoll set in rounds; what is left after the last round must be
  // served without a new readiness edge. Stop the server, let 1100 clients send a ping each, resume it: every
  // connection is ready at the same moment and each must get its pong. (All from one address: exempt from the
  // per-address limits, 128 connections and 100 handshakes at once by default.)
  await withServer(['--workers', '1', '--address-exempt', '127.0.0.1'], async (server) => {
    const count = 1100;
    const socks = [];
    try {
      for (let i = 0; i < count; i += 100) {
        socks.push(...await Promise.all(Array.from({ length: Math.min(100, count - i) }, async () => {
          const { sock } = await openRawWebSocket(server);
          sock.got = Buffer.alloc(0);
          return sock;
        })));
      }
      server.proc.kill('SIGSTOP');
      const pongs = socks.map((s) => new Promise((resolve) => {
        const onData = (d) => {
          s.got = Buffer.concat([s.got, d]);
          if (s.got.includes(Buffer.from([0x8a, 0x01, 0x70]))) { s.off('data', onData); resolve(true); }
        };
        s.on('data', onData);
        onData(Buffer.alloc(0));
      }));
      await Promise.all(socks.map((s) => new Promise((r) => s.write(clientFrame(9, Buffer.from('p')), r))));
      await sleep(300);
      server.proc.kill('SIGCONT');
      const answered = await Promise.race([Promise.all(pongs).then(() => count), sleep(WAIT).then(() => null)]);
      const n = answered ?? socks.filter((s) => s.got.includes(Buffer.from([0x8a, 0x01, 0x70]))).length;
      assert.equal(n, count, 'every ping answered');
    } finally {
      server.proc.kill('SIGCONT');
      for (const s of socks) s.destroy();
    }
  });
});

test('rate limit: a flood is dropped with one error, others are unaffected', async () => {
  await withServer(['--rate', '5', '--burst', '5'], async (server) => {
    const room = uniqueRoom();
    const flooder = await Client.open(server);
    const a = await Client.open(server);
    const b = await Client.open(server);
    await flooder.join(room, 'Flood');
    await a.join(room, 'A');
    await b.join(room, 'B');
    for (let i = 0; i < 100; i++) flooder.send({ type: 'message', data: i });
    await flooder.waitFor((m) => m.code === 'rate-limited');
    await sleep(300);
    const errors = flooder.messages.filter((m) => m.code === 'rate-limited').length;
    assert.equal(errors, 1, 'one error per second at most');
    const relayed = b.messages.filter((m) => m.type === 'message' && m.from === flooder.peer).length;
    assert.ok(relayed <= 6, `only the burst passes, got ${relayed}`);
    a.send({ type: 'message', to: b.peer, data: 'fine' });
    assert.equal((await b.waitFor((m) => m.type === 'message' && m.from === a.peer)).data, 'fine');
    assert.ok((await metric(server, 'kaiwa_dropped_total{reason="rate_limited"}')) >= 90);
  });
});

test('room-full and too-many-rooms', async () => {
  await withServer(['--peers-per-room', '2', '--max-rooms', '1'], async (server) => {
    const room = uniqueRoom();
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => Client.open(server)));
    assert.equal((await a.join(room, 'A')).type, 'ok');
    assert.equal((await b.join(room, 'B')).type, 'ok');
    assert.equal((await c.join(room, 'C')).code, 'room-full');
    assert.equal((await c.join(uniqueRoom(), 'C')).code, 'too-many-rooms');
    // Once the room empties it is gone, and another may be made.
    await a.request({ type: 'leave' });
    await b.request({ type: 'leave' });
    assert.equal((await c.join(uniqueRoom(), 'C')).type, 'ok');
    assert.equal(await metric(server, 'kaiwa_rooms'), 1);
  });
});

test('access control with --auth-secret and kaiwa token', async () => {
  const secret = 'integration-secret';
  await withServer(['--auth-secret', secret], async (server) => {
    const room = uniqueRoom();
    const token = (r, u, ttl = '1h') => execFileSync(BIN, ['token', '--secret', secret, '--room', r, '--user', u,
      '--ttl', ttl]).toString().trim();
    const c = await Client.open(server);
    assert.equal((await c.join(room, 'A')).code, 'unauthorized');
    assert.equal((await c.join(room, 'A', { token: 'garbage' })).code, 'unauthorized');
    assert.equal((await c.join(room, 'A', { token: token('other-room', 'alice') })).code, 'unauthorized');
    const wrongSecret = execFileSync(BIN, ['token', '--secret', 'nope', '--room', room, '--user', 'x']).toString().trim();
    const refused = await c.join(room, 'A', { token: wrongSecret });
    assert.equal(refused.code, 'unauthorized');
    assert.match(refused.message, /signature/);
    // The name may come from the token.
    const ok = await c.request({ type: 'join', room, token: token(room, 'alice') });
    assert.equal(ok.type, 'ok');
    const d = await Client.open(server);
    await d.join(room, 'Dee', { token: token('*', 'dee') });
    assert.equal((await d.waitFor((m) => m.type === 'ok')).peers[0].name, 'alice');
    // --url prints the web app's invite link, the token in the fragment; the token in it joins.
    const link = execFileSync(BIN, ['token', '--secret', secret, '--room', room, '--user', 'eve',
      '--url', `${server.url}/`]).toString().trim();
    const m = /^(.*)\/room\/([^/#]+)#token=([\w.-]+)$/.exec(link);
    assert.ok(m, link);
    assert.equal(m[1], server.url);
    assert.equal(m[2], room);
    const e = await Client.open(server);
    assert.equal((await e.request({ type: 'join', room, token: m[3] })).type, 'ok');
    assert.throws(() => execFileSync(BIN, ['token', '--secret', secret, '--room', '*', '--user', 'x', '--url', server.url],
      { stdio: 'pipe' }), /--url needs/);
  });
});

test('with --auth-secret the token\'s user is the identity: a display name is shown beside it, never instead', async () => {
  const secret = 'integration-secret';
  await withServer(['--auth-secret', secret], async (server) => {
    const room = uniqueRoom();
    const token = (u) => execFileSync(BIN, ['token', '--secret', secret, '--room', room, '--user', u]).toString().trim();
    const alice = await Client.open(server);
    assert.equal((await alice.join(room, 'Alice', { token: token('alice') })).type, 'ok');
    // Alice's token, the name "bob": the others see that it is alice who calls herself bob.
    const impostor = await Client.open(server);
    assert.equal((await impostor.join(room, 'bob', { token: token('alice') })).type, 'ok');
    const joined = await alice.waitFor((m) => m.type === 'peer-joined');
    assert.equal(joined.peer.name, 'bob');
    assert.equal(joined.peer.user, 'alice');
    const carol = await Client.open(server);
    const ok = await carol.join(room, 'Carol', { token: token('carol') });
    assert.deepEqual(ok.peers.map((p) => p.user), ['alice', 'alice']);
  });
});

test('a display name must show something: blank, zero-width and bidi-override names are refused', async () => {
  await withServer([], async (server) => {
    const c = await Client.open(server);
    for (const name of [' ', '\u200b', '\u202e', '\u3000\u3000', 'alice\u202etxt.exe']) {
      const r = await c.join(uniqueRoom(), name);
      assert.equal(r.code, 'bad-message', `name ${JSON.stringify(name)}`);
    }
    assert.equal((await c.join(uniqueRoom(), '\u05e9\u05dc\u05d5\u05dd')).type, 'ok');  // right-to-left letters
  });
});

test('a WebSocket that names its room (?room=) is served by the room\'s worker, and works as any other', async () => {
  await withServer(['--workers', '4'], async (server) => {
    const room = uniqueRoom();
    const before = await metric(server, 'kaiwa_ws_handovers_total');
    const clients = [];
    for (let i = 0; i < 12; i++) clients.push(await Client.open(server, `/ws?room=${room}`));
    for (const [i, c] of clients.entries()) assert.equal((await c.join(room, `P${i}`)).type, 'ok');
    // 12 connections spread by the kernel over 4 workers: all landing on the room's own is a 1 in 16 million chance.
    assert.ok(await metric(server, 'kaiwa_ws_handovers_total') > before, 'some connections were handed over');
    // Handed-over connections relay, get pings, and close like the others.
    const [a, b] = [clients[0], clients[11]];
    a.send({ type: 'signal', to: b.peer, data: { n: 1 } });
    assert.equal((await b.waitFor((m) => m.type === 'signal')).from, a.peer);
    assert.equal((await a.request({ type: 'chat', text: 'hi' })).type, 'ok');
    for (const c of clients) assert.equal((await c.waitFor((m) => m.type === 'chat')).text, 'hi');
    for (const c of clients) c.close();
    await a.waitClosed();
  });
});

test('a WebSocket that does not name its room moves to the room\'s worker at its first join, with what it sent behind', async () => {
  await withServer(['--workers', '4'], async (server) => {
    const before = await metric(server, 'kaiwa_ws_moves_total');
    const peers = [];
    try {
      for (let i = 0; i < 8; i++) {
        const room = uniqueRoom(`move${i}`);
        const b = await Client.open(server);  // no ?room=
        peers.push(b);
        assert.equal((await b.join(room, 'B')).type, 'ok');
        // join, then three signals to b, in one write: the signals are read behind the join and must be handled
        // after the move, in order.
        const { sock, until } = await openRawWebSocket(server);
        peers.push({ close: () => sock.destroy() });
        const frames = [{ v: 1, type: 'join', id: 1, room, name: 'A' },
          ...[1, 2, 3].map((n) => ({ v: 1, type: 'signal', to: b.peer, data: { n } }))];
        sock.write(Buffer.concat(frames.map((f) => clientFrame(1, Buffer.from(JSON.stringify(f))))));
        await until('"re":1', 'join reply');
        const joined = await b.waitFor((m) => m.type === 'peer-joined');
        await b.waitFor((m) => m.type === 'signal' && m.data.n === 3);
        const got = b.messages.filter((m) => m.type === 'signal').map((m) => [m.from, m.data.n]);
        assert.deepEqual(got, [[joined.peer.id, 1], [joined.peer.id, 2], [joined.peer.id, 3]]);
        // and back, to where a lives now
        b.send({ v: 1, type: 'signal', to: joined.peer.id, data: { back: i } });
        await until(`"back":${i}`, 'the signal back');
      }
      const moves = (await metric(server, 'kaiwa_ws_moves_total')) - before;
      // 16 first joins over 4 workers: each moved unless the kernel put it on its room's worker already.
      assert.ok(moves >= 1 && moves <= 16, `kaiwa_ws_moves_total grew by ${moves}`);
    } finally {
      for (const p of peers) p.close();
    }
  });
});

test('a client closing with 1001 (a browser leaving the page) leaves at once, without the grace period', async () => {
  await withServer(['--resume-grace', '60s'], async (server) => {
    const room = uniqueRoom();
    const a = await Client.open(server);
    await a.join(room, 'Alice');
    const b = await openRawPeer(server, room, 'Bob');
    const joined = await a.waitFor((m) => m.type === 'peer-joined');
    b.closeWith(1001);
    const left = await a.waitFor((m) => m.type === 'peer-left');
    assert.equal(left.peer, joined.peer.id);
    assert.equal(left.reason, 'left');
    b.sock.destroy();
    // A close with another code (here 1000) is a drop like any other: the peer keeps its place for the grace.
    const c = await openRawPeer(server, room, 'Carol');
    await a.waitFor((m) => m.type === 'peer-joined' && m.peer.name === 'Carol');
    c.closeWith(1000);
    await sleep(500);
    assert.ok(!a.messages.some((m) => m.type === 'peer-left' && m.peer !== joined.peer.id), 'Carol is still there');
    c.sock.destroy();
    a.close();
  });
});

test('resume within the grace period keeps the id and the queued messages; after it the room sees peer-left', async () => {
  await withServer(['--resume-grace', '1500ms'], async (server) => {
    const room = uniqueRoom();
    const a = await Client.open(server);
    const b = await Client.open(server);
    await a.join(room, 'A');
    await b.join(room, 'B');
    b.ws.close(); // dropped without leave
    await b.waitClosed();
    await sleep(100);
    a.send({ type: 'signal', to: b.peer, data: 'while-away' });
    const b2 = await Client.open(server);
    const r = await b2.request({ type: 'resume', room, peer: b.peer, resume: b.resumeToken });
    assert.equal(r.type, 'ok');
    assert.equal(r.peer, b.peer);
    assert.equal(r.resumed, true);
    assert.ok(r.resume && r.resume !== b.resumeToken, 'a resume hands out a new resume token');
    assert.equal((await b2.waitFor((m) => m.type === 'signal')).data, 'while-away');
    await sleep(2000);
    assert.ok(!a.messages.some((m) => m.type === 'peer-left'), 'a resumed peer is not reported as gone');
    // A resume with a wrong token fails; a real drop past the grace period is reported.
    const c = await Client.open(server);
    assert.equal((await c.request({ type: 'resume', room, peer: b.peer, resume: 'wrong' })).code, 'resume-failed');
    // The token the first resume used is spent: it cannot take the peer over from b2.
    assert.equal((await c.request({ type: 'resume', room, peer: b.peer, resume: b.resumeToken })).code,
      'resume-failed');
    b2.ws.close();
    const left = await a.waitFor((m) => m.type === 'peer-left');
    assert.equal(left.peer, b.peer);
    assert.equal(left.reason, 'disconnected');
  });
});

test('a slow consumer is disconnected and nobody else suffers', async () => {
  await withServer(['--max-queued-bytes', '262144', '--rate', '0', '--resume-grace', '0'], async (server) => {
    const room = uniqueRoom();
    const a = await Client.open(server);
    await a.join(room, 'Sender');
    const c = await Client.open(server);
    await c.join(room, 'Reader');
    const stalled = await openStalledPeer(server, room, 'Stalled');
    const big = 'z'.repeat(8 * 1024);
    const deadline = Date.now() + WAIT;
    let sent = 0;
    while (Date.now() < deadline && (await metric(server, 'kaiwa_dropped_total{reason="slow_consumer"}')) < 1) {
      for (let i = 0; i < 20; i++, sent++) a.send({ type: 'message', data: big });
      await sleep(20);
    }
    assert.equal(await metric(server, 'kaiwa_dropped_total{reason="slow_consumer"}'), 1);
    const left = await a.waitFor((m) => m.type === 'peer-left');
    assert.equal(left.reason, 'disconnected');
    // The reader that keeps up got everything.
    await c.waitFor(() => c.messages.filter((m) => m.type === 'message').length === sent);
    stalled.destroy();
  });
});

test('SIGTERM: every client gets bye and the server exits cleanly', async () => {
  const server = await startServer({ extraArgs: ['--shutdown-timeout', '3s'] });
  const a = await Client.open(server);
  const b = await Client.open(server);
  await a.join(uniqueRoom(), 'A');
  const exited = new Promise((r) => server.proc.on('exit', (code, signal) => r({ code, signal })));
  server.proc.kill('SIGTERM');
  for (const c of [a, b]) {
    assert.equal((await c.waitFor((m) => m.type === 'bye')).reason, 'shutdown');
    assert.equal((await c.waitClosed()).code, 1001);
  }
  assert.deepEqual(await exited, { code: 0, signal: null });
  assert.match(server.logs(), /stopped/);
});

test('HTTP: app routes, static files, metrics, ice servers, traversal and methods', async () => {
  await withServer(['--ice-server', 'stun:stun.example.org:3478', '--ice-server', 'turn:t.example.org:3478|u|p'],
    async (server) => {
      const get = (p, init) => fetch(server.url + p, init);
      for (const p of ['/', '/room/demo', '/room/demo?name=Alice']) {
        const r = await get(p);
        assert.equal(r.status, 200, p);
        assert.match(r.headers.get('content-type'), /text\/html/);
        assert.match(await r.text(), /<html/i);
      }
      assert.equal((await get('/room/bad%20name')).status, 404);
      const js = await get('/sdk/kaiwa.js');
      assert.equal(js.status, 200);
      assert.match(js.headers.get('content-type'), /javascript/);
      const etag = js.headers.get('etag');
      assert.ok(etag);
      assert.equal((await get('/sdk/kaiwa.js', { headers: { 'If-None-Match': etag } })).status, 304);
      for (const p of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2f..%2fetc%2fpasswd']) {
        assert.equal((await get(p)).status, 404, p);
      }
      assert.equal((await get('/healthz', { method: 'POST' })).status, 405);
      const head = await get('/healthz', { method: 'HEAD' });
      assert.equal(head.status, 200);
      const ice = await (await get('/api/ice-servers')).json();
      assert.deepEqual(ice.iceServers, [
        { urls: ['stun:stun.example.org:3478'] },
        { urls: ['turn:t.example.org:3478'], username: 'u', credential: 'p' },
      ]);
      const metrics = await (await get('/metrics')).text();
      for (const name of ['kaiwa_connections', 'kaiwa_rooms', 'kaiwa_peers', 'kaiwa_messages_in_total',
        'kaiwa_messages_out_total', 'kaiwa_dropped_total', 'kaiwa_errors_total']) {
        assert.match(metrics, new RegExp(`^${name}`, 'm'), name);
      }
      const ws404 = await rawHttp(server, 'GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n' +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      assert.match(ws404, /^HTTP\/1.1 404/);
      assert.match(await rawHttp(server, 'GARBAGE\r\n\r\n'), /^HTTP\/1.1 400/);
      // A request with an oversized header is refused, and the server still serves.
      const huge = await get('/healthz', { headers: { 'X-Big': 'a'.repeat(20000) } }).catch((e) => e);
      assert.ok(huge instanceof Error || huge.status === 431);
      assert.equal((await get('/healthz')).status, 200);
    });
});

test('a peer that stops answering pings is closed after --ping-timeout and leaves the room', async () => {
  await withServer(['--ping-timeout', '1s', '--resume-grace', '0'], async (server) => {
    const room = uniqueRoom();
    const a = await Client.open(server);
    await a.join(room, 'Alive');
    const silent = await openStalledPeer(server, room, 'Silent'); // reads nothing, so answers no ping
    const joined = await a.waitFor((m) => m.type === 'peer-joined');
    const left = await a.waitFor((m) => m.type === 'peer-left');
    assert.equal(left.peer, joined.peer.id);
    assert.equal(left.reason, 'disconnected');
    // The live client answered its pings all along (Node's WebSocket does) and is still connected.
    assert.equal(a.closed, null);
    assert.equal((await a.request({ type: 'chat', text: 'still here' })).type, 'ok');
    silent.destroy();
  });
});

test('a second server on a port already served refuses to start instead of sharing it', async () => {
  await withServer([], async (server) => {
    const { port } = new URL(server.url);
    const { spawnSync } = await import('node:child_process');
    const second = spawnSync(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--no-turn'], { timeout: WAIT });
    assert.equal(second.status, 1);
    assert.match(second.stderr.toString() + second.stdout.toString(), /in use/);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  });
});
