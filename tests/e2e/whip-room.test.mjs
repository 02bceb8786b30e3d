// WHIP and WHEP with the rooms of the web app (docs/sfu.md, "WHIP and WHEP"): a Chromium WHIP publisher restarts ICE
// by PATCH (RFC 9725 section 4.4.1) and its WHEP viewer keeps decoding; a WHIP publisher named "OBS" is a tile whose
// video decodes at two web-app pages of its room; a WHEP viewer watches a room where a web-app page publishes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WAIT, freeUdpTcpPort, launchBrowser, openPeer, sleep, startServer, uniqueRoom, waitForRemoteVideo } from './helpers.mjs';
import { connect, openMediaPage, restartIce, selectedLocalUfrag, waitForPlayback } from './whip-client.mjs';

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
  const page = await openMediaPage(browser, server);
  return { page, close: () => page.context().close().catch(() => undefined) };
}

const metric = async (name) => {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1] ?? 0);
};

test('a WHIP publisher restarts ICE by PATCH; its new ICE generation carries the media and the viewer keeps decoding',
  { timeout: 120_000 }, async () => {
    const room = uniqueRoom('restart');
    const publisher = await openPage();
    const viewer = await openPage();
    try {
      const location = await connect(publisher.page, `/whip/${room}?name=Pub`, { gather: true });
      await connect(viewer.page, `/whep/${room}`);
      await waitForPlayback(viewer.page, WAIT * 2, 'viewer before the restart');
      const before = await selectedLocalUfrag(publisher.page);
      assert.ok(before, 'a selected pair before the restart');
      const restarts = await metric('kaiwa_sfu_ice_restarts_total');

      const r = await restartIce(publisher.page, location);
      assert.notEqual(r.ufrag, before);
      assert.equal(r.etag, `"${r.remoteUfrag}"`);
      assert.equal(await metric('kaiwa_sfu_ice_restarts_total'), restarts + 1);
      // Chromium moves to a pair of its new generation only when kaiwa answers its checks with the new password.
      const deadline = Date.now() + WAIT * 2;
      let now = before;
      while (Date.now() < deadline && now !== r.ufrag) {
        await sleep(250);
        now = await selectedLocalUfrag(publisher.page);
      }
      assert.equal(now, r.ufrag, 'the selected pair is of the new ICE generation');
      await waitForPlayback(viewer.page, WAIT * 2, 'viewer after the restart');
      const state = await publisher.page.evaluate(() => window.pc.connectionState);
      assert.equal(state, 'connected');
    } finally {
      await publisher.close();
      await viewer.close();
    }
  });

test('a WHIP publisher named OBS is a tile whose video decodes at two web-app pages of its room', { timeout: 120_000 },
  async () => {
    const room = uniqueRoom('obs');
    const pages = [await openPeer(browser, server, room, 'Ann'), await openPeer(browser, server, room, 'Ben')];
    const obs = await openPage();
    try {
      await connect(obs.page, `/whip/${room}?name=OBS`);
      for (const p of pages) {
        const obsId = await p.page.waitForFunction(() => {
          for (const [id, peer] of window.kaiwa.room.peers) if (peer.name === 'OBS') return id;
          return null;
        }, null, { timeout: WAIT, polling: 100 }).then((h) => h.jsonValue());
        assert.match(obsId, /^whip/);
        await waitForRemoteVideo(p.page, obsId, 60_000);
        const label = await p.page.getAttribute(`[data-testid="tile"][data-peer-id="${obsId}"]`, 'aria-label');
        assert.equal(label, 'OBS');
        assert.equal(await p.page.evaluate(() => window.kaiwa.room.mediaMode), 'sfu', 'a WHIP publisher makes auto sfu');
      }
      // The pages still see each other through kaiwa.
      await waitForRemoteVideo(pages[0].page, pages[1].id, 60_000);
      for (const p of pages) assert.deepEqual(p.errors, [], `${p.name}: ${p.errors}`);
    } finally {
      await obs.close();
      for (const p of pages) await p.close();
    }
  });

test('a WHEP viewer watches a room where a web-app page publishes', { timeout: 120_000 }, async () => {
  const room = uniqueRoom('whepnative');
  const page = await openPeer(browser, server, room, 'Cam', { query: 'media=sfu' });
  const viewer = await openPage();
  try {
    // The page publishes once it has joined; until then the room has nothing to view (409).
    const deadline = Date.now() + WAIT * 2;
    for (;;) {
      try {
        await connect(viewer.page, `/whep/${room}`);
        break;
      } catch (e) {
        if (Date.now() > deadline || !/ 409: /.test(String(e))) throw e;
        await viewer.page.evaluate(() => window.pc.close());
        await sleep(250);
      }
    }
    const state = await waitForPlayback(viewer.page, WAIT * 3, 'WHEP viewer of a web-app page');
    assert.ok(state.frameWidth > 0 && state.frameHeight > 0, JSON.stringify(state));
    assert.deepEqual(page.errors, []);
  } finally {
    await viewer.close();
    await page.close();
  }
});
