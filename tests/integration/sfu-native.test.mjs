// SFU rooms in the native protocol (docs/protocol.md, "SFU rooms"), without media: the room's media policy and the
// `auto` mode's media-mode events as people join and leave; publish and its answer; the subscribe-offer the others
// get (tracks, msid, versions); and the error paths (not-sfu, bad-sdp, stale-answer, too-many-tracks,
// too-many-publishers). Media itself is tests/e2e/sfu-native.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, ROOT, uniqueRoom } from '../e2e/helpers.mjs';
import { Client, metric, sleep, withSfuServer } from './client.mjs';

const PUBLISHER = readFileSync(join(ROOT, 'tests/unit/sdp/vectors/chromium156_audio_video.sdp'), 'utf8');
const TRACKS = [{ mid: '0', source: 'microphone' }, { mid: '1', source: 'camera' }];

const modeEvents = (c) => c.messages.filter((m) => m.type === 'media-mode').map((m) => m.mode);

test('auto: mesh for two, sfu from the third member on, mesh again at two; events after peer-joined/peer-left',
  async () => {
    await withSfuServer([], async (server, open) => {
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
  await withSfuServer(['--media-mode', 'sfu'], async (server, open) => {
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
  await withSfuServer([], async (server, open) => {
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
  await withSfuServer(['--sfu-max-publishers', '1', '--sfu-max-tracks', '1'], async (server, open) => {
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

// The answer a page would give to kaiwa's subscribe offer (recvonly, DTLS client, ICE credentials of its own).
function answerTo(offer, ufrag = 'subU') {
  return offer
    .split('\r\n')
    .filter((l) => !/^a=(ice-lite|ssrc|ssrc-group|msid|candidate|end-of-candidates)/.test(l))
    .map((l) => l
      .replace(/^a=ice-ufrag:.*/, `a=ice-ufrag:${ufrag}`)
      .replace(/^a=ice-pwd:.*/, 'a=ice-pwd:subscriberpassword012345')
      .replace(/^a=setup:actpass/, 'a=setup:active')
      .replace(/^a=sendonly/, 'a=recvonly'))
    .join('\r\n');
}
const ufragOf = (sdp) => /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];
const offers = (c) => c.messages.filter((m) => m.type === 'subscribe-offer');
async function metricBecomes(server, name, want, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await metric(server, name);
    if (value === want) return;
    if (Date.now() > end) assert.fail(`${name} is ${value}, not ${want}, after ${ms} ms`);
    await sleep(100);
  }
}

test('subscribe-restart: a version-1 offer with new ICE credentials and every track; once per 2 s; counted',
  async () => {
    await withSfuServer([], async (server, open) => {
      const room = uniqueRoom('subrestart');
      const [a, b] = [await open(), await open()];
      await a.join(room, 'a', { media: 'sfu' });
      await b.join(room, 'b');
      assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS })).type, 'ok');
      const first = await b.waitFor((m) => m.type === 'subscribe-offer');
      const answered = await b.request({ type: 'subscribe-answer', sdp: answerTo(first.sdp), version: 1 });
      assert.equal(answered.type, 'ok', JSON.stringify(answered));
      const transports = await metric(server, 'kaiwa_sfu_transports');
      assert.equal(transports, 2, 'a publish and a subscribe transport');

      assert.equal((await b.request({ type: 'subscribe-restart' })).type, 'ok');
      const fresh = await b.until(() => offers(b)[1], 5000, 'the restart offer');
      assert.equal(fresh.version, 1);
      assert.notEqual(ufragOf(fresh.sdp), ufragOf(first.sdp));
      assert.match(ufragOf(fresh.sdp), /^w\d+x/);
      assert.deepEqual(fresh.tracks.map((t) => [t.mid, t.peer, t.source]).sort(),
        first.tracks.map((t) => [t.mid, t.peer, t.source]).sort());
      assert.equal(await metric(server, 'kaiwa_sfu_transports'), 1, 'the old subscribe transport ended');
      // Too soon: refused, nothing changes.
      const again = await b.request({ type: 'subscribe-restart' });
      assert.equal(again.code, 'rate-limited');
      // The new offer is answered on the new connection; the old version-1 answer's credentials are not needed.
      const answered2 = await b.request({ type: 'subscribe-answer', sdp: answerTo(fresh.sdp, 'subV'), version: 1 });
      assert.equal(answered2.type, 'ok', JSON.stringify(answered2));
      assert.equal(await metric(server, 'kaiwa_sfu_transports'), 2);
      await sleep(2100);
      assert.equal((await b.request({ type: 'subscribe-restart' })).type, 'ok');
      const third = await b.until(() => offers(b)[2], 5000, 'the second restart offer');
      assert.equal(third.version, 1);
      assert.notEqual(ufragOf(third.sdp), ufragOf(fresh.sdp));
      await metricBecomes(server, 'kaiwa_sfu_subscribe_restarts_total', 2, 3000);
      assert.equal(await metric(server, 'kaiwa_sfu_subscribe_restarts_refused_total'), 1);
      // Not in a mesh room.
      const c = await open();
      await c.join(uniqueRoom('subrestart-mesh'), 'c', { media: 'mesh' });
      assert.equal((await c.request({ type: 'subscribe-restart' })).code, 'not-sfu');
    });
  });

test('publish re-offer with a new ufrag restarts ICE: new credentials, tracks and subscriptions kept', async () => {
  await withSfuServer([], async (server, open) => {
    const room = uniqueRoom('icerestart');
    const [a, b] = [await open(), await open()];
    await a.join(room, 'a', { media: 'sfu' });
    await b.join(room, 'b');
    const first = await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS });
    assert.equal(first.type, 'ok');
    const offer = await b.waitFor((m) => m.type === 'subscribe-offer');
    assert.equal((await b.request({ type: 'subscribe-answer', sdp: answerTo(offer.sdp), version: 1 })).type, 'ok');

    const restarted = PUBLISHER.replace(/a=ice-ufrag:.*/g, 'a=ice-ufrag:rst1')
      .replace(/a=ice-pwd:.*/g, 'a=ice-pwd:restartedpassword01234567');
    assert.notEqual(restarted, PUBLISHER);
    const second = await a.request({ type: 'publish', sdp: restarted, tracks: TRACKS });
    assert.equal(second.type, 'ok', JSON.stringify(second));
    assert.notEqual(ufragOf(second.sdp), ufragOf(first.sdp), 'new ICE credentials in the answer');
    assert.notEqual(/a=ice-pwd:(\S+)/.exec(second.sdp)[1], /a=ice-pwd:(\S+)/.exec(first.sdp)[1]);
    assert.match(ufragOf(second.sdp), /^w\d+x/);
    // The same transport and the same tracks: b gets no new offer, and no transport was added or ended.
    await sleep(300);
    assert.equal(offers(b).length, 1);
    assert.equal(await metric(server, 'kaiwa_sfu_transports'), 2);
    // A renegotiation with the restarted credentials is no further restart: the answer keeps them.
    const third = await a.request({ type: 'publish', sdp: restarted, tracks: TRACKS });
    assert.equal(ufragOf(third.sdp), ufragOf(second.sdp));
    await metricBecomes(server, 'kaiwa_sfu_ice_restarts_total', 1, 3000);
    // Another DTLS fingerprint is another peer connection: refused without unpublish.
    const otherCert = restarted.replace(/a=fingerprint:sha-256 (\S\S)/g, (m, x) => m.replace(x, x === 'AA' ? 'BB' : 'AA'));
    assert.notEqual(otherCert, restarted);
    const refused = await a.request({ type: 'publish', sdp: otherCert, tracks: TRACKS });
    assert.equal(refused.code, 'bad-sdp');
    assert.match(refused.message, /unpublish/);
  });
});

test('back to mesh: the SFU transports stay until the page unpublishes, or 10 s', async () => {
  await withSfuServer([], async (server, open) => {
    const room = uniqueRoom('mbb');
    const [a, b, c] = [await open(), await open(), await open()];
    await a.join(room, 'a');
    await b.join(room, 'b');
    await c.join(room, 'c');
    for (const x of [a, b, c]) await x.waitFor((m) => m.type === 'media-mode' && m.mode === 'sfu');
    assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS })).type, 'ok');
    const offer = await b.waitFor((m) => m.type === 'subscribe-offer');
    assert.equal((await b.request({ type: 'subscribe-answer', sdp: answerTo(offer.sdp), version: 1 })).type, 'ok');
    assert.equal(await metric(server, 'kaiwa_sfu_transports'), 2);

    assert.equal((await c.request({ type: 'leave' })).type, 'ok');
    for (const x of [a, b]) await x.waitFor((m) => m.type === 'media-mode' && m.mode === 'mesh');
    const switched = Date.now();
    await sleep(500);
    assert.equal(await metric(server, 'kaiwa_sfu_transports'), 2, 'kept after the switch to mesh');
    assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS })).code, 'not-sfu');
    // a's unpublish ends a's transport at once; b's goes when the 10 s are over.
    assert.equal((await a.request({ type: 'unpublish' })).type, 'ok');
    assert.equal(await metric(server, 'kaiwa_sfu_transports'), 1);
    await metricBecomes(server, 'kaiwa_sfu_transports', 0, 15_000);
    const waited = Date.now() - switched;
    assert.ok(waited >= 9000 && waited < 14_000, `b's transport ended ${waited} ms after the switch`);
  });
});
