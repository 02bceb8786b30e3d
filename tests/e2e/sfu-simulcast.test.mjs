// Simulcast through the SFU (issue 15), with the SDK and the web app: a page in a `?media=sfu` room publishes its
// camera as three RID encodings; kaiwa gives the publisher transport-cc feedback and estimates the viewer's bandwidth
// from the viewer's transport-cc feedback; the viewer's tile size (the SDK's `tile-size`) picks the layer kaiwa
// forwards: a small tile gets a small picture, a hidden one none, and a large one the big picture again.
//
// The viewer's path limited to 300 kbit/s: tests/e2e/sfu-simulcast-limit.test.mjs.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  WAIT, freeUdpTcpPort, launchBrowser, openPeer, serverMetric, sleep, startServer, uniqueRoom, waitForRemoteVideo,
} from './helpers.mjs';
import { installVideoStats, sizeTile, videoStats } from './simulcast-pages.mjs';

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

test('a viewer gets the layer its tile needs, and kaiwa estimates its bandwidth', { timeout: 180_000 }, async () => {
  const room = uniqueRoom('simulcast');
  const pub = await openPeer(browser, server, room, 'Ann', { query: 'media=sfu' });
  const viewer = await openPeer(browser, server, room, 'Ben', { query: 'media=sfu', viewport: { width: 1280, height: 900 } });
  try {
    await waitForRemoteVideo(viewer.page, pub.id, 60_000);
    await installVideoStats(pub.page);
    await installVideoStats(viewer.page);
    // The camera goes out as RID encodings (Chromium sends as many as the captured size allows: three at 1280x720).
    await pub.page.waitForFunction(async () => (await window.__video()).rids.length >= 2, null,
      { timeout: WAIT, polling: 500 });

    // kaiwa's transport-cc both ways, and an estimate for the viewer (and for the publisher's subscribe connection).
    const waitMetric = async (name, min) => {
      const deadline = Date.now() + WAIT;
      let v = NaN;
      while (Date.now() < deadline) {
        v = await serverMetric(server, name);
        if (v >= min) return v;
        await sleep(500);
      }
      assert.fail(`${name} = ${v}, expected at least ${min}`);
    };
    await waitMetric('kaiwa_sfu_transport_feedback_sent_total', 1);
    await waitMetric('kaiwa_sfu_transport_feedback_received_total', 1);
    await waitMetric('kaiwa_sfu_bwe_estimate_bps_count', 1);
    assert.ok(await serverMetric(server, 'kaiwa_sfu_bwe_estimate_bps_sum') > 0);

    // A small tile: kaiwa forwards a layer no taller than the first that covers it (the quarter-size one at most
    // 180 rows when the camera gives 720; 240 when it gives 480 and Chromium sends fewer layers).
    await sizeTile(viewer.page, pub.id, [160, 90]);
    await viewer.page.waitForFunction(async () => {
      const { frameHeight } = await window.__video();
      return frameHeight > 0 && frameHeight <= 240;
    }, null, { timeout: 30_000, polling: 500 });
    const small = await videoStats(viewer.page);
    const switches = await serverMetric(server, 'kaiwa_sfu_layer_switches_total');
    assert.ok(switches >= 1, `layer switches: ${switches}`);

    // Hidden: nothing is forwarded (the decoded count stops).
    await sizeTile(viewer.page, pub.id, 'hidden');
    await sleep(2500);
    const stopped = (await videoStats(viewer.page)).framesDecoded;
    await sleep(2000);
    assert.ok((await videoStats(viewer.page)).framesDecoded - stopped <= 2, 'a hidden tile still receives video');

    // Large again: a taller layer comes back (after the selector's hold and a keyframe).
    await sizeTile(viewer.page, pub.id, [1200, 675]);
    await viewer.page.waitForFunction(async (h0) => (await window.__video()).frameHeight > h0, small.frameHeight,
      { timeout: 40_000, polling: 500 });
    assert.deepEqual(pub.errors.filter((e) => !e.includes('favicon')), []);
  } finally {
    await viewer.close();
    await pub.close();
  }
});
