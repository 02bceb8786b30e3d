// SFU rooms in the native protocol (docs/protocol.md, "SFU rooms"), without media: the room's media policy and the
// `auto` mode's media-mode events as people join and leave; publish and its answer; the subscribe-offer the others
// get (tracks, msid, versions); and the error paths (not-sfu, bad-sdp, stale-answer, too-many-tracks,
// too-many-publishers). Media itself is tests/e2e/sfu-native.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeUdpTcpPort, startServer, ROOT, uniqueRoom } from '../e2e/helpers.mjs';
import { Client, sleep } from './client.mjs';

const PUBLISHER = readFileSync(join(ROOT, 'tests/unit/sdp/vectors/chromium156_audio_video.sdp'), 'utf8');
const TRACKS = [{ mid: '0', source: 'microphone' }, { mid: '1', source: 'camera' }];

async function withServer(args, fn) {
  const sfuPort = await freeUdpTcpPort();
  const server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`, ...args] });
  const clients = [];
  const open = async () => {
    const c = await Client.open(server);
    clients.push(c);
    return c;
  };
  try {
    await fn(server, open);
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
}

const modeEvents = (c) => c.messages.filter((m) => m.type === 'media-mode').map((m) => m.mode);

test('auto: mesh for two, sfu from the third member on, mesh again at two; events after peer-joined/peer-left',
  async () => {
    await withServer([], async (server, open) => {
      const room = uniqueRoom('auto');
      const [a, b, c] = [await open(), await open(), await open()];
      const ja = await a.join(room, 'a');
      assert.equal(ja.media, 'mesh');
      assert.equal(ja.mediaPolicy, 'auto');
      assert.equal((await b.join(room, 'b', { media: 'sfu' })).media, 'mesh', 'a later join does not set the policy');
      const jc = await c.join(room, 'c');
      assert.equal(jc.media, 'sfu');
      assert.equal(jc.mediaPolicy, 'auto');
      for (const x of [a, b, c]) await x.waitFor((m) => m.type === 'media-mode' && m.mode === 'sfu');
      const order = a.messages.map((m) => m.type);
      assert.ok(order.lastIndexOf('peer-joined') < order.indexOf('media-mode'), order.join(' '));
      assert.equal((await c.request({ type: 'leave' })).type, 'ok');
      for (const x of [a, b]) await x.waitFor((m) => m.type === 'media-mode' && m.mode === 'mesh');
      const orderAfter = a.messages.map((m) => m.type);
      assert.ok(orderAfter.lastIndexOf('peer-left') < orderAfter.lastIndexOf('media-mode'));
      assert.deepEqual(modeEvents(a), ['sfu', 'mesh']);
      assert.deepEqual(modeEvents(b), ['sfu', 'mesh']);
      // In mesh, the SFU's requests are refused.
      const refused = await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS });
      assert.equal(refused.code, 'not-sfu');
    });
  });

test('a mesh room refuses publish with not-sfu; a later sfu join does not change it', async () => {
  await withServer(['--media-mode', 'sfu'], async (server, open) => {
    const room = uniqueRoom('mesh');
    const [a, b] = [await open(), await open()];
    const ja = await a.join(room, 'a', { media: 'mesh' });
    assert.deepEqual([ja.media, ja.mediaPolicy], ['mesh', 'mesh']);
    const jb = await b.join(room, 'b', { media: 'sfu' });
    assert.deepEqual([jb.media, jb.mediaPolicy], ['mesh', 'mesh']);
    assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS })).code, 'not-sfu');
    // The server's default applies to a room whose first join names none.
    const c = await open();
    const jc = await c.join(uniqueRoom('dflt'), 'c');
    assert.deepEqual([jc.media, jc.mediaPolicy], ['sfu', 'sfu']);
    const d = await open();
    assert.equal((await d.request({ type: 'join', room: 'x', name: 'y', media: 'p2p' })).code, 'bad-message');
  });
});

test('publish answers, the others get a subscribe-offer; bad-sdp and stale-answer', async () => {
  await withServer([], async (server, open) => {
    const room = uniqueRoom('pub');
    const [a, b] = [await open(), await open()];
    await a.join(room, 'a', { media: 'sfu' });
    await b.join(room, 'b');
    const bad = await a.request({ type: 'publish', sdp: 'not sdp', tracks: TRACKS });
    assert.equal(bad.code, 'bad-sdp');
    assert.match(bad.message, /line|SDP/);
    const badMid = await a.request({ type: 'publish', sdp: PUBLISHER, tracks: [{ mid: '7', source: 'camera' }] });
    assert.equal(badMid.code, 'bad-sdp');
    const badSource = await a.request({ type: 'publish', sdp: PUBLISHER, tracks: [{ mid: '1', source: 'tv' }] });
    assert.equal(badSource.code, 'bad-message');
    assert.equal((await b.request({ type: 'subscribe-answer', sdp: 'v=0', version: 1 })).code, 'stale-answer');

    const ok = await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS });
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    assert.match(ok.sdp, /a=ice-lite/);
    assert.match(ok.sdp, /a=setup:passive/);
    const offer = await b.waitFor((m) => m.type === 'subscribe-offer');
    assert.equal(offer.version, 1);
    assert.deepEqual(offer.tracks.map((t) => [t.peer, t.source, t.kind]).sort(),
      [[a.peer, 'camera', 'video'], [a.peer, 'microphone', 'audio']]);
    assert.match(offer.sdp, /a=setup:actpass/);
    assert.match(offer.sdp, new RegExp(`a=msid:${a.peer} ${a.peer}:camera`));
    assert.ok(!a.messages.some((m) => m.type === 'subscribe-offer'), 'no offer of its own tracks');
    // A version that is not the outstanding one is stale; so is an answer to nothing.
    assert.equal((await b.request({ type: 'subscribe-answer', sdp: 'v=0', version: 2 })).code, 'stale-answer');
    assert.equal((await a.request({ type: 'subscribe-answer', sdp: 'v=0', version: 1 })).code, 'stale-answer');
    assert.equal((await b.request({ type: 'subscribe-answer', sdp: 'junk', version: 1 })).code, 'bad-sdp');

    // Unpublish ends a's tracks; b's next offer waits for its answer to version 1 (one outstanding offer at most).
    assert.equal((await a.request({ type: 'unpublish' })).type, 'ok');
    await sleep(300);
    assert.equal(b.messages.filter((m) => m.type === 'subscribe-offer').length, 1);
  });
});

test('limits: too-many-tracks and too-many-publishers', async () => {
  await withServer(['--sfu-max-publishers', '1', '--sfu-max-tracks', '1'], async (server, open) => {
    const room = uniqueRoom('lim');
    const [a, b] = [await open(), await open()];
    await a.join(room, 'a', { media: 'sfu' });
    await b.join(room, 'b');
    assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS })).code, 'too-many-tracks');
    assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: [TRACKS[1]] })).type, 'ok');
    const second = await b.request({ type: 'publish', sdp: PUBLISHER, tracks: [TRACKS[1]] });
    assert.equal(second.code, 'too-many-publishers');
  });
});

test('a server without the SFU makes every room mesh', async () => {
  const server = await startServer({ extraArgs: ['--no-turn', '--no-sfu'] });
  try {
    const a = await Client.open(server);
    const j = await a.join(uniqueRoom('nosfu'), 'a', { media: 'sfu' });
    assert.deepEqual([j.media, j.mediaPolicy], ['mesh', 'mesh']);
    assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS })).code, 'not-sfu');
    a.close();
  } finally {
    await server.stop();
  }
});
