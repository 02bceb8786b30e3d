// WHIP (RFC 9725) and WHEP over HTTP, without media: 201 with Location, ETag and an SDP answer for an offer from the
// captured vectors; 400 for a body that is no offer; 401 without a room token under --auth-secret; 404 for an
// unknown session; PATCH 204; DELETE 200 and the session gone; OPTIONS with CORS and Accept-Post; a viewer before
// any publisher 409; RFC 9725's 415, 412 and ICE restart by PATCH; a WHIP publisher as a room member (roster, auto
// goes sfu, 409 in a mesh room, the member limit) and WHEP of a room the native door publishes in. The media itself
// is tests/e2e/whip.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { networkInterfaces } from 'node:os';
import { freeUdpTcpPort, startServer, ROOT, uniqueRoom } from '../e2e/helpers.mjs';
import { Client } from './client.mjs';

const BIN = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');
const vector = (name) => readFileSync(join(ROOT, 'tests/unit/sdp/vectors', name), 'utf8');
const PUBLISHER = vector('chromium156_audio_video.sdp');
const VIEWER = vector('chromium156_recvonly.sdp');

async function withServer(args, fn) {
  const sfuPort = await freeUdpTcpPort();
  const server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`, ...args] });
  try {
    await fn(server, sfuPort);
  } finally {
    await server.stop();
  }
}

const post = (server, path, body, headers = {}) => fetch(`${server.url}${path}`, {
  method: 'POST', headers: { 'Content-Type': 'application/sdp', ...headers }, body,
});

test('WHIP and WHEP: 201 with Location, ETag and answer; PATCH, DELETE, 404, 400, 409, OPTIONS', async () => {
  await withServer([], async (server, sfuPort) => {
    const room = uniqueRoom('whip');
    const early = await post(server, `/whep/${room}`, VIEWER);
    assert.equal(early.status, 409, 'a viewer before any publisher');

    const res = await post(server, `/whip/${room}`, PUBLISHER);
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal(res.headers.get('content-type'), 'application/sdp');
    const location = res.headers.get('location');
    assert.match(location, new RegExp(`^/whip/${room}/[0-9a-f]+\\.[A-Za-z0-9]+$`));
    assert.match(res.headers.get('etag'), /^"w\d+x/);
    const answer = await res.text();
    assert.match(answer, /^v=0\r\n/);
    assert.match(answer, /a=ice-lite/);
    assert.match(answer, /a=recvonly/);
    assert.match(answer, new RegExp(`a=candidate:\\S+ 1 udp \\d+ 127\\.0\\.0\\.1 ${sfuPort} typ host`));

    const second = await post(server, `/whip/${room}`, PUBLISHER);
    assert.equal(second.status, 201, 'a second publisher is a second member of the room');

    const viewer = await post(server, `/whep/${room}`, VIEWER);
    assert.equal(viewer.status, 201, await viewer.clone().text());
    const viewerAnswer = await viewer.text();
    assert.match(viewerAnswer, /a=sendonly/);
    assert.match(viewerAnswer, /a=ssrc:\d+ cname:kaiwa/);
    const viewerLocation = viewer.headers.get('location');
    assert.match(viewerLocation, new RegExp(`^/whep/${room}/`));

    const patch = await fetch(`${server.url}${location}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' }, body: 'a=end-of-candidates\r\n',
    });
    assert.equal(patch.status, 204);

    const bad = await post(server, `/whip/${uniqueRoom('whip')}`, 'hello');
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /not a valid SDP offer/);
    const noBundle = await post(server, `/whip/${uniqueRoom('whip')}`, PUBLISHER.replace(/a=group:BUNDLE[^\r\n]*\r\n/, ''));
    assert.equal(noBundle.status, 400);
    assert.match(await noBundle.text(), /BUNDLE/);

    const unknown = await fetch(`${server.url}${location.replace(/\.[A-Za-z0-9]+$/, '.nope')}`, { method: 'DELETE' });
    assert.equal(unknown.status, 404);

    const options = await fetch(`${server.url}/whip/${room}`, { method: 'OPTIONS' });
    assert.ok(options.status === 204 || options.status === 200, String(options.status));
    assert.equal(options.headers.get('accept-post'), 'application/sdp');
    assert.equal(options.headers.get('access-control-allow-origin'), '*');
    assert.match(options.headers.get('access-control-allow-methods'), /POST/);
    assert.match(options.headers.get('access-control-allow-headers'), /Authorization/);

    assert.equal((await fetch(`${server.url}${viewerLocation}`, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(`${server.url}${location}`, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(`${server.url}${location}`, { method: 'DELETE' })).status, 404, 'gone after DELETE');
    const again = await post(server, `/whip/${room}`, PUBLISHER);
    assert.equal(again.status, 201, 'the room takes a publisher again');
  });
});

test('RFC 9725: 415 for other content types, PATCH trickle 204, ICE restart 200 with a new ETag, stale If-Match 412', async () => {
  await withServer([], async (server, sfuPort) => {
    const room = uniqueRoom('whip');
    for (const type of ['text/plain', 'application/json', '']) {
      const res = await fetch(`${server.url}/whip/${room}`, {
        method: 'POST', headers: type ? { 'Content-Type': type } : {}, body: PUBLISHER,
      });
      assert.equal(res.status, 415, `POST as '${type}'`);
      assert.equal(res.headers.get('accept-post'), 'application/sdp');
    }
    // Parameters and case do not matter (RFC 9110 section 8.3.1).
    const res = await post(server, `/whip/${room}`, PUBLISHER, { 'Content-Type': 'Application/SDP; charset=utf-8' });
    assert.equal(res.status, 201, await res.clone().text());
    const location = res.headers.get('location');
    const etag = res.headers.get('etag');
    const patch = (body, headers = {}) => fetch(`${server.url}${location}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', ...headers }, body,
    });

    const wrongType = await fetch(`${server.url}${location}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/sdp' }, body: 'a=end-of-candidates\r\n',
    });
    assert.equal(wrongType.status, 415);
    assert.equal(wrongType.headers.get('accept-patch'), 'application/trickle-ice-sdpfrag');

    const trickle = 'a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n' +
      'a=mid:0\r\na=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host\r\n';
    // The offer's own credentials: trickled candidates, not a restart.
    const offerUfrag = PUBLISHER.match(/a=ice-ufrag:(\S+)/)[1];
    const offerPwd = PUBLISHER.match(/a=ice-pwd:(\S+)/)[1];
    const sameIce = trickle.replace('EsAw', offerUfrag).replace('bP+XJMM09aR8AiX1jdukzR6Y', offerPwd);
    assert.equal((await patch(sameIce, { 'If-Match': etag })).status, 204);
    assert.equal((await patch('a=end-of-candidates\r\n')).status, 204, 'no If-Match: taken as it is');
    assert.equal((await patch('a=end-of-candidates\r\n', { 'If-Match': '"w0xstale"' })).status, 412);
    assert.equal((await patch('a=ice-ufrag:abcd\r\n')).status, 400, 'a ufrag without a password');
    assert.equal((await patch('x=1\r\n')).status, 400);

    // An ICE restart: new credentials from the client, kaiwa's new ones and candidates back, a new ETag.
    const restart = await patch(trickle, { 'If-Match': '*' });
    assert.equal(restart.status, 200, await restart.clone().text());
    assert.equal(restart.headers.get('content-type'), 'application/trickle-ice-sdpfrag');
    const newEtag = restart.headers.get('etag');
    assert.match(newEtag, /^"w\d+x/);
    assert.notEqual(newEtag, etag);
    const frag = await restart.text();
    assert.match(frag, /^a=ice-lite\r\na=ice-ufrag:(\S+)\r\na=ice-pwd:(\S+)\r\nm=audio 9 UDP\/TLS\/RTP\/SAVPF 111\r\na=mid:0\r\n/);
    assert.equal(`"${frag.match(/a=ice-ufrag:(\S+)/)[1]}"`, newEtag, 'the ETag names the new ICE session');
    assert.notEqual(frag.match(/a=ice-pwd:(\S+)/)[1], (await res.clone().text()).match(/a=ice-pwd:(\S+)/)[1]);
    assert.match(frag, new RegExp(`a=candidate:\\S+ 1 udp \\d+ 127\\.0\\.0\\.1 ${sfuPort} typ host\r\n`));
    assert.match(frag, /a=end-of-candidates\r\n$/);

    // The old ETag is stale now; the new one holds; the same credentials again are no second restart.
    assert.equal((await patch('a=end-of-candidates\r\n', { 'If-Match': etag })).status, 412);
    assert.equal((await patch(trickle, { 'If-Match': newEtag })).status, 204);
    // A second restart works too (the transport's older ufrag is let go).
    const again = await patch(trickle.replaceAll('EsAw', 'Zz9+'), { 'If-Match': '*' });
    assert.equal(again.status, 200, await again.clone().text());
    assert.notEqual(again.headers.get('etag'), newEtag);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^kaiwa_sfu_ice_restarts_total 2$/m);

    // WHEP sessions restart the same way.
    const viewer = await post(server, `/whep/${room}`, VIEWER);
    assert.equal(viewer.status, 201);
    const viewerRestart = await fetch(`${server.url}${viewer.headers.get('location')}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*' }, body: trickle,
    });
    assert.equal(viewerRestart.status, 200);
  });
});

test('a WHIP publisher is a room member: roster, auto goes sfu, its tracks offered, it leaves on DELETE', async () => {
  await withServer([], async (server) => {
    const room = uniqueRoom('whipm');
    const a = await Client.open(server);
    const b = await Client.open(server);
    try {
      assert.equal((await a.join(room, 'a')).media, 'mesh');
      assert.equal((await b.join(room, 'b')).media, 'mesh', 'two members: peer to peer');
      const res = await post(server, `/whip/${room}?name=OBS`, PUBLISHER);
      assert.equal(res.status, 201, await res.clone().text());
      const location = res.headers.get('location');
      for (const x of [a, b]) {
        const joined = await x.waitFor((m) => m.type === 'peer-joined' && m.peer.name === 'OBS');
        assert.match(joined.peer.id, /^whip/);
        await x.waitFor((m) => m.type === 'media-mode' && m.mode === 'sfu');
        // Its audio and video reach the others' subscribe connections as its microphone and camera.
        const offer = await x.waitFor((m) => m.type === 'subscribe-offer');
        assert.deepEqual(offer.tracks.map((t) => [t.peer, t.source, t.kind]).sort(),
          [[joined.peer.id, 'camera', 'video'], [joined.peer.id, 'microphone', 'audio']]);
      }
      const whipId = a.messages.find((m) => m.type === 'peer-joined' && m.peer.name === 'OBS').peer.id;
      // A third page sees it in the member list of its join.
      const c = await Client.open(server);
      const jc = await c.join(room, 'c');
      assert.ok(jc.peers.some((p) => p.id === whipId && p.name === 'OBS'), JSON.stringify(jc.peers));
      assert.equal((await c.request({ type: 'leave' })).type, 'ok');
      c.close();

      // The default name, and a second WHIP publisher in the same room.
      const second = await post(server, `/whip/${room}`, PUBLISHER);
      assert.equal(second.status, 201, await second.clone().text());
      await a.waitFor((m) => m.type === 'peer-joined' && m.peer.name === 'stream');
      const badName = await post(server, `/whip/${room}?name=%01`, PUBLISHER);
      assert.equal(badName.status, 400, 'a name that is no display name');

      assert.equal((await fetch(`${server.url}${location}`, { method: 'DELETE' })).status, 200);
      const left = await a.waitFor((m) => m.type === 'peer-left' && m.peer === whipId);
      assert.equal(left.reason, 'left');
      assert.equal((await fetch(`${server.url}${second.headers.get('location')}`, { method: 'DELETE' })).status, 200);
      // Two pages again, no WHIP publisher: back to peer to peer.
      await a.waitFor((m) => m.type === 'media-mode' && m.mode === 'mesh');
    } finally {
      a.close();
      b.close();
    }
  });
});

test('WHIP into a mesh room is 409; it counts against the members; WHEP views a room the web app publishes in',
  async () => {
    await withServer(['--peers-per-room', '2'], async (server) => {
      const mesh = uniqueRoom('mesh');
      const a = await Client.open(server);
      const b = await Client.open(server);
      try {
        assert.equal((await a.join(mesh, 'a', { media: 'mesh' })).mediaPolicy, 'mesh');
        const refused = await post(server, `/whip/${mesh}?name=OBS`, PUBLISHER);
        assert.equal(refused.status, 409);
        assert.match(await refused.text(), /mesh/);
        assert.ok(!a.messages.some((m) => m.type === 'peer-joined'), 'nobody joined');

        // The room's member limit (2 here) holds WHIP publishers too.
        const full = uniqueRoom('full');
        assert.equal((await b.join(full, 'b', { media: 'sfu' })).type, 'ok');
        const first = await post(server, `/whip/${full}?name=one`, PUBLISHER);
        assert.equal(first.status, 201, await first.clone().text());
        const over = await post(server, `/whip/${full}?name=two`, PUBLISHER);
        assert.equal(over.status, 503);
        assert.match(await over.text(), /full/);

        // A WHEP viewer of a room where a web-app member publishes (no WHIP publisher): its tracks are offered.
        const native = uniqueRoom('native');
        const c = await Client.open(server);
        try {
          assert.equal((await c.join(native, 'c', { media: 'sfu' })).type, 'ok');
          const early = await post(server, `/whep/${native}`, VIEWER);
          assert.equal(early.status, 409, 'nothing published yet');
          const published = await c.request({
            type: 'publish', sdp: PUBLISHER, tracks: [{ mid: '0', source: 'microphone' }, { mid: '1', source: 'camera' }],
          });
          assert.equal(published.type, 'ok', JSON.stringify(published));
          const viewer = await post(server, `/whep/${native}`, VIEWER);
          assert.equal(viewer.status, 201, await viewer.clone().text());
          const answer = await viewer.text();
          assert.equal((answer.match(/a=sendonly/g) ?? []).length, 2, 'audio and video sent');
          assert.match(answer, /m=audio [1-9]/);
          assert.match(answer, /m=video [1-9]/);
          assert.ok(!c.messages.some((m) => m.type === 'peer-joined'), 'a viewer is no member');
        } finally {
          c.close();
        }
      } finally {
        a.close();
        b.close();
      }
    });
  });

test('with --auth-secret WHIP and WHEP need a Bearer token for the room', async () => {
  const secret = 'whip-test-secret';
  const token = (room) =>
    execFileSync(BIN, ['token', '--room', room, '--user', 'u', '--secret', secret]).toString().trim();
  await withServer(['--auth-secret', secret], async (server) => {
    const room = uniqueRoom('whip');
    const none = await post(server, `/whip/${room}`, PUBLISHER);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    const wrong = await post(server, `/whip/${room}`, PUBLISHER, { Authorization: `Bearer ${token('other')}` });
    assert.equal(wrong.status, 401);
    const ok = await post(server, `/whip/${room}`, PUBLISHER, { Authorization: `Bearer ${token(room)}` });
    assert.equal(ok.status, 201, await ok.clone().text());
    const viewer = await post(server, `/whep/${room}`, VIEWER);
    assert.equal(viewer.status, 401);
    const location = ok.headers.get('location');
    assert.equal((await fetch(`${server.url}${location}`, { method: 'DELETE' })).status, 401);
    const del = await fetch(`${server.url}${location}`, {
      method: 'DELETE', headers: { Authorization: `Bearer ${token(room)}` },
    });
    assert.equal(del.status, 200);
  });
});

test('a media port on a wildcard address announces every interface address, loopback last', async () => {
  const sfuPort = await freeUdpTcpPort();
  const server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `0.0.0.0:${sfuPort}`] });
  try {
    const res = await post(server, `/whip/${uniqueRoom('wild')}`, PUBLISHER);
    assert.equal(res.status, 201, await res.clone().text());
    const answer = await res.text();
    const bundled = answer.split('\r\nm=')[1];  // the first m-line's candidates
    const announced = [...bundled.matchAll(/a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/g)].map((m) => {
      assert.equal(Number(m[2]), sfuPort);
      return m[1];
    });
    const own = Object.values(networkInterfaces()).flat()
      .filter((i) => i.family === 'IPv4' && !i.internal).map((i) => i.address);
    assert.deepEqual(announced.slice(0, -1).sort(), own.sort(), answer);
    assert.equal(announced.at(-1), '127.0.0.1', 'loopback last');
    assert.match(server.logs(), /candidates: .*127\.0\.0\.1/);
  } finally {
    await server.stop();
  }
});
