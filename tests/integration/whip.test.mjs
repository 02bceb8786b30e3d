// WHIP (RFC 9725) and WHEP over HTTP, without media: 201 with Location, ETag and an SDP answer for an offer from the
// captured vectors; 400 for a body that is no offer; 401 without a room token under --auth-secret; 404 for an
// unknown session; PATCH 204; DELETE 200 and the session gone; OPTIONS with CORS and Accept-Post; a viewer before
// any publisher 409. The media itself is tests/e2e/whip.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { networkInterfaces } from 'node:os';
import { freeUdpTcpPort, startServer, ROOT, uniqueRoom } from '../e2e/helpers.mjs';

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
    assert.equal(second.status, 409, 'one publisher per room');

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
