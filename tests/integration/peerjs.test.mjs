// The PeerJS front door (docs/peerjs.md) over loopback with raw WebSockets, checked against what PeerServer 1.0.2
// sends (../shared/docs/protocols.md): OPEN, ID-TAKEN, reconnect, ERRORs, relay with src, queue + EXPIRE,
// HEARTBEAT and the alive timeout, GET /{key}/id and /{key}/peers with CORS, limits and auth through the room core.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startServer, ROOT } from '../e2e/helpers.mjs';
import { PeerSocket, WAIT, freshId, metric, sleep } from './client.mjs';

const BIN = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');

async function withServer(args, fn) {
  const server = await startServer({ extraArgs: args });
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

const ERR_PARAMS = 'No id, token, or key supplied to websocket server';

test('OPEN, relay with src set by the server, and what the server ignores', async () => {
  await withServer([], async (server) => {
    const a = await PeerSocket.open(server).opened();
    const b = await PeerSocket.open(server).opened();
    assert.deepEqual(a.messages[0], { type: 'OPEN' });
    const payload = { sdp: { type: 'offer', sdp: 'v=0\r\n' }, type: 'data', connectionId: 'dc_1', label: 'x' };
    a.send({ type: 'OFFER', payload, dst: b.id, src: 'spoofed' });
    const offer = await b.waitFor((m) => m.type === 'OFFER');
    assert.deepEqual(offer, { type: 'OFFER', src: a.id, dst: b.id, payload });
    for (const type of ['ANSWER', 'CANDIDATE', 'LEAVE', 'EXPIRE']) {
      b.send({ type, payload: { n: type }, dst: a.id });
      const got = await a.waitFor((m) => m.type === type);
      assert.equal(got.src, b.id);
      assert.deepEqual(got.payload, { n: type });
    }
    // Not JSON, unknown types, OPEN from a client, binary: ignored, the connection stays.
    a.send('not json');
    a.send({ type: 'WHATEVER', dst: b.id });
    a.send({ type: 'OPEN', dst: b.id });
    a.ws.send(new Uint8Array([1, 2, 3]));
    a.send({ type: 'CANDIDATE', payload: { after: true }, dst: b.id });
    const after = await b.waitFor((m) => m.type === 'CANDIDATE' && m.payload.after);
    assert.equal(after.src, a.id);
    assert.ok(!b.messages.some((m) => m.type === 'WHATEVER' || (m.type === 'OPEN' && m.src)));
    assert.equal(a.closed, null);
    a.close();
    b.close();
  });
});

test('ERROR for missing parameters and a wrong key, then close', async () => {
  await withServer([], async (server) => {
    for (const query of ['key=peerjs&id=x', 'key=peerjs&token=t', 'id=x&token=t', 'key=peerjs&id=&token=t', '']) {
      const p = PeerSocket.open(server, { query });
      const err = await p.waitFor((m) => m.type === 'ERROR', `ERROR for ${query}`);
      assert.deepEqual(err, { type: 'ERROR', payload: { msg: ERR_PARAMS } });
      await p.waitClosed();
    }
    const wrong = PeerSocket.open(server, { key: 'nope' });
    assert.deepEqual(await wrong.waitFor((m) => m.type === 'ERROR'), {
      type: 'ERROR',
      payload: { msg: 'Invalid key provided' },
    });
    await wrong.waitClosed();
    // The WebSocket is at exactly /peerjs.
    const slash = new WebSocket(`${server.url.replace('http', 'ws')}/peerjs/?key=peerjs&id=x&token=t`);
    await new Promise((resolve) => {
      slash.onerror = resolve;
      slash.onclose = resolve;
    });
    assert.notEqual(slash.readyState, WebSocket.OPEN);
  });
});

test('ID-TAKEN for a known id with another token; the same token replaces the socket and keeps the id', async () => {
  await withServer([], async (server) => {
    const a = await PeerSocket.open(server, { id: freshId(), token: 'alpha' }).opened();
    const b = await PeerSocket.open(server).opened();
    const thief = PeerSocket.open(server, { id: a.id, token: 'beta' });
    assert.deepEqual(await thief.waitFor((m) => m.type === 'ID-TAKEN'), {
      type: 'ID-TAKEN',
      payload: { msg: 'ID is taken' },
    });
    await thief.waitClosed();
    // Reconnect with the same token while the old socket is still open: no OPEN, the new socket gets the messages.
    const again = PeerSocket.open(server, { id: a.id, token: 'alpha' });
    await a.waitClosed();
    b.send({ type: 'OFFER', payload: { n: 1 }, dst: a.id });
    const got = await again.waitFor((m) => m.type === 'OFFER');
    assert.equal(got.src, b.id);
    assert.ok(!again.messages.some((m) => m.type === 'OPEN'));
    again.send({ type: 'ANSWER', payload: { n: 2 }, dst: b.id });
    assert.equal((await b.waitFor((m) => m.type === 'ANSWER')).src, a.id);
    // A closed socket frees its id at once (PeerServer keeps no grace): another token may take it.
    again.close();
    await again.waitClosed();
    await sleep(200);
    const next = await PeerSocket.open(server, { id: a.id, token: 'gamma' }).opened();
    next.close();
    b.close();
  });
});

test('messages to an absent id are queued and delivered on connect, else EXPIRE after the timeout', async () => {
  await withServer(['--peerjs-expire-timeout', '800ms'], async (server) => {
    const a = await PeerSocket.open(server).opened();
    const late = freshId();
    a.send({ type: 'OFFER', payload: { n: 1 }, dst: late });
    a.send({ type: 'CANDIDATE', payload: { n: 2 }, dst: late });
    a.send({ type: 'LEAVE', dst: late }); // not queued
    await sleep(100);
    const b = PeerSocket.open(server, { id: late });
    await b.until(() => b.messages.length >= 3, WAIT, 'OPEN and the queue');
    assert.deepEqual(
      b.messages.map((m) => [m.type, m.src, m.payload?.n]),
      [['OPEN', undefined, undefined], ['OFFER', a.id, 1], ['CANDIDATE', a.id, 2]],
    );
    const never = freshId();
    const t0 = Date.now();
    a.send({ type: 'OFFER', payload: {}, dst: never });
    a.send({ type: 'CANDIDATE', payload: {}, dst: never });
    const expire = await a.waitFor((m) => m.type === 'EXPIRE');
    assert.deepEqual(expire, { type: 'EXPIRE', src: never, dst: a.id });
    assert.ok(Date.now() - t0 >= 700, 'not before the expire timeout');
    await sleep(600);
    assert.equal(a.messages.filter((m) => m.type === 'EXPIRE').length, 1, 'one EXPIRE per (src, dst)');
    const tooLate = await PeerSocket.open(server, { id: never }).opened();
    await sleep(200);
    assert.equal(tooLate.messages.length, 1);
    for (const p of [a, b, tooLate]) p.close();
  });
});

test('HEARTBEAT keeps a client alive; a silent one is closed after the alive timeout', async () => {
  await withServer(['--peerjs-alive-timeout', '1500ms'], async (server) => {
    const talker = await PeerSocket.open(server).opened();
    const silent = await PeerSocket.open(server).opened();
    const beat = setInterval(() => talker.send({ type: 'HEARTBEAT' }), 300);
    try {
      await silent.waitClosed();
      await sleep(1000);
      assert.equal(talker.closed, null);
      // The silent id is free again.
      const back = await PeerSocket.open(server, { id: silent.id, token: 'other' }).opened();
      back.close();
    } finally {
      clearInterval(beat);
    }
    talker.close();
  });
});

test('the concurrent-peer limit answers PeerServer\'s ERROR; a freed place can be taken', async () => {
  await withServer(['--peerjs-concurrent-limit', '2'], async (server) => {
    const a = await PeerSocket.open(server).opened();
    const b = await PeerSocket.open(server).opened();
    const c = PeerSocket.open(server);
    assert.deepEqual(await c.waitFor((m) => m.type === 'ERROR'), {
      type: 'ERROR',
      payload: { msg: 'Server has reached its concurrent user limit' },
    });
    await c.waitClosed();
    // ID-TAKEN is checked before the limit, as in PeerServer.
    const taken = PeerSocket.open(server, { id: a.id, token: 'other' });
    assert.equal((await taken.waitFor((m) => m.type)).type, 'ID-TAKEN');
    b.close();
    await b.waitClosed();
    await sleep(200);
    const d = await PeerSocket.open(server).opened();
    assert.equal(await metric(server, 'kaiwa_peers'), 2);
    a.close();
    d.close();
  });
});

test('GET /{key}/id gives a fresh UUID with CORS; /{key}/peers is 401 unless discovery is on', async () => {
  await withServer([], async (server) => {
    const origin = 'http://app.example';
    const r1 = await fetch(`${server.url}/peerjs/id?ts=123&version=1.5.5`, { headers: { Origin: origin } });
    assert.equal(r1.status, 200);
    assert.match(r1.headers.get('content-type'), /^text\/html/);
    assert.equal(r1.headers.get('access-control-allow-origin'), origin);
    assert.match(r1.headers.get('vary'), /Origin/);
    const id1 = await r1.text();
    assert.match(id1, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const id2 = await (await fetch(`${server.url}/anykey/id`)).text();
    assert.notEqual(id1, id2);
    const peers = await fetch(`${server.url}/peerjs/peers`, { headers: { Origin: origin } });
    assert.equal(peers.status, 401);
    assert.equal(peers.headers.get('access-control-allow-origin'), origin);
    // / stays kaiwa's web app, /room/id a room of the app.
    const root = await fetch(`${server.url}/`);
    assert.ok(!(root.headers.get('content-type') || '').includes('json'));
  });
  await withServer(['--peerjs-discovery'], async (server) => {
    const a = await PeerSocket.open(server).opened();
    const b = await PeerSocket.open(server).opened();
    const list = await (await fetch(`${server.url}/peerjs/peers`)).json();
    assert.deepEqual(list.sort(), [a.id, b.id].sort());
    b.close();
    await b.waitClosed();
    await sleep(200);
    assert.deepEqual(await (await fetch(`${server.url}/peerjs/peers`)).json(), [a.id]);
    a.close();
  });
});

test('--peerjs-path and --peerjs-key move the routes; PeerServer\'s info JSON is at the path', async () => {
  await withServer(['--peerjs-path', '/pj', '--peerjs-key', 'sekrit'], async (server) => {
    const info = await fetch(`${server.url}/pj/`);
    assert.equal(info.status, 200);
    assert.equal((await info.json()).name, 'PeerJS Server');
    assert.equal((await fetch(`${server.url}/pj/sekrit/id`)).status, 200);
    const ws = new PeerSocket(new WebSocket(`${server.url.replace('http', 'ws')}/pj/peerjs?key=sekrit&id=x1&token=t`));
    await ws.opened();
    ws.close();
  });
});

test('with --auth-secret the PeerJS token must be a room token for peerjs:<key>', async () => {
  const secret = 'pj-test-secret';
  const token = (room) =>
    execFileSync(BIN, ['token', '--room', room, '--user', 'u', '--secret', secret]).toString().trim();
  await withServer(['--auth-secret', secret], async (server) => {
    const none = PeerSocket.open(server, { token: 'random36' });
    assert.match((await none.waitFor((m) => m.type === 'ERROR')).payload.msg, /^Invalid token/);
    const other = PeerSocket.open(server, { token: token('another-room') });
    assert.match((await other.waitFor((m) => m.type === 'ERROR')).payload.msg, /^Invalid token/);
    const ok = await PeerSocket.open(server, { token: token('peerjs:peerjs') }).opened();
    const any = await PeerSocket.open(server, { token: token('*') }).opened();
    ok.close();
    any.close();
  });
});

test('a flood beyond the rate limit is dropped for the offender only', async () => {
  await withServer(['--rate', '20', '--burst', '20'], async (server) => {
    const a = await PeerSocket.open(server).opened();
    const b = await PeerSocket.open(server).opened();
    const c = await PeerSocket.open(server).opened();
    for (let i = 0; i < 200; i++) a.send({ type: 'CANDIDATE', payload: { i }, dst: b.id });
    await sleep(500);
    const got = b.messages.filter((m) => m.type === 'CANDIDATE').length;
    assert.ok(got >= 15 && got < 100, `${got} of 200 relayed`);
    assert.ok((await metric(server, 'kaiwa_dropped_total{reason="rate_limited"}')) > 0);
    c.send({ type: 'OFFER', payload: {}, dst: b.id });
    assert.equal((await b.waitFor((m) => m.type === 'OFFER')).src, c.id);
    assert.equal(a.closed, null);
    for (const p of [a, b, c]) p.close();
  });
});
