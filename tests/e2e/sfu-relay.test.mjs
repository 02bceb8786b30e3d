// The SFU behind a strict firewall: a WHIP publisher and a WHEP viewer whose RTCPeerConnections may use only relay
// candidates, and whose only ICE servers are what kaiwa's /api/ice-servers hands out (its own TURN, with fresh REST
// credentials). Their ICE checks and media reach kaiwa's media port through kaiwa's TURN relay, so the selected pair
// must be `relay` on the page's side, the viewer must decode the publisher's video and hear its audio, and TURN's
// counters must show the media relayed. kaiwa is ICE-lite and learns each page's relayed address from its checks
// (peer-reflexive), so no candidate needs to be sent to it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, sleep, startServer, uniqueRoom, WAIT } from './helpers.mjs';

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

async function openPage() {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  await page.goto(`${server.url}/healthz`);
  return page;
}

// Opens a relay-only peer connection on the page (window.pc), sends its offer to `path` (WHIP or WHEP) once ICE
// gathering is complete, and applies the answer. `publish` sends the fake camera and microphone, else receives.
async function connect(page, path, publish) {
  return page.evaluate(async ({ path, publish }) => {
    const { iceServers } = await (await fetch('/api/ice-servers')).json();
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
    window.pc = pc;
    if (publish) {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      // Played in an element, as a viewer would: Chromium renders received audio (totalSamplesReceived) only then.
      const video = Object.assign(document.createElement('video'), { muted: true, autoplay: true, playsInline: true });
      document.body.append(video);
      const stream = new MediaStream();
      pc.ontrack = (e) => {
        stream.addTrack(e.track);
        video.srcObject = stream;
      };
    }
    await pc.setLocalDescription(await pc.createOffer());
    // The relayed candidates are in the offer once gathering completes (kaiwa does not need them, but a WHIP client
    // that sends them is the common case and they must not confuse it).
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 5000);
    });
    const res = await fetch(path, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(`${path} ${res.status}: ${await res.text()}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    return res.headers.get('Location');
  }, { path, publish });
}

// The page's selected candidate pair and what the viewer has decoded so far.
async function state(page) {
  return page.evaluate(async () => {
    const stats = await window.pc.getStats();
    const out = { connection: window.pc.connectionState, local: null, remote: null, framesDecoded: 0,
      totalSamplesReceived: 0, servers: window.pc.getConfiguration().iceServers.flatMap((s) => s.urls) };
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const pair = stats.get(s.selectedCandidatePairId);
        out.local = stats.get(pair?.localCandidateId)?.candidateType ?? null;
        out.remote = stats.get(pair?.remoteCandidateId)?.candidateType ?? null;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded = s.framesDecoded ?? 0;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.totalSamplesReceived = s.totalSamplesReceived ?? 0;
    });
    return out;
  });
}

async function metric(name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
  return m ? Number(m[1]) : NaN;
}

test('a relay-only WHIP publisher and WHEP viewer reach the SFU through kaiwa TURN', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('sfurelay');
  const publisher = await openPage();
  const viewer = await openPage();
  await connect(publisher, `/whip/${room}`, true);
  await connect(viewer, `/whep/${room}`, false);

  const deadline = Date.now() + WAIT * 2;
  let first = null;
  let v;
  while (Date.now() < deadline) {
    v = await state(viewer);
    if (v.framesDecoded > 0 && v.totalSamplesReceived > 0) {
      if (!first) first = v;
      else if (v.framesDecoded > first.framesDecoded + 10 && v.totalSamplesReceived > first.totalSamplesReceived) break;
    }
    await sleep(250);
  }
  assert.ok(first, `the viewer never decoded: ${JSON.stringify(v)}\n${server.logs().slice(-2000)}`);
  assert.ok(v.framesDecoded > first.framesDecoded + 10, JSON.stringify(v));
  assert.ok(v.totalSamplesReceived > first.totalSamplesReceived, JSON.stringify(v));

  const p = await state(publisher);
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
