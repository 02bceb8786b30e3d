// The PeerJS door across nodes on Redis (docs/cluster.md, "PeerJS"): one key is one namespace across the cluster.
// Raw PeerJS WebSockets on three nodes: ID-TAKEN across nodes, OFFER/ANSWER/CANDIDATE/LEAVE/EXPIRE between nodes,
// messages held for an absent id that connects on another node, /peerjs/peers and /peerjs/id asked of any node,
// the alive timeout, the concurrent limit and auth as on one node, and a node killed with -9.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../e2e/helpers.mjs';
import { PeerSocket, freshId, metric, sleep } from './client.mjs';
import { cluster, skip, until } from './cluster.mjs';

const BIN = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');
const peers = async (node) => (await (await fetch(`${node.url}/peerjs/peers`)).json()).sort();

/**
 * A PeerJS client of `id` (with `token`) connected to `node` once it gets OPEN: a connection that the cluster ends
 * meanwhile (a link to a node that died before the others noticed) is made again, as the peerjs client's
 * `reconnect()` would, until OPEN or 20 s.
 */
async function reopen(node, id, token) {
  return until(async () => {
    const p = PeerSocket.open(node, { id, token });
    const got = await p.until(() => p.messages.find((m) => m.type === 'OPEN') || p.closed, 20_000, 'OPEN or close');
    if (got.type === 'OPEN') return p;
    await sleep(200);
    return null;
  }, `OPEN for ${id} on ${node.url}`, 20_000);
}

test('one key across nodes: ID-TAKEN anywhere, relays between nodes, /peers and /id on any node', { skip },
  async (t) => {
    const { nodes: [n1, n2, n3] } = await cluster(t, 3, ['--peerjs-discovery']);
    const a = await PeerSocket.open(n1).opened();  // the key's room is placed on n1
    const b = await PeerSocket.open(n2).opened();
    const c = await PeerSocket.open(n3).opened();

    // An id taken on one node is taken on every node.
    for (const n of [n1, n2, n3]) {
      const thief = PeerSocket.open(n, { id: b.id, token: 'not-bobs' });
      assert.deepEqual(await thief.waitFor((m) => m.type), { type: 'ID-TAKEN', payload: { msg: 'ID is taken' } });
      await thief.waitClosed();
    }

    // Every relayed type, from a node to another, with src set by the server.
    const payload = { sdp: { type: 'offer', sdp: 'v=0\r\n' }, type: 'data', connectionId: 'dc_1', label: 'x' };
    b.send({ type: 'OFFER', payload, dst: c.id, src: 'spoofed' });
    assert.deepEqual(await c.waitFor((m) => m.type === 'OFFER'), { type: 'OFFER', src: b.id, dst: c.id, payload });
    for (const type of ['ANSWER', 'CANDIDATE', 'LEAVE', 'EXPIRE']) {
      c.send({ type, payload: { n: type }, dst: b.id });
      const got = await b.waitFor((m) => m.type === type);
      assert.deepEqual(got, { type, src: c.id, dst: b.id, payload: { n: type } });
    }
    a.send({ type: 'CANDIDATE', payload: { from: 'owner' }, dst: c.id });
    assert.equal((await c.waitFor((m) => m.type === 'CANDIDATE')).src, a.id);
    c.send({ type: 'ANSWER', payload: { to: 'owner' }, dst: a.id });
    assert.equal((await a.waitFor((m) => m.type === 'ANSWER')).src, c.id);
    // What PeerServer ignores is ignored on the client's node and on the owner alike; the connection stays.
    b.send('not json');
    b.send({ type: 'WHATEVER', dst: c.id });
    b.send({ type: 'HEARTBEAT' });
    b.send({ type: 'CANDIDATE', payload: { after: true }, dst: c.id });
    await c.waitFor((m) => m.type === 'CANDIDATE' && m.payload.after);
    assert.ok(!c.messages.some((m) => m.type === 'WHATEVER'));
    assert.equal(b.closed, null);

    // Every node lists every node's peers.
    for (const n of [n1, n2, n3]) assert.deepEqual(await peers(n), [a.id, b.id, c.id].sort(), n.url);
    const cors = await fetch(`${n3.url}/peerjs/peers`, { headers: { Origin: 'http://app.example' } });
    assert.equal(cors.headers.get('access-control-allow-origin'), 'http://app.example');
    // LEAVE without dst removes the sender, wherever it is connected.
    c.send({ type: 'LEAVE' });
    await until(async () => (await peers(n2)).length === 2, 'the list without c');
    assert.deepEqual(await peers(n2), [a.id, b.id].sort());

    // Ids from /peerjs/id are UUIDs, different whichever node is asked.
    const ids = new Set();
    for (let i = 0; i < 5; ++i) {
      for (const n of [n1, n2, n3]) ids.add(await (await fetch(`${n.url}/peerjs/id`)).text());
    }
    assert.equal(ids.size, 15);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    // The same token on another node replaces the socket (a reconnect): no OPEN, and the id's messages go there.
    const b2 = PeerSocket.open(n3, { id: b.id, token: b.token });
    const replaced = await b.waitClosed();
    assert.equal(replaced.reason, 'replaced');
    a.send({ type: 'OFFER', payload: { n: 2 }, dst: b.id });
    assert.equal((await b2.waitFor((m) => m.type === 'OFFER')).src, a.id);
    assert.ok(!b2.messages.some((m) => m.type === 'OPEN'));

    // The clients on n3 (c, which left the key but keeps its socket, and b2) are in n1's room through links; the
    // links of the /peers questions ended with their answers.
    await until(async () => (await metric(n1, 'kaiwa_cluster_remote_members')) === 2, 'two remote members on n1');
    assert.equal(await metric(n3, 'kaiwa_cluster_links'), 2);
    assert.equal(await metric(n2, 'kaiwa_cluster_links'), 0);
    for (const p of [a, b2, c]) p.close();
  });

test('messages for an absent id are held cluster-wide: delivered when it connects on any node, else EXPIRE', { skip },
  async (t) => {
    const { nodes: [n1, n2, n3] } = await cluster(t, 3, ['--peerjs-expire-timeout', '1s']);
    const owner = await PeerSocket.open(n1).opened();
    const a = await PeerSocket.open(n2).opened();
    const late = freshId();
    a.send({ type: 'OFFER', payload: { n: 1 }, dst: late });
    a.send({ type: 'CANDIDATE', payload: { n: 2 }, dst: late });
    a.send({ type: 'LEAVE', dst: late });  // not held
    await sleep(200);
    const b = PeerSocket.open(n3, { id: late });
    await b.until(() => b.messages.length >= 3, 10_000, 'OPEN and the held messages');
    assert.deepEqual(b.messages.map((m) => [m.type, m.src, m.payload?.n]),
      [['OPEN', undefined, undefined], ['OFFER', a.id, 1], ['CANDIDATE', a.id, 2]]);
    // Never connected: the sender on n2 gets one EXPIRE from the owner's room.
    const never = freshId();
    a.send({ type: 'OFFER', payload: {}, dst: never });
    a.send({ type: 'CANDIDATE', payload: {}, dst: never });
    assert.deepEqual(await a.waitFor((m) => m.type === 'EXPIRE'), { type: 'EXPIRE', src: never, dst: a.id });
    await sleep(1200);
    assert.equal(a.messages.filter((m) => m.type === 'EXPIRE').length, 1);
    for (const p of [owner, a, b]) p.close();
  });

test('heartbeats, the concurrent limit and auth apply across nodes as on one node', { skip }, async (t) => {
  const secret = 'pj-cluster-secret';
  const token = (room) =>
    execFileSync(BIN, ['token', '--room', room, '--user', 'u', '--secret', secret]).toString().trim();
  const { nodes: [n1, n2, n3] } = await cluster(t, 3,
    ['--peerjs-alive-timeout', '1500ms', '--peerjs-concurrent-limit', '3', '--auth-secret', secret]);
  const good = token('peerjs:peerjs');
  const refused = PeerSocket.open(n2, { token: token('another-room') });
  assert.match((await refused.waitFor((m) => m.type === 'ERROR')).payload.msg, /^Invalid token/);
  await refused.waitClosed();

  const a = await PeerSocket.open(n1, { token: good }).opened();
  const talker = await PeerSocket.open(n2, { token: good }).opened();
  const silent = await PeerSocket.open(n3, { token: good }).opened();
  // The room holds three: a fourth on any node is refused with PeerServer's ERROR.
  const fourth = PeerSocket.open(n2, { token: good });
  assert.deepEqual(await fourth.waitFor((m) => m.type === 'ERROR'),
    { type: 'ERROR', payload: { msg: 'Server has reached its concurrent user limit' } });
  await fourth.waitClosed();

  // HEARTBEATs from n2 keep its client alive in n1's room; the silent one on n3 is closed after the alive timeout.
  const beat = setInterval(() => { talker.send({ type: 'HEARTBEAT' }); a.send({ type: 'HEARTBEAT' }); }, 300);
  try {
    await silent.until(() => silent.closed, 10_000, 'the silent client to be closed');
    await sleep(1000);
    assert.equal(talker.closed, null);
    assert.equal(a.closed, null);
    // Its place and its id are free again.
    const back = await PeerSocket.open(n2, { id: silent.id, token: good }).opened();
    back.close();
  } finally {
    clearInterval(beat);
  }
  a.close();
  talker.close();
});

test('a node killed with -9: its clients reconnect with their ids on other nodes; the owner\'s death moves the key',
  { skip }, async (t) => {
    const { nodes: [n1, n2, n3] } = await cluster(t, 3, ['--peerjs-discovery']);
    const a = await PeerSocket.open(n1).opened();  // the key's room is placed on n1
    const b = await PeerSocket.open(n2).opened();
    const c = await PeerSocket.open(n3).opened();

    // n2 (a client's node) dies: its client comes back on n3 with its id, once the owner saw n2 go.
    n2.proc.kill('SIGKILL');
    await n2.exitPromise;
    await b.waitClosed();
    await until(async () => (await metric(n1, 'kaiwa_cluster_nodes')) === 2, 'n1 to see n2 gone', 15_000);
    const b2 = await reopen(n3, b.id, b.token);
    a.send({ type: 'OFFER', payload: { n: 'after-n2' }, dst: b.id });
    assert.equal((await b2.waitFor((m) => m.type === 'OFFER')).payload.n, 'after-n2');
    assert.deepEqual(await peers(n3), [a.id, b.id, c.id].sort());

    // n1 (the owner of the key's room) dies: n3 ends the links of its clients (1001), they reconnect with their ids,
    // and the key's room is placed anew on n3.
    n1.proc.kill('SIGKILL');
    await n1.exitPromise;
    await a.waitClosed();
    const ended = await c.until(() => c.closed, 15_000, 'the link to the dead owner to end');
    assert.equal(ended.code, 1001);
    await b2.until(() => b2.closed, 15_000, 'the link to the dead owner to end');
    const c2 = await reopen(n3, c.id, c.token);
    const b3 = await reopen(n3, b.id, b.token);
    const a2 = await reopen(n3, a.id, a.token);
    a2.send({ type: 'OFFER', payload: { n: 'after-n1' }, dst: c.id });
    assert.equal((await c2.waitFor((m) => m.type === 'OFFER')).src, a.id);
    c2.send({ type: 'ANSWER', payload: {}, dst: b.id });
    assert.equal((await b3.waitFor((m) => m.type === 'ANSWER')).src, c.id);
    assert.deepEqual(await peers(n3), [a.id, b.id, c.id].sort());
    // An id is still one client's.
    const thief = PeerSocket.open(n3, { id: a.id, token: 'not-a' });
    assert.equal((await thief.waitFor((m) => m.type)).type, 'ID-TAKEN');
    for (const p of [a2, b3, c2]) p.close();
  });
