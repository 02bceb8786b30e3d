// Calls through the web app: 1:1 and three-peer mesh, media state, chat, screen share, leaving.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  WAIT, events, launchBrowser, openPeer, startServer, tile, uniqueRoom, waitForMediaFlow, waitForRemoteVideo,
} from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('two peers see and hear each other', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('pair');
  const a = await openPeer(browser, server, room, 'Alice');
  const b = await openPeer(browser, server, room, 'Bob');
  try {
    assert.notEqual(a.id, b.id);
    await Promise.all([waitForRemoteVideo(a.page, b.id), waitForRemoteVideo(b.page, a.id)]);
    await Promise.all([waitForMediaFlow(a.page, b.id), waitForMediaFlow(b.page, a.id)]);
    // Names are shown on the tiles, and each side has exactly one remote tile plus its own.
    assert.equal(await tile(a.page, b.id).getByTestId('tile-name').textContent(), 'Bob');
    assert.equal(await tile(b.page, a.id).getByTestId('tile-name').textContent(), 'Alice');
    assert.equal(await a.page.getByTestId('tile').count(), 2);
    assert.equal(await tile(a.page, b.id).getAttribute('data-connection'), 'connected');
    assert.equal(await a.page.evaluate((id) => window.kaiwa.room.peers.get(id).connectionState, b.id), 'connected');
    // The fake camera is 320x240 (or what the constraints made of it) — in any case a real picture.
    const size = await b.page.$eval(`[data-testid="tile"][data-peer-id="${a.id}"] video`, (v) => [v.videoWidth, v.videoHeight]);
    assert.ok(size[0] > 0 && size[1] > 0, `remote video size ${size}`);
    // The connection-quality readout fills in from getStats.
    await b.page.waitForFunction((id) => {
      const el = document.querySelector(`[data-testid="tile"][data-peer-id="${id}"] [data-testid="quality"]`);
      return el && el.dataset.rttMs !== undefined && el.dataset.rttMs !== '' && Number(el.dataset.inboundBitrate) > 0;
    }, a.id, { timeout: WAIT });
    // Bandwidth cap: maxBitrate lands on the video sender's encodings.
    const caps = await a.page.evaluate(async (id) => {
      await window.kaiwa.room.setMaxVideoBitrate(150_000);
      const sender = window.kaiwa.room.peerConnection(id).getSenders().find((s) => s.track?.kind === 'video');
      return sender.getParameters().encodings.map((e) => e.maxBitrate);
    }, b.id);
    assert.deepEqual(caps, [150_000]);
    await waitForMediaFlow(b.page, a.id);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  } finally {
    await a.close();
    await b.close();
  }
});

describe('three peers', () => {
  const room = uniqueRoom('mesh');
  let peers = [];

  before(async () => {
    // Join one after the other so each newcomer negotiates with those already there.
    // `media=mesh`: on a server with SFU rooms the default `auto` would take a third person through kaiwa.
    for (const name of ['Ann', 'Ben', 'Cai']) peers.push(await openPeer(browser, server, room, name, { query: 'media=mesh' }));
  });

  after(async () => {
    for (const p of peers) await p.close();
    peers = [];
  });

  test('full mesh: each sees two remote videos playing', { timeout: 60_000 }, async () => {
    const waits = [];
    for (const p of peers) {
      for (const q of peers) if (p !== q) waits.push(waitForRemoteVideo(p.page, q.id));
    }
    await Promise.all(waits);
    for (const p of peers) {
      const info = await p.page.evaluate(() => window.kaiwa.room.debugInfo());
      assert.equal(info.peers, 2);
      assert.equal(info.openLinks, 2);
      assert.equal(await p.page.getByTestId('tile').count(), 3);
    }
  });

  test('chat reaches everybody, in the same order', { timeout: 30_000 }, async () => {
    const [ann, ben, cai] = peers;
    await ann.page.getByTestId('chat-input').fill('hello from Ann');
    await ann.page.getByTestId('chat-send').click();
    await ben.page.getByTestId('chat-input').fill('こんにちは from Ben <b>not bold</b>');
    await ben.page.getByTestId('chat-input').press('Enter');
    for (const p of peers) {
      await p.page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-message"]').length >= 2, null,
        { timeout: WAIT });
    }
    const logs = await Promise.all(peers.map((p) => p.page.$$eval('[data-testid="chat-message"]',
      (els) => els.map((el) => ({ from: el.dataset.from, text: el.querySelector('[data-testid="chat-text"]').textContent })))));
    for (const log of logs) assert.deepEqual(log, logs[0], 'every peer sees the same chat in the same order');
    assert.deepEqual(logs[0].map((m) => m.text).sort(), ['hello from Ann', 'こんにちは from Ben <b>not bold</b>'].sort());
    assert.equal(logs[0].find((m) => m.text === 'hello from Ann').from, ann.id);
    // Text is text: no markup was interpreted.
    assert.equal(await cai.page.locator('[data-testid="chat-text"] b').count(), 0);
    // Own messages are marked as such.
    assert.equal(await ann.page.locator('[data-testid="chat-message"][data-self="true"]').count(), 1);
  });

  test('mute and camera-off are seen by the others', { timeout: 30_000 }, async () => {
    const [ann, ben, cai] = peers;
    for (const p of [ben, cai]) {
      assert.equal(await tile(p.page, ann.id).getByTestId('badge-muted').isVisible(), false);
      assert.equal(await tile(p.page, ann.id).getByTestId('badge-video-off').isVisible(), false);
    }
    await ann.page.getByTestId('toggle-mic').click();
    await ann.page.getByTestId('toggle-camera').click();
    const local = await ann.page.evaluate(() => ({
      state: window.kaiwa.room.state,
      audioEnabled: window.kaiwa.room.localStream.getAudioTracks().map((t) => t.enabled),
      videoEnabled: window.kaiwa.room.localStream.getVideoTracks().map((t) => t.enabled),
    }));
    assert.deepEqual(local.state, { audioMuted: true, videoOff: true, screenSharing: false });
    assert.deepEqual(local.audioEnabled, [false]);
    assert.deepEqual(local.videoEnabled, [false]);
    assert.equal(await ann.page.getByTestId('toggle-mic').getAttribute('aria-pressed'), 'false', 'aria-pressed: the microphone is on');
    for (const p of [ben, cai]) {
      await tile(p.page, ann.id).getByTestId('badge-muted').waitFor({ state: 'visible', timeout: WAIT });
      await tile(p.page, ann.id).getByTestId('badge-video-off').waitFor({ state: 'visible', timeout: WAIT });
      const state = await p.page.evaluate((id) => window.kaiwa.room.peers.get(id).state, ann.id);
      assert.deepEqual(state, { audioMuted: true, videoOff: true, screenSharing: false });
    }
    await ann.page.getByTestId('toggle-mic').click();
    await ann.page.getByTestId('toggle-camera').click();
    for (const p of [ben, cai]) {
      await tile(p.page, ann.id).getByTestId('badge-muted').waitFor({ state: 'hidden', timeout: WAIT });
      await tile(p.page, ann.id).getByTestId('badge-video-off').waitFor({ state: 'hidden', timeout: WAIT });
    }
    await waitForRemoteVideo(ben.page, ann.id);
  });

  test('a peer that closes its tab disappears for the others', { timeout: 30_000 }, async () => {
    const [ann, ben, cai] = peers;
    await cai.page.close(); // the SDK sends `leave` on pagehide
    for (const p of [ann, ben]) {
      await tile(p.page, cai.id).waitFor({ state: 'detached', timeout: WAIT });
      const left = await events(p.page, 'peer-left');
      assert.deepEqual(left, [{ type: 'peer-left', peer: cai.id, reason: 'left' }]);
      const info = await p.page.evaluate(() => window.kaiwa.room.debugInfo());
      assert.equal(info.peers, 1);
      assert.equal(info.links, 1, 'the connection to the peer that left is gone');
      assert.equal(await p.page.locator('[data-testid="file-target"] option').count(), 2, 'Everyone + one peer');
    }
    // The remaining call is unaffected.
    await waitForMediaFlow(ann.page, ben.id);
  });
});

test('the SDK\'s screen share replaces the video and goes back to the camera', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('screen');
  const a = await openPeer(browser, server, room, 'Presenter');
  const b = await openPeer(browser, server, room, 'Viewer');
  try {
    await waitForRemoteVideo(b.page, a.id);
    const sel = `[data-testid="tile"][data-peer-id="${a.id}"] video`;
    const camera = await b.page.$eval(sel, (v) => ({ w: v.videoWidth, h: v.videoHeight }));
    const sendersBefore = await a.page.evaluate((id) => window.kaiwa.room.peerConnection(id).getSenders().length, b.id);

    // startScreenShare() without options: the screen goes in place of the camera (the app keeps the camera, below).
    await a.page.evaluate(() => window.kaiwa.room.startScreenShare());
    await a.page.waitForFunction(() => window.kaiwa.room.state.screenSharing === true, null, { timeout: WAIT });
    // The receiver's picture changes to the fake screen's 16:9 size.
    await b.page.waitForFunction(([s, w]) => {
      const v = document.querySelector(s);
      return v && v.videoWidth > w && Math.abs(v.videoWidth / v.videoHeight - 16 / 9) < 0.05;
    }, [sel, camera.w], { timeout: WAIT, polling: 100 });
    await tile(b.page, a.id).getByTestId('badge-screen').waitFor({ state: 'visible', timeout: WAIT });
    const sharing = await a.page.evaluate((id) => {
      const pc = window.kaiwa.room.peerConnection(id);
      const video = pc.getSenders().find((s) => s.track?.kind === 'video');
      return { senders: pc.getSenders().length, label: video.track.label, screen: window.kaiwa.room.screenStream !== null };
    }, b.id);
    assert.equal(sharing.senders, sendersBefore, 'replaceTrack, not a new sender');
    assert.ok(sharing.screen);
    assert.equal(await b.page.evaluate((id) => window.kaiwa.room.peers.get(id).state.screenSharing, a.id), true);

    await a.page.evaluate(() => window.kaiwa.room.stopScreenShare());
    await b.page.waitForFunction(([s, c]) => {
      const v = document.querySelector(s);
      return v && v.videoWidth === c.w && v.videoHeight === c.h;
    }, [sel, camera], { timeout: WAIT, polling: 100 });
    await tile(b.page, a.id).getByTestId('badge-screen').waitFor({ state: 'hidden', timeout: WAIT });
    const back = await a.page.evaluate((id) => {
      const room = window.kaiwa.room;
      const video = room.peerConnection(id).getSenders().find((s) => s.track?.kind === 'video');
      return { same: video.track === room.localStream.getVideoTracks()[0], screen: room.screenStream };
    }, b.id);
    assert.equal(back.same, true, 'the camera track is sent again');
    assert.equal(back.screen, null);
    await waitForRemoteVideo(b.page, a.id);
  } finally {
    await a.close();
    await b.close();
  }
});

test('the app\'s Share button: the screen is its own tile on the stage, the presenter\'s camera stays', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('present');
  const a = await openPeer(browser, server, room, 'Presenter');
  const b = await openPeer(browser, server, room, 'Viewer');
  try {
    await waitForRemoteVideo(b.page, a.id);
    await a.page.getByTestId('toggle-screen').click();
    // getDisplayMedia resolves after the click returns: the button is pressed once the share has started.
    await a.page.locator('[data-testid="toggle-screen"][aria-pressed="true"]').waitFor({ timeout: WAIT });
    // The viewer gets a screen tile (16:9, featured) and still the presenter's camera in its own tile.
    const screenSel = `[data-testid="screen-tile"][data-peer-id="${a.id}"]`;
    await b.page.waitForFunction((s) => {
      const v = document.querySelector(`${s} video`);
      return v && v.videoWidth > 0 && Math.abs(v.videoWidth / v.videoHeight - 16 / 9) < 0.05 && v.currentTime > 0;
    }, screenSel, { timeout: WAIT, polling: 100 });
    assert.match(await b.page.locator(screenSel).getAttribute('class'), /featured/);
    assert.equal(await b.page.locator(`${screenSel} [data-testid="tile-name"]`).textContent(), "Presenter's screen");
    await waitForRemoteVideo(b.page, a.id); // the camera tile keeps playing
    const cam = await b.page.$eval(`[data-testid="tile"][data-peer-id="${a.id}"] video`, (v) => v.videoWidth / v.videoHeight);
    assert.ok(Math.abs(cam - 4 / 3) < 0.05, `camera stays 4:3 (${cam})`);
    assert.equal(await b.page.getByTestId('tile').count(), 2, 'people tiles: still two');
    // The presenter sees its own screen as a tile too, and its camera in its own.
    await a.page.locator('[data-testid="screen-tile"][data-self="true"]').waitFor();
    const senders = await a.page.evaluate((id) => window.kaiwa.room.peerConnection(id).getSenders()
      .filter((s) => s.track?.kind === 'video').map((s) => s.track.label), b.id);
    assert.equal(senders.length, 2, `camera and screen (${senders})`);
    // Stop: the screen tile goes, the camera carries on.
    await a.page.getByTestId('toggle-screen').click();
    await b.page.locator(screenSel).waitFor({ state: 'detached', timeout: WAIT });
    await a.page.locator('[data-testid="screen-tile"]').waitFor({ state: 'detached', timeout: WAIT });
    assert.equal(await b.page.evaluate(() => document.querySelector('[data-testid="grid"]').dataset.mode), 'pip');
    await waitForRemoteVideo(b.page, a.id);
  } finally {
    await a.close();
    await b.close();
  }
});
