// The SFU end to end: one Chromium page publishes its fake camera and microphone with WHIP, two pages play the room
// with WHEP, all through kaiwa's media port. Both viewers must decode video (framesDecoded grows, a frame size is
// set) and receive audio (totalSamplesReceived grows): any break in the transports or the forwarding fails it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, sleep, startServer, uniqueRoom, WAIT } from './helpers.mjs';

let server;
let browser;

before(async () => {
  const sfuPort = await freeUdpTcpPort();
  server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`] });
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

async function publish(page, room) {
  return page.evaluate(async (room) => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    const pc = new RTCPeerConnection();
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(`/whip/${room}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(`WHIP ${res.status}: ${await res.text()}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    window.pc = pc;
    return res.headers.get('Location');
  }, room);
}

async function view(page, room) {
  return page.evaluate(async (room) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    document.body.append(video);
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      video.srcObject = stream;
    };
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(`/whep/${room}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${await res.text()}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    window.pc = pc;
    return res.headers.get('Location');
  }, room);
}

async function received(page) {
  return page.evaluate(async () => {
    const out = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, totalSamplesReceived: 0, state: window.pc.connectionState };
    (await window.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.framesDecoded = s.framesDecoded ?? 0;
        out.frameWidth = s.frameWidth ?? 0;
        out.frameHeight = s.frameHeight ?? 0;
      } else if (s.kind === 'audio') {
        out.totalSamplesReceived = s.totalSamplesReceived ?? 0;
      }
    });
    return out;
  });
}

test('a WHIP publisher reaches two WHEP viewers through the SFU', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('whip');
  const publisher = await openPage();
  const location = await publish(publisher, room);
  assert.match(location, new RegExp(`^/whip/${room}/`));
  const viewers = [await openPage(), await openPage()];
  for (const v of viewers) await view(v, room);

  const deadline = Date.now() + WAIT * 2;
  let first = null;
  let last = [];
  while (Date.now() < deadline) {
    last = await Promise.all(viewers.map(received));
    if (last.every((s) => s.framesDecoded > 0 && s.totalSamplesReceived > 0)) {
      if (!first) first = last;
      else if (last.every((s, i) => s.framesDecoded > first[i].framesDecoded + 10 &&
        s.totalSamplesReceived > first[i].totalSamplesReceived)) break;
    }
    await sleep(250);
  }
  for (const [i, s] of last.entries()) {
    assert.ok(first, `viewer ${i} never decoded: ${JSON.stringify(last)}\n${server.logs().slice(-2000)}`);
    assert.ok(s.framesDecoded > first[i].framesDecoded + 10, `viewer ${i} frames: ${JSON.stringify(s)}`);
    assert.ok(s.frameWidth > 0 && s.frameHeight > 0, `viewer ${i} frame size: ${JSON.stringify(s)}`);
    assert.ok(s.totalSamplesReceived > first[i].totalSamplesReceived, `viewer ${i} audio: ${JSON.stringify(s)}`);
  }
  if (process.env.DEBUG) console.log(JSON.stringify(last));
  await sleep(1100); // the workers publish their counts once a second
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const value = (name) => Number(metrics.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1] ?? 0);
  const sfu = metrics.split('\n').filter((l) => l.startsWith('kaiwa_sfu')).join('\n');
  assert.ok(value('kaiwa_sfu_rtp_in_total') > 0 && value('kaiwa_sfu_forwarded_total') > 0, sfu);
  assert.equal(value('kaiwa_sfu_transports'), 3);
  if (process.env.DEBUG) console.log(sfu);
  const res = await fetch(`${server.url}${location}`, { method: 'DELETE' });
  assert.equal(res.status, 200);
});
