// Four Chromium pages in one `media: 'sfu'` room of the native protocol, driven with the raw protocol (a WebSocket
// and two RTCPeerConnections per page, not the SDK): each publishes its fake camera and microphone, each decodes the
// three others' video and receives their audio, through kaiwa's media port only. Then one leaves: the others get a
// subscribe-offer with its m-lines inactive, and the remaining video goes on decoding.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, sleep, startServer, uniqueRoom, WAIT } from './helpers.mjs';

let server;
let browser;
let sfuPort;

before(async () => {
  sfuPort = await freeUdpTcpPort();
  server = await startServer({
    extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`, ...(process.env.DEBUG ? ['--log-level', 'debug'] : [])],
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// Joins `room` in a fresh page, publishes camera and microphone, answers every subscribe-offer in order.
async function member(room, name) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  await page.goto(`${server.url}/healthz`);
  const peer = await page.evaluate(async ({ room, name }) => {
    const ws = new WebSocket(`ws://${location.host}/ws?room=${room}`);
    window.ws = ws;
    window.offers = [];
    window.errors = [];
    let nextId = 1;
    const pending = new Map();
    const request = (msg) => new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ v: 1, id, ...msg }));
    });
    window.request = request;
    const sub = new RTCPeerConnection();
    window.sub = sub;
    // Chromium decodes a remote audio track only when something plays it: each track gets a (muted) element.
    sub.ontrack = (e) => {
      const el = document.createElement(e.track.kind === 'video' ? 'video' : 'audio');
      el.muted = true;
      el.autoplay = true;
      el.srcObject = new MediaStream([e.track]);
      document.body.append(el);
    };
    let chain = Promise.resolve();
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if ((m.type === 'ok' || m.type === 'error') && pending.has(m.re)) {
        const p = pending.get(m.re);
        pending.delete(m.re);
        if (m.type === 'ok') p.resolve(m); else p.reject(new Error(`${m.code}: ${m.message}`));
      } else if (m.type === 'error') {
        window.errors.push(m);
      } else if (m.type === 'subscribe-offer') {
        window.offers.push(m);
        // One at a time, in order: kaiwa sends the next offer only after this answer.
        chain = chain.then(async () => {
          await sub.setRemoteDescription({ type: 'offer', sdp: m.sdp });
          await sub.setLocalDescription(await sub.createAnswer());
          await request({ type: 'subscribe-answer', sdp: sub.localDescription.sdp, version: m.version });
        }).catch((err) => window.errors.push(String(err)));
      }
    };
    await new Promise((resolve) => { ws.onopen = resolve; });
    const joined = await request({ type: 'join', room, name, media: 'sfu' });
    if (joined.media !== 'sfu' || joined.mediaPolicy !== 'sfu') throw new Error(`mode ${JSON.stringify(joined)}`);
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    const pub = new RTCPeerConnection();
    window.pub = pub;
    const sources = [];
    for (const track of stream.getTracks()) {
      sources.push([pub.addTransceiver(track, { direction: 'sendonly', streams: [stream] }),
        track.kind === 'video' ? 'camera' : 'microphone']);
    }
    await pub.setLocalDescription(await pub.createOffer());
    const tracks = sources.map(([t, source]) => ({ mid: t.mid, source }));
    const ok = await request({ type: 'publish', sdp: pub.localDescription.sdp, tracks });
    await pub.setRemoteDescription({ type: 'answer', sdp: ok.sdp });
    return joined.peer;
  }, { room, name });
  return { page, peer, context };
}

// Per remote track ("<peer>:<source>"): frames decoded or audio samples received, from getStats.
async function received(page) {
  return page.evaluate(async () => {
    const out = {};
    window.subStats = await window.sub.getStats();
    window.subStats.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out[s.trackIdentifier] = s.kind === 'video' ? (s.framesDecoded ?? 0) : (s.totalSamplesReceived ?? 0);
    });
    return out;
  });
}

// The remote port of each peer connection's selected candidate pair.
async function remotePorts(page) {
  return page.evaluate(async () => {
    const ports = [];
    for (const pc of [window.pub, window.sub]) {
      const stats = await pc.getStats();
      let port = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) {
          const pair = stats.get(s.selectedCandidatePairId);
          port = stats.get(pair.remoteCandidateId)?.port ?? null;
        }
      });
      ports.push(port);
    }
    return ports;
  });
}

// Waits until every page receives every other member's tracks and they keep growing.
async function waitForFlow(members, expect) {
  const deadline = Date.now() + WAIT * 2;
  let first = null;
  let last = [];
  const complete = (stats, i) => expect(i).every((key) => (stats[key] ?? 0) > 0);
  while (Date.now() < deadline) {
    last = await Promise.all(members.map((m) => received(m.page)));
    if (last.every(complete)) {
      if (!first) first = last;
      else if (last.every((s, i) => expect(i).every((key) => s[key] > first[i][key]))) return last;
    }
    await sleep(300);
  }
  const errors = await Promise.all(members.map((m) => m.page.evaluate(() => ({
    errors: window.errors, pub: window.pub.connectionState, sub: window.sub.connectionState,
    offers: window.offers.map((o) => [o.version, o.tracks.length]),
    pairs: [...window.subStats.values()].filter((x) => x.type === 'candidate-pair')
      .map((x) => [x.state, x.requestsSent, x.responsesReceived, x.nominated]),
    dtls: [...window.subStats.values()].filter((x) => x.type === 'transport').map((x) => x.dtlsState),
  }))));
  assert.fail(`media did not flow: ${JSON.stringify(last)} pages ${JSON.stringify(errors)}\n` +
    server.logs().slice(-3000));
}

test('four pages in an sfu room see and hear each other through kaiwa, and one leaving ends its tracks',
  { timeout: 180_000 }, async () => {
    const room = uniqueRoom('sfu');
    const members = [];
    for (const name of ['ann', 'bob', 'cat']) members.push(await member(room, name));
    // The late joiner: how long until it has decoded a frame of each of the three others (each new subscription
    // asks its publisher for a keyframe). Reported, not asserted: wall-clock time depends on the machine's load.
    const joinedAt = Date.now();
    members.push(await member(room, 'dan'));
    const late = members[3];
    const cameras = members.slice(0, 3).map((m) => `${m.peer}:camera`);
    await late.page.waitForFunction(async (keys) => {
      const decoded = {};
      (await window.sub.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') decoded[s.trackIdentifier] = s.framesDecoded; });
      return keys.every((k) => decoded[k] > 0);
    }, cameras, { timeout: WAIT, polling: 50 });
    console.log(`late joiner: first frame of each of 3 publishers ${Date.now() - joinedAt} ms after its join began`);
    const others = (i) => members.filter((_, j) => j !== i)
      .flatMap((m) => [`${m.peer}:camera`, `${m.peer}:microphone`]);
    await waitForFlow(members, others);

    for (const m of members) {
      assert.deepEqual(await remotePorts(m.page), [sfuPort, sfuPort], 'both peer connections end at the media port');
      const offers = await m.page.evaluate(() => window.offers.map((o) => ({ version: o.version, tracks: o.tracks })));
      // Versions count up from 1, and the newest lists the three others' camera and microphone, never its own.
      assert.deepEqual(offers.map((o) => o.version), offers.map((_, i) => i + 1));
      const newest = offers.at(-1).tracks;
      assert.equal(newest.length, 6);
      assert.ok(newest.every((t) => t.peer !== m.peer));
    }

    // dan leaves: the others get an offer with its m-lines inactive, and the others' video goes on.
    const leaving = members.pop();
    const before = await Promise.all(members.map((m) => m.page.evaluate(() => window.offers.length)));
    await leaving.page.evaluate(() => window.request({ type: 'leave' }));
    await leaving.context.close();
    for (const [i, m] of members.entries()) {
      await m.page.waitForFunction((n) => window.offers.length > n, before[i], { timeout: WAIT });
      const offer = await m.page.evaluate(() => window.offers.at(-1));
      assert.ok(offer.tracks.every((t) => t.peer !== leaving.peer), JSON.stringify(offer.tracks));
      assert.equal(offer.tracks.length, 4);
      const inactive = offer.sdp.split(/\r?\n/).filter((l) => l === 'a=inactive').length;
      assert.equal(inactive, 2, offer.sdp);
    }
    const remaining = (i) => members.filter((_, j) => j !== i).map((m) => `${m.peer}:camera`);
    await waitForFlow(members, remaining);
  });
