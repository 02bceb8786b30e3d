// The SFU behind a strict firewall: a WHIP publisher and a WHEP viewer whose RTCPeerConnections may use only relay
// candidates, and whose only ICE servers are what kaiwa's /api/ice-servers hands out (its own TURN, with fresh REST
// credentials). Their ICE checks and media reach kaiwa's media port through kaiwa's TURN relay, so the selected pair
// must be `relay` on the page's side, the viewer must decode the publisher's video and hear its audio, and TURN's
// counters must show the media relayed. kaiwa is ICE-lite and learns each page's relayed address from its checks
// (peer-reflexive), so no candidate needs to be sent to it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, serverMetric, sleep, startServer, uniqueRoom, WAIT } from './helpers.mjs';
import { connect, mediaState, openMediaPage, waitForPlayback } from './whip-client.mjs';

let server;
let browser;

before(async () => {
  const turnPort = await freeUdpTcpPort();
  const sfuPort = await freeUdpTcpPort();
  server = await startServer({
    // The media port is on loopback here, which kaiwa's TURN refuses as a peer unless allowed.
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-allow-peer', '127.0.0.0/8',
      '--turn-ports', '45000-49999', '--sfu-listen', `127.0.0.1:${sfuPort}`],
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const openPage = () => openMediaPage(browser, server);

const metric = (name) => serverMetric(server, name);

test('a relay-only WHIP publisher and WHEP viewer reach the SFU through kaiwa TURN', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('sfurelay');
  const publisher = await openPage();
  const viewer = await openPage();
  await connect(publisher, `/whip/${room}`, { relay: true });
  await connect(viewer, `/whep/${room}`, { relay: true });
  const first = await mediaState(viewer);
  const v = await waitForPlayback(viewer, WAIT * 2).catch((e) => assert.fail(`${e.message}\n${server.logs().slice(-2000)}`));
  assert.ok(v.totalSamplesReceived > first.totalSamplesReceived, `audio is played: ${JSON.stringify(v)}`);

  const p = await mediaState(publisher);
  for (const [who, s] of [['publisher', p], ['viewer', v]]) {
    assert.equal(s.connection, 'connected', `${who}: ${JSON.stringify(s)}`);
    assert.equal(s.local, 'relay', `${who} must send through TURN: ${JSON.stringify(s)}`);
    assert.ok(s.servers.every((u) => /^(stun|turn):127\.0\.0\.1:/.test(u)), JSON.stringify(s.servers));
  }
  await sleep(1200); // TURN and SFU metrics are published once a second
  assert.ok(await metric('kaiwa_turn_allocations') >= 2);
  // The publisher's media went to the SFU through a relay, and the SFU's copy came back to the viewer through one
  // (the test ends after a few seconds of media: ~80 kB each way is typical).
  assert.ok(await metric('kaiwa_turn_bytes_to_peers_total') > 20_000, 'publisher → SFU through TURN');
  assert.ok(await metric('kaiwa_turn_bytes_to_clients_total') > 20_000, 'SFU → viewer through TURN');
  assert.ok(await metric('kaiwa_sfu_forwarded_total') > 0);
});
