// Socket.IO across kaiwa nodes on Redis (docs/socketio.md, "Across nodes"): redis-server on a loopback port, three
// nodes, and a balancer in the test that sends each HTTP request and each WebSocket upgrade to the next node in turn
// (no sticky sessions). The real socket.io-client, polling only, polling then WebSocket, and WebSocket only, exchange
// the guide's events; a node killed with -9 loses nobody for good (its clients reconnect).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom } from '../e2e/helpers.mjs';
import { WAIT, metric, rawHttp } from './client.mjs';
import { cluster, roundRobin, skip, until } from './cluster.mjs';
import { SioPeer } from './sio.mjs';

const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' };
const CANDIDATE = { candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host', sdpMLineIndex: 0 };
// Polling clients open a TCP connection per request, all from 127.0.0.1.
const EXTRA = ['--address-connect-rate', '0'];

/** The node a session lives on: its sid is "<node>~<worker>.<random>". */
const nodeOf = (peer) => peer.socket.io.engine.id.split('~')[0];

async function sum(nodes, name) {
  let total = 0;
  for (const n of nodes) total += (await metric(n, name)) ?? 0;
  return total;
}

/** A socket that joins `room` (again after every reconnection, as the guide's clients do) and records its acks. */
async function member(server, room, opts, what) {
  const p = await SioPeer.connect(server, opts, what);
  p.joins = [];
  const join = () => p.socket.emit('join-room', room, (ack) => p.joins.push(ack));
  p.socket.on('connect', join);
  join();
  await p.until(() => p.joins.length, WAIT, `${what}: join-room acked`);
  assert.equal(p.joins[0].ok, true, JSON.stringify(p.joins[0]));
  return p;
}

/** Three nodes behind the balancer, and two sockets through it in one room: one polling only, one that upgrades. */
async function twoThroughTheBalancer(t) {
  const { nodes } = await cluster(t, 3, EXTRA);
  const lb = await roundRobin(t, nodes);
  t.after(() => SioPeer.closeAll());
  const room = uniqueRoom('sio');
  const a = await member(lb, room, { transports: ['polling'] }, 'polling only');
  const b = await member(lb, room, {}, 'polling then websocket');
  return { nodes, lb, room, a, b };
}

test('polling only, polling then WebSocket, and WebSocket clients on different nodes share a room', { skip },
  async (t) => {
    const { nodes, lb, room, a, b } = await twoThroughTheBalancer(t);
    await b.until(() => b.transportName() === 'websocket', WAIT, 'the upgrade through another node');
    const c = await member(nodes[2], room, { transports: ['websocket'] }, 'websocket on n3');
    const d = await member(nodes[1], room, { transports: ['polling'] }, 'polling on n2');
    await a.waitFor('user-joined', (id) => id === b.id);
    await a.waitFor('user-joined', (id) => id === c.id);
    await c.waitFor('user-joined', (id) => id === d.id);
    assert.deepEqual(d.joins[0].peers.sort(), [a.id, b.id, c.id].sort());

    // The directed events, every way round.
    b.emit('offer', { to: a.id, offer: OFFER });
    const [offer] = await a.waitFor('offer');
    assert.deepEqual(offer, { from: b.id, offer: OFFER });
    a.emit('answer', { to: b.id, answer: { type: 'answer', sdp: OFFER.sdp } });
    assert.equal((await b.waitFor('answer'))[0].from, a.id);
    c.emit('ice-candidate', { to: d.id, candidate: CANDIDATE });
    assert.deepEqual((await d.waitFor('ice-candidate'))[0], { from: c.id, candidate: CANDIDATE });
    const [ack] = await d.emitWithAck('ice-candidate', [{ to: b.id, candidate: CANDIDATE }]);
    assert.deepEqual(ack, { ok: true });
    await b.waitFor('ice-candidate', (m) => m.from === d.id);
    a.emit('toggle-audio', { roomId: room, isMuted: true });
    for (const p of [b, c, d]) await p.waitFor('toggle-audio', (m) => m.from === a.id && m.isMuted === true);

    // Leaving, and a socket that goes.
    a.emit('leave-room', room);
    for (const p of [b, c, d]) await p.waitFor('user-left', (id) => id === a.id);
    const gone = c.id;
    c.close();
    for (const p of [b, d]) await p.waitFor('user-left', (id) => id === gone);

    // Each session stayed one session, though its requests and its upgrade landed on every node.
    for (const p of [a, b, d]) {
      assert.deepEqual(p.disconnects, [], `${p.what} never lost its session`);
      assert.deepEqual(p.connectErrors, [], `${p.what} never failed to connect`);
    }
    for (const n of nodes) assert.ok(lb.hits.get(n.id).http > 0, `${n.id} got requests`);
    assert.ok(await sum(nodes, 'kaiwa_socketio_forwarded_requests_total') > 0);
    assert.ok(await sum(nodes, 'kaiwa_socketio_forwarded_websockets_total') > 0);
    assert.ok(await sum(nodes, 'kaiwa_socketio_served_for_nodes_total') > 0);
    assert.equal(await sum(nodes, 'kaiwa_socketio_forwarded_failed_total'), 0);
  });

test('a long poll forwarded to the session\'s node, a 503 past --socketio-max-forwarded, the upgrade at a third node',
  { skip }, async (t) => {
    const { nodes } = await cluster(t, 3, [...EXTRA, '--socketio-max-forwarded', '1', '--socketio-ping-interval',
      '30s']);
    const open = await rawHttp(nodes[0], 'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(open, /^HTTP\/1\.1 200/);
    const sid = JSON.parse(open.slice(open.indexOf('0{') + 1)).sid;
    const owner = sid.split('~')[0];
    const other = nodes.find((n) => n.id !== owner);
    // The CONNECT, posted at a node that does not hold the session: forwarded, and the answer comes back from there.
    const post = await fetch(`${other.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`,
      { method: 'POST', body: '40' });
    assert.equal(post.status, 200);
    assert.equal(await post.text(), 'ok');
    const first = await fetch(`${other.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
    assert.match(await first.text(), /^40\{"sid":/);
    // The next poll is held on the owner (nothing to send until the ping, 30 s away): one forward in flight here.
    const held = fetch(`${other.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
    await until(async () => (await metric(other, 'kaiwa_socketio_forwarded_in_flight')) === 1, 'the poll in flight');
    const refused = await fetch(`${other.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(refused.status, 503);
    assert.equal(await metric(other, 'kaiwa_socketio_forwarded_refused_total'), 1);
    // The upgrade, at a third node: its probe reaches the session through it, the held poll is answered (a noop)
    // through the other, and the socket goes on over the WebSocket.
    const third = nodes.find((n) => n.id !== owner && n !== other);
    const ws = new WebSocket(`${third.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid=${
      encodeURIComponent(sid)}`);
    const frames = [];
    ws.onmessage = (e) => frames.push(e.data);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    t.after(() => ws.close());
    ws.send('2probe');
    await until(() => frames.includes('3probe'), 'the probe answered');
    const answer = await held;
    assert.equal(answer.status, 200);
    assert.equal(await answer.text(), '6');
    ws.send('5');
    ws.send('421["join-room","r"]');
    await until(() => frames.find((f) => f.startsWith('431')), 'the join acked over the WebSocket');
    assert.deepEqual(JSON.parse(frames.find((f) => f.startsWith('431')).slice(3)), [{ ok: true, peers: [] }]);
    await until(async () => (await metric(other, 'kaiwa_socketio_forwarded_in_flight')) === 0, 'the forward done');
    assert.equal(await metric(third, 'kaiwa_socketio_forwarded_websockets_total'), 1);
  });

test('a node killed with -9: the clients reconnect through the others and meet again', { skip }, async (t) => {
  const { nodes, lb, a, b } = await twoThroughTheBalancer(t);
  await a.waitFor('user-joined', (id) => id === b.id);
  // The node holding the sessions dies; the balancer's health check takes it out.
  const holder = nodes.find((n) => n.id === nodeOf(a));
  assert.equal(nodeOf(b), holder.id);
  holder.proc.kill('SIGKILL');
  await holder.exitPromise;
  lb.remove(holder);
  const FAILOVER = 30_000;
  await a.until(() => a.disconnects.length && a.socket.connected && nodeOf(a) !== holder.id, FAILOVER,
    'a reconnected elsewhere');
  await b.until(() => b.disconnects.length && b.socket.connected && nodeOf(b) !== holder.id, FAILOVER,
    'b reconnected elsewhere');
  // Both joined the room again (on connect): they find each other and relay.
  await until(() => a.joins.length >= 2 && b.joins.length >= 2, 'the joins after reconnecting', FAILOVER);
  await a.until(() => a.received('user-joined', (id) => id === b.id).length ||
    b.received('user-joined', (id) => id === a.id).length, FAILOVER, 'the two to meet again');
  b.emit('offer', { to: a.id, offer: OFFER });
  assert.equal((await a.waitFor('offer', (m) => m.from === b.id))[0].offer.sdp, OFFER.sdp);
});
