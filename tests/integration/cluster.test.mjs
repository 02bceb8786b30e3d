// kaiwa across nodes on Redis (docs/cluster.md): a redis-server of the test's own on a free loopback port and up to
// three kaiwa nodes on this machine. Native clients on different nodes share a room; a node killed with -9 has its
// members leave the others' rooms after the grace; a node cut from Redis says so and keeps serving its own rooms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom } from '../e2e/helpers.mjs';
import { Client, metric } from './client.mjs';
import { cluster, health, skipWithoutRedis as skip, startRedis, until } from './cluster.mjs';

test('members on different nodes share a room: peers, signal, message, chat, state, leave', { skip }, async (t) => {
  const { nodes: [n1, n2, n3] } = await cluster(t, 3);
  const room = uniqueRoom();
  const a = await Client.open(n1);
  const ja = await a.join(room, 'Alice');
  assert.equal(ja.type, 'ok');
  const b = await Client.open(n2);
  const jb = await b.join(room, 'Bob', { state: { videoOff: true } });
  assert.equal(jb.type, 'ok', JSON.stringify(jb));
  assert.deepEqual(jb.peers.map((p) => p.name), ['Alice']);
  const joined = await a.waitFor((m) => m.type === 'peer-joined');
  assert.equal(joined.peer.id, b.peer);
  assert.equal(joined.peer.state.videoOff, true);

  b.send({ type: 'signal', to: a.peer, data: { description: { type: 'offer', sdp: 'v=0\r\n' } } });
  const sig = await a.waitFor((m) => m.type === 'signal');
  assert.equal(sig.from, b.peer);
  assert.equal(sig.data.description.sdp, 'v=0\r\n');
  a.send({ type: 'signal', to: b.peer, data: { candidate: 'c1' } });
  assert.equal((await b.waitFor((m) => m.type === 'signal')).data.candidate, 'c1');

  const chat = await b.request({ type: 'chat', text: 'hello from n2' });
  assert.equal(chat.type, 'ok');
  assert.equal((await a.waitFor((m) => m.type === 'chat')).text, 'hello from n2');
  b.send({ type: 'message', data: { x: 1 } });
  assert.deepEqual((await a.waitFor((m) => m.type === 'message')).data, { x: 1 });
  a.send({ type: 'state', state: { audioMuted: true } });
  const st = await b.waitFor((m) => m.type === 'peer-state');
  assert.equal(st.state.audioMuted, true);

  // A third node joins the room: it sees both, both see it.
  const c = await Client.open(n3);
  const jc = await c.join(room, 'Carol');
  assert.equal(jc.type, 'ok');
  assert.deepEqual(jc.peers.map((p) => p.name).sort(), ['Alice', 'Bob']);
  await a.waitFor((m) => m.type === 'peer-joined' && m.peer.name === 'Carol');
  await b.waitFor((m) => m.type === 'peer-joined' && m.peer.name === 'Carol');

  // A member on another node leaves: everyone hears it.
  assert.equal((await b.request({ type: 'leave' })).type, 'ok');
  const left = await c.waitFor((m) => m.type === 'peer-left' && m.peer === b.peer);
  assert.equal(left.reason, 'left');
  await a.waitFor((m) => m.type === 'peer-left' && m.peer === b.peer);

  // The owner relayed through Redis: batches went out, and the metrics say so on both sides.
  assert.ok(await metric(n1, 'kaiwa_cluster_published_batches_total') > 0);
  assert.ok(await metric(n2, 'kaiwa_cluster_published_batches_total') > 0);
  assert.equal(await metric(n1, 'kaiwa_cluster_redis_up'), 1);
  for (const x of [a, b, c]) x.close();
});

test('a node killed with -9: its members leave the others\' rooms after the grace', { skip }, async (t) => {
  const { nodes: [n1, n2] } = await cluster(t, 2, ['--resume-grace', '1s']);
  const room = uniqueRoom();
  const a = await Client.open(n1);
  assert.equal((await a.join(room, 'Alice')).type, 'ok');
  const b = await Client.open(n2);
  assert.equal((await b.join(room, 'Bob')).type, 'ok');
  await a.waitFor((m) => m.type === 'peer-joined');
  n2.proc.kill('SIGKILL');
  await n2.exitPromise;
  // Within the node TTL (3 s) plus the grace (1 s), with room to spare.
  const left = await a.until(() => a.messages.find((m) => m.type === 'peer-left' && m.peer === b.peer), 15_000,
    'peer-left for the member of the dead node');
  assert.equal(left.reason, 'disconnected');  // as for a connection dropped on one node
  await until(async () => (await metric(n1, 'kaiwa_cluster_nodes')) === 1, 'n1 to count one node');
  assert.equal(await metric(n1, 'kaiwa_cluster_nodes_gone_total'), 1);
  a.close();
});

test('a room owned by a node that died is placed anew: its old members come back to any node', { skip }, async (t) => {
  const { nodes: [n1, n2, n3] } = await cluster(t, 3);
  const room = uniqueRoom();
  const a = await Client.open(n1);
  assert.equal((await a.join(room, 'Alice')).type, 'ok');
  const b = await Client.open(n2);
  assert.equal((await b.join(room, 'Bob')).type, 'ok');
  n1.proc.kill('SIGKILL');
  await n1.exitPromise;
  // n2 closes the link of its client to the dead owner; the client joins again, and the room lives on n2 or n3.
  await b.until(() => b.closed, 15_000, 'the link to the dead owner to close');
  const b2 = await Client.open(n2);
  assert.equal((await until(async () => {
    const r = await b2.join(room, 'Bob');
    return r.type === 'ok' ? r : null;
  }, 'a join after the owner died')).type, 'ok');
  const c = await Client.open(n3);
  const jc = await c.join(room, 'Carol');
  assert.equal(jc.type, 'ok');
  assert.deepEqual(jc.peers.map((p) => p.name), ['Bob']);
  b2.close();
  c.close();
});

test('a node cut from Redis says degraded and serves its own room; it recovers by itself', { skip }, async (t) => {
  const env = await cluster(t, 2);
  const [n1] = env.nodes;
  const room = uniqueRoom();
  const a = await Client.open(n1);
  assert.equal((await a.join(room, 'Alice')).type, 'ok');
  assert.deepEqual(await health(n1), { status: 200, text: 'ok\n' });
  await env.redis.stop();
  await until(async () => (await health(n1)).status === 503, 'healthz to say degraded');
  assert.match((await health(n1)).text, /degraded/);
  assert.equal(await metric(n1, 'kaiwa_cluster_redis_up'), 0);
  // Its own room goes on: a newcomer on the same node joins it and talks.
  const b = await Client.open(n1);
  const jb = await b.join(room, 'Bob');
  assert.equal(jb.type, 'ok');
  assert.deepEqual(jb.peers.map((p) => p.name), ['Alice']);
  assert.equal((await b.request({ type: 'chat', text: 'still here' })).type, 'ok');
  await a.waitFor((m) => m.type === 'chat' && m.text === 'still here');
  // Redis back on the same port: the node finds it again.
  const again = await startRedis(env.port);
  env.redis.stop = again.stop;
  await until(async () => (await health(n1)).status === 200, 'healthz to say ok again');
  await until(async () => (await metric(n1, 'kaiwa_cluster_nodes')) === 2, 'both nodes seen again');
  a.close();
  b.close();
});

test('a member whose connection dropped resumes on another node within the grace, unseen by the others', { skip },
  async (t) => {
    const { nodes: [n1, n2, n3] } = await cluster(t, 3, ['--resume-grace', '30s']);
    const room = uniqueRoom();
    const a = await Client.open(n1);
    assert.equal((await a.join(room, 'Alice')).type, 'ok');
    const b = await Client.open(n2);
    assert.equal((await b.join(room, 'Bob')).type, 'ok');
    await a.waitFor((m) => m.type === 'peer-joined');
    b.ws.close(4000, 'network change');  // not going away: the member keeps its place for the grace
    await b.waitClosed();
    await until(async () => (await metric(n1, 'kaiwa_peers_detached')) === 1, 'the owner to detach the member');
    a.send({ type: 'signal', to: b.peer, data: 'while-away' });  // held for the detached member
    const b2 = await Client.open(n3);
    const r = await b2.request({ type: 'resume', room, peer: b.peer, resume: b.resumeToken });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    assert.equal(r.resumed, true);
    assert.equal(r.peer, b.peer);
    assert.equal((await b2.waitFor((m) => m.type === 'signal')).data, 'while-away');
    b2.send({ type: 'message', to: a.peer, data: { back: 1 } });
    assert.deepEqual((await a.waitFor((m) => m.type === 'message')).data, { back: 1 });
    assert.ok(!a.messages.some((m) => m.type === 'peer-left'), 'a resumed member is not reported as gone');
    a.close();
    b2.close();
  });

test('a node stopped with SIGTERM leaves at once: its members are told, its rooms are taken over', { skip },
  async (t) => {
    const { nodes: [n1, n2] } = await cluster(t, 2);
    const room = uniqueRoom();
    const a = await Client.open(n2);
    assert.equal((await a.join(room, 'Alice')).type, 'ok');  // the room lives on n2
    const b = await Client.open(n1);
    assert.equal((await b.join(room, 'Bob')).type, 'ok');
    await n2.stop();
    // n2's shutdown `bye` reaches its member on n1 through the link.
    const bye = await b.waitFor((m) => m.type === 'bye');
    assert.equal(bye.reason, 'shutdown');
    await b.waitClosed();
    await until(async () => (await metric(n1, 'kaiwa_cluster_nodes')) === 1, 'n1 to see n2 leave');
    // n2 deleted its record: the room is placed on n1 at the first try, not sent to a node that no longer listens.
    const b2 = await Client.open(n1);
    const r = await b2.join(room, 'Bob');
    assert.equal(r.type, 'ok', JSON.stringify(r));
    assert.deepEqual(r.peers, []);
    b2.close();
  });
