// What the cluster shares besides rooms (docs/cluster.md): a connection placed anew after a `leave`, --max-rooms
// counted over the cluster, per-address connections counted across nodes, and the cluster's view in /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom } from '../e2e/helpers.mjs';
import { Client, metric } from './client.mjs';
import { cluster, skip, until } from './cluster.mjs';
import { fetchFrom, get, metricFrom, openConnection } from './process.mjs';

test('a join after a leave is placed anew: from a room of another node to one of this node, and back', { skip },
  async (t) => {
    const { nodes: [n1, n2] } = await cluster(t, 2);
    const [r1, r2] = [uniqueRoom('one'), uniqueRoom('two')];
    const a = await Client.open(n1);
    assert.equal((await a.join(r1, 'Alice')).type, 'ok');  // r1 lives on n1
    const b = await Client.open(n2);
    assert.equal((await b.join(r2, 'Bob')).type, 'ok');  // r2 lives on n2
    const c = await Client.open(n1);
    t.after(() => [a, b, c].forEach((x) => x.close()));

    // c on n1 joins r2 (n2's: c is linked there), leaves, and joins r1: placed on n1, where Alice is.
    const in2 = await c.join(r2, 'Carol');
    assert.deepEqual(in2.peers.map((p) => p.name), ['Bob']);
    assert.equal(await metric(n1, 'kaiwa_cluster_links'), 1);
    assert.equal((await c.request({ type: 'leave' })).type, 'ok');
    await b.waitFor((m) => m.type === 'peer-left' && m.reason === 'left');
    const in1 = await c.join(r1, 'Carol');
    assert.equal(in1.type, 'ok', JSON.stringify(in1));
    assert.deepEqual(in1.peers.map((p) => p.name), ['Alice']);
    await a.waitFor((m) => m.type === 'peer-joined' && m.peer.name === 'Carol');
    await until(async () => (await metric(n1, 'kaiwa_cluster_links')) === 0, 'the link to n2 to end');
    assert.equal(await metric(n2, 'kaiwa_cluster_remote_members'), 0);
    assert.ok(!b.messages.some((m) => m.type === 'peer-left' && m.reason !== 'left'), 'no second peer-left at n2');
    // Talk goes to the room c is in now, not to n2.
    assert.equal((await c.request({ type: 'chat', text: 'back on n1' })).type, 'ok');
    assert.equal((await a.waitFor((m) => m.type === 'chat')).text, 'back on n1');
    assert.ok(!b.messages.some((m) => m.type === 'chat'));

    // And back: from n1's own room to n2's.
    assert.equal((await c.request({ type: 'leave' })).type, 'ok');
    const again = await c.join(r2, 'Carol');
    assert.equal(again.type, 'ok', JSON.stringify(again));
    assert.deepEqual(again.peers.map((p) => p.name), ['Bob']);
    await b.waitFor((m) => m.type === 'peer-joined' && m.peer.name === 'Carol');
  });

test('--max-rooms counts the rooms of the whole cluster', { skip }, async (t) => {
  const { nodes: [n1, n2] } = await cluster(t, 2, ['--max-rooms', '2']);
  const clients = [];
  t.after(() => clients.forEach((x) => x.close()));
  const open = async (node) => {
    const c = await Client.open(node);
    clients.push(c);
    return c;
  };
  const [r1, r2, r3] = [uniqueRoom('one'), uniqueRoom('two'), uniqueRoom('three')];
  assert.equal((await (await open(n1)).join(r1, 'a')).type, 'ok');
  assert.equal((await (await open(n2)).join(r2, 'b')).type, 'ok');
  // Each node holds one room, under its own bound of two; the cluster holds two.
  for (const node of [n1, n2]) {
    const r = await (await open(node)).join(r3, 'c');
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'too-many-rooms');
  }
  assert.equal(await metric(n1, 'kaiwa_cluster_rooms_refused_total'), 1);
  assert.equal(await metric(n2, 'kaiwa_cluster_rooms_refused_total'), 1);
  // The rooms that exist still take members from any node.
  const d = await open(n1);
  const jd = await d.join(r2, 'd');
  assert.equal(jd.type, 'ok', JSON.stringify(jd));
  assert.deepEqual(jd.peers.map((p) => p.name), ['b']);
});

test('per-address connections are counted across nodes', { skip }, async (t) => {
  // The test's own requests come from 127.0.0.1, which is exempt; the limited client is 127.0.0.9.
  const { nodes: [n1, n2] } = await cluster(t, 2, ['--address-connections', '4', '--address-exempt', '127.0.0.1']);
  const from = { localAddress: '127.0.0.9' };
  const held = [];
  t.after(() => held.forEach((c) => c.sock.destroy()));
  for (let i = 0; i < 3; i++) {
    const c = await openConnection(n1.port, from);
    held.push(c);
    assert.equal(await get(c), 200, `connection ${i + 1} at n1`);
  }
  // n2 learns n1's count at the next heartbeats.
  await until(async () => (await metric(n2, 'kaiwa_cluster_addresses_elsewhere')) === 1, 'n2 to hear of 127.0.0.9');
  const fourth = await openConnection(n2.port, from);
  held.push(fourth);
  assert.equal(await get(fourth), 200, 'the fourth, at n2');
  const fifth = await openConnection(n2.port, from);
  held.push(fifth);
  assert.ok(await fifth.until(() => fifth.closed), 'the fifth is refused at n2: three at n1 and one at n2');
  assert.equal(await metricFrom(n2.port, 'kaiwa_address_refused_total{limit="connections"}'), 1);
  // Another address is not affected; and once n1's connections are gone, n2 hears of it and lets 127.0.0.9 in.
  assert.equal((await fetchFrom(n2.port, '/healthz', { localAddress: '127.0.0.10' })).status, 200);
  for (const c of held.splice(0, 3)) await c.close();
  await until(async () => (await fetchFrom(n2.port, '/healthz', from)).status === 200, 'n2 to let 127.0.0.9 in');
});

test('/metrics has the cluster\'s view: its nodes, their URLs and rooms', { skip }, async (t) => {
  const { nodes } = await cluster(t, 3);
  const [n1, n2] = nodes;
  const clients = [];
  t.after(() => clients.forEach((x) => x.close()));
  for (const [node, room] of [[n1, uniqueRoom()], [n1, uniqueRoom()], [n2, uniqueRoom()]]) {
    const c = await Client.open(node);
    clients.push(c);
    assert.equal((await c.join(room, 'x')).type, 'ok');
  }
  const text = async (node) => (await fetch(`${node.url}/metrics`)).text();
  // Read at n3, which holds none of them, once its view has them.
  await until(async () => (await metric(nodes[2], 'kaiwa_cluster_rooms')) === 3, 'the cluster\'s three rooms');
  const body = await text(nodes[2]);
  for (const [i, n] of nodes.entries()) {
    assert.ok(body.includes(`kaiwa_cluster_node{node="n${i + 1}",url="${n.url}"} 1\n`), body);
  }
  assert.match(body, /kaiwa_cluster_node_rooms\{node="n1"\} 2\n/);
  assert.match(body, /kaiwa_cluster_node_rooms\{node="n2"\} 1\n/);
  assert.match(body, /kaiwa_cluster_node_rooms\{node="n3"\} 0\n/);
  assert.equal(await metric(nodes[2], 'kaiwa_cluster_nodes'), 3);
});
