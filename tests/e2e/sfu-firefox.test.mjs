// The SFU with Firefox (Debian's firefox-esr over WebDriver BiDi, firefox.mjs): Firefox offers other payload types,
// header extension ids and a=ssrc lines than Chromium, and takes the DTLS client role itself. A Firefox WHIP
// publisher must reach a Chromium WHEP viewer, and a Chromium publisher a Firefox viewer, through kaiwa's media port,
// each with video decoding and audio arriving at the viewer. A missing Firefox fails the test (as firefox.test.mjs).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchFirefox } from './firefox.mjs';
import { freeUdpTcpPort, launchBrowser, startServer, uniqueRoom, WAIT } from './helpers.mjs';
import { connect, waitForPlayback } from './whip-client.mjs';

let server;
let firefox;
let chromium;

before(async () => {
  const sfuPort = await freeUdpTcpPort();
  server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`] });
  firefox = await launchFirefox();
  chromium = await launchBrowser();
});

after(async () => {
  await firefox?.close();
  await chromium?.close();
  await server?.stop();
});

async function chromiumPage() {
  const context = await chromium.newContext({ permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  await page.goto(`${server.url}/healthz`);
  return page;
}

async function firefoxPage(name) {
  const page = await firefox.newPage({ name });
  await page.goto(`${server.url}/healthz`);
  return page;
}

async function sessionsGone(locations) {
  for (const location of locations) {
    const res = await fetch(`${server.url}${location}`, { method: 'DELETE' });
    assert.equal(res.status, 200, location);
  }
}

test('a Firefox WHIP publisher reaches a Chromium WHEP viewer', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('sfuff');
  const publisher = await firefoxPage('ff-publisher');
  const viewer = await chromiumPage();
  try {
    const locations = [await connect(publisher, `/whip/${room}`), await connect(viewer, `/whep/${room}`)];
    const v = await waitForPlayback(viewer, WAIT * 2, 'the Chromium viewer')
      .catch((e) => assert.fail(`${e.message}\n${server.logs().slice(-2000)}`));
    assert.ok(v.frameWidth > 0, JSON.stringify(v));
    await sessionsGone(locations);
  } finally {
    await publisher.close();
  }
});

test('a Chromium WHIP publisher reaches a Firefox WHEP viewer', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('sfuff');
  const publisher = await chromiumPage();
  const viewer = await firefoxPage('ff-viewer');
  try {
    const locations = [
      await connect(publisher, `/whip/${room}`),
      await connect(viewer, `/whep/${room}`, { capture: true }),
    ];
    const v = await waitForPlayback(viewer, WAIT * 2, 'the Firefox viewer')
      .catch((e) => assert.fail(`${e.message}\n${server.logs().slice(-2000)}`));
    assert.ok(v.frameWidth > 0, JSON.stringify(v));
    await sessionsGone(locations);
  } finally {
    await viewer.close();
  }
});
