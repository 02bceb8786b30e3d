// Two headless Chromium pages of the web app in one room, forced through kaiwa's own TURN: the RTCPeerConnection
// config gets iceTransportPolicy 'relay' and the only ICE servers are what /api/ice-servers hands out (kaiwa's
// stun:/turn: URLs with fresh REST credentials). The call must connect with a `relay` candidate pair selected on
// both sides, and kaiwa's /metrics must show ChannelData relayed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  freeUdpTcpPort, launchBrowser, openPeer, serverMetric, startServer, uniqueRoom, waitForMediaFlow, waitForRemoteVideo,
} from './helpers.mjs';

let server;
let browser;

// Every RTCPeerConnection the page makes is relay-only.
const RELAY_ONLY = () => {
  const Native = window.RTCPeerConnection;
  const Relay = function (config, ...rest) {
    return new Native({ ...(config ?? {}), iceTransportPolicy: 'relay' }, ...rest);
  };
  Relay.prototype = Native.prototype;
  Object.setPrototypeOf(Relay, Native);
  window.RTCPeerConnection = Relay;
  const set = Native.prototype.setConfiguration;
  Native.prototype.setConfiguration = function (c) {
    return set.call(this, { ...(c ?? {}), iceTransportPolicy: 'relay' });
  };
};

async function selectedPair(page, peerId) {
  return page.evaluate(async (id) => {
    const pc = window.kaiwa.room.peerConnection(id);
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return { local: local?.candidateType, remote: remote?.candidateType, policy: pc.getConfiguration().iceTransportPolicy,
      servers: pc.getConfiguration().iceServers.flatMap((s) => s.urls) };
  }, peerId);
}

const metric = (name) => serverMetric(server, name);

before(async () => {
  const turnPort = await freeUdpTcpPort();
  server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-allow-peer', '127.0.0.0/8',
      '--turn-ports', '45000-49999'],
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a call connects through kaiwa TURN only (relay pair on both sides, ChannelData in /metrics)',
  { timeout: 90_000 }, async () => {
    const ice = await (await fetch(`${server.url}/api/ice-servers`)).json();
    assert.ok(ice.iceServers.some((s) => s.urls.some((u) => u.startsWith('turn:')) && s.username && s.credential),
      JSON.stringify(ice));
    const room = uniqueRoom('turn');
    const a = await openPeer(browser, server, room, 'Alice', { initScript: RELAY_ONLY });
    const b = await openPeer(browser, server, room, 'Bob', { initScript: RELAY_ONLY });
    try {
      await Promise.all([waitForRemoteVideo(a.page, b.id, 45_000), waitForRemoteVideo(b.page, a.id, 45_000)]);
      await Promise.all([waitForMediaFlow(a.page, b.id), waitForMediaFlow(b.page, a.id)]);
      for (const [page, other] of [[a.page, b.id], [b.page, a.id]]) {
        const pair = await selectedPair(page, other);
        assert.ok(pair, 'no selected candidate pair');
        assert.equal(pair.policy, 'relay');
        assert.ok(pair.servers.every((u) => /^(stun|turn):127\.0\.0\.1:/.test(u)), JSON.stringify(pair.servers));
        assert.equal(pair.local, 'relay', JSON.stringify(pair));
      }
      await new Promise((r) => setTimeout(r, 1200));  // TURN metrics are published once a second
      assert.ok(await metric('kaiwa_turn_channeldata_in_total') > 0);
      assert.ok(await metric('kaiwa_turn_channeldata_out_total') > 0);
      assert.ok(await metric('kaiwa_turn_allocations') >= 2);
    } finally {
      await a.close();
      await b.close();
    }
  });
