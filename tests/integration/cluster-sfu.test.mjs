// SFU rooms and WHIP/WHEP across nodes (docs/cluster.md, "SFU rooms and WHIP/WHEP"): media does not hop between
// nodes, so a WHIP/WHEP request at a node that does not own the room is answered 307 to the owner's --advertise URL
// (same path and query), and a native member on another node of an SFU room gets the owner's answers, whose
// candidates are the owner's media port. Media itself: tests/e2e/cluster.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, freeUdpTcpPort, uniqueRoom } from '../e2e/helpers.mjs';
import { Client } from './client.mjs';
import { cluster, skip } from './cluster.mjs';

const vector = (name) => readFileSync(join(ROOT, 'tests/unit/sdp/vectors', name), 'utf8');
const PUBLISHER = vector('chromium156_audio_video.sdp');
const VIEWER = vector('chromium156_recvonly.sdp');
const TRACKS = [{ mid: '0', source: 'microphone' }, { mid: '1', source: 'camera' }];

/** Two nodes, each with its own media port on loopback: { nodes, mediaPorts }. */
async function sfuCluster(t) {
  const mediaPorts = [];
  const env = await cluster(t, 2, async () => {
    const port = await freeUdpTcpPort();
    mediaPorts.push(port);
    return ['--sfu-listen', `127.0.0.1:${port}`];
  });
  return { ...env, mediaPorts };
}

const candidatePort = (sdp) => Number(sdp.match(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host/)[1]);

const post = (url, body, redirect = 'manual') =>
  fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body, redirect });

test('WHIP and WHEP at a node that does not own the room: 307 to the owner, whose resources they are', { skip },
  async (t) => {
    const { nodes: [n1, n2], mediaPorts } = await sfuCluster(t);
    const room = uniqueRoom('whip');
    // The first POST places the room on the node it reached: n1.
    const first = await post(`${n1.url}/whip/${room}?name=cam`, PUBLISHER);
    assert.equal(first.status, 201, await first.clone().text());
    assert.equal(candidatePort(await first.text()), mediaPorts[0]);

    // At n2: a redirect to the same path and query at n1, with nothing served here.
    const moved = await post(`${n2.url}/whip/${room}?name=second`, PUBLISHER);
    assert.equal(moved.status, 307);
    assert.equal(moved.headers.get('location'), `${n1.url}/whip/${room}?name=second`);
    assert.equal(moved.headers.get('access-control-expose-headers')?.includes('Location'), true);
    // Followed by hand: the owner answers, with its media port and a Location on its own origin.
    const followed = await post(moved.headers.get('location'), PUBLISHER);
    assert.equal(followed.status, 201, await followed.clone().text());
    assert.equal(candidatePort(await followed.text()), mediaPorts[0]);
    const resource = new URL(followed.headers.get('location'), followed.url);
    assert.equal(resource.origin, n1.url);
    assert.match(resource.pathname, new RegExp(`^/whip/${room}/[0-9a-f]+\\.[A-Za-z0-9]+$`));

    // fetch's own redirect handling gets there too (307 keeps the method and the body), and so does WHEP.
    const viewer = await post(`${n2.url}/whep/${room}`, VIEWER, 'follow');
    assert.equal(viewer.status, 201, await viewer.clone().text());
    assert.equal(viewer.redirected, true);
    assert.equal(new URL(viewer.url).origin, n1.url);
    assert.equal(candidatePort(await viewer.text()), mediaPorts[0]);

    // The session's resource asked at n2 (a client that kept the first origin): sent to n1 as well.
    const atN2 = `${n2.url}${resource.pathname}`;
    const del = await fetch(atN2, { method: 'DELETE', redirect: 'manual' });
    assert.equal(del.status, 307);
    assert.equal(del.headers.get('location'), resource.href);
    assert.equal((await fetch(resource.href, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(resource.href, { method: 'DELETE' })).status, 404);

    // A room nobody holds is placed on the node the POST reached, and served there.
    const other = uniqueRoom('whip');
    const here = await post(`${n2.url}/whep/${other}`, VIEWER);
    assert.equal(here.status, 409, 'served by n2 (no publisher yet), not redirected');
    const there = await post(`${n1.url}/whip/${other}`, PUBLISHER);
    assert.equal(there.status, 307);
    assert.equal(there.headers.get('location'), `${n2.url}/whip/${other}`);
  });

test('a native SFU room across nodes: the member on the other node publishes and subscribes at the owner', { skip },
  async (t) => {
    const { nodes: [n1, n2], mediaPorts } = await sfuCluster(t);
    const room = uniqueRoom('sfu');
    const a = await Client.open(n1);
    t.after(() => a.close());
    assert.equal((await a.join(room, 'a', { media: 'sfu' })).media, 'sfu');
    const b = await Client.open(n2);
    t.after(() => b.close());
    const jb = await b.join(room, 'b');
    assert.equal(jb.type, 'ok', JSON.stringify(jb));
    assert.equal(jb.media, 'sfu');

    // b (on n2) publishes: the answer is n1's, with n1's media port.
    const ok = await b.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS });
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    assert.equal(candidatePort(ok.sdp), mediaPorts[0]);
    // a (on n1) is offered b's tracks; and when a publishes, b's subscribe offer comes from n1 too.
    const offerA = await a.waitFor((m) => m.type === 'subscribe-offer');
    assert.deepEqual(offerA.tracks.map((x) => x.peer), [b.peer, b.peer]);
    assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS })).type, 'ok');
    const offerB = await b.waitFor((m) => m.type === 'subscribe-offer');
    assert.deepEqual(offerB.tracks.map((x) => x.peer), [a.peer, a.peer]);
    assert.equal(candidatePort(offerB.sdp), mediaPorts[0]);
    assert.notEqual(mediaPorts[0], mediaPorts[1]);
  });
