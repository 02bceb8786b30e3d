// The SFU end to end: one Chromium page publishes its fake camera and microphone with WHIP, two pages play the room
// with WHEP, all through kaiwa's media port. Both viewers must decode video (framesDecoded grows, a frame size is
// set) and receive audio (totalSamplesReceived grows): any break in the transports or the forwarding fails it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, sleep, startServer, uniqueRoom, WAIT } from './helpers.mjs';
import { connect, mediaState, openMediaPage } from './whip-client.mjs';

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

const openPage = () => openMediaPage(browser, server);

test('a WHIP publisher reaches two WHEP viewers through the SFU', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('whip');
  const publisher = await openPage();
  const location = await connect(publisher, `/whip/${room}`);
  assert.match(location, new RegExp(`^/whip/${room}/`));
  const viewers = [await openPage(), await openPage()];
  for (const v of viewers) await connect(v, `/whep/${room}`);

  const deadline = Date.now() + WAIT * 2;
  let first = null;
  let last = [];
  while (Date.now() < deadline) {
    last = await Promise.all(viewers.map(mediaState));
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
