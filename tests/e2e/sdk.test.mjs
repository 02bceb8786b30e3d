// The SDK as a standalone module, joining without media, refused devices, messaging, cleanup; the landing page.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  WAIT, events, joinFromPrejoin, launchBrowser, openPeer, recordEvents, startServer, tile, uniqueRoom, waitForRemoteVideo,
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

test('the served SDK module joins without media, receives the call and exchanges messages', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('sdk');
  const a = await openPeer(browser, server, room, 'Camera');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    const dts = await page.request.get(`${server.url}/sdk/kaiwa.d.ts`);
    assert.equal(dts.status(), 200);
    await page.goto(`${server.url}/`);
    const viewer = await page.evaluate(async (roomName) => {
      const { Room } = await import('/sdk/kaiwa.js');
      const room = new Room({ room: roomName, name: 'Viewer', media: false });
      window.viewer = room;
      window.got = { messages: [], data: [] };
      room.on('message', (m) => window.got.messages.push(m));
      room.on('data', (m) => window.got.data.push(m));
      room.on('stream', ({ peer, stream }) => {
        let v = document.getElementById(`v-${peer.id}`);
        if (!v) {
          v = Object.assign(document.createElement('video'), { id: `v-${peer.id}`, autoplay: true, muted: true });
          v.style.width = '160px';
          document.body.prepend(v);
        }
        v.srcObject = stream;
        v.play().catch(() => undefined);
      });
      await room.join();
      return { id: room.id, state: room.state, hasStream: room.localStream !== null };
    }, room);
    assert.deepEqual(viewer.state, { audioMuted: true, videoOff: true, screenSharing: false });
    assert.equal(viewer.hasStream, false);

    // The viewer receives the camera peer's video although it sends nothing.
    await page.waitForFunction((id) => {
      const v = document.getElementById(`v-${id}`);
      return v && v.videoWidth > 0 && v.currentTime > 0;
    }, a.id, { timeout: WAIT });
    // The app shows the viewer with mic and camera badges.
    await tile(a.page, viewer.id).getByTestId('badge-muted').waitFor({ state: 'visible', timeout: WAIT });
    await tile(a.page, viewer.id).getByTestId('badge-video-off').waitFor({ state: 'visible', timeout: WAIT });

    // App messages: through the server (broadcast and addressed) and peer-to-peer over the data channel.
    await a.page.evaluate(async (to) => {
      await window.kaiwa.room.sendMessage({ hello: 'all' });
      await window.kaiwa.room.sendMessage({ hello: 'you' }, to);
    }, viewer.id);
    await page.waitForFunction(() => window.got.messages.length === 2, null, { timeout: WAIT });
    const messages = await page.evaluate(() => window.got.messages);
    assert.deepEqual(messages, [
      { from: a.id, data: { hello: 'all' }, broadcast: true },
      { from: a.id, data: { hello: 'you' }, broadcast: false },
    ]);
    await a.page.waitForFunction((id) => window.kaiwa.room.sendData({ p2p: true }, id) === 1, viewer.id, { timeout: WAIT });
    await page.waitForFunction(() => window.got.data.length === 1, null, { timeout: WAIT });
    assert.deepEqual(await page.evaluate(() => window.got.data), [{ from: a.id, data: { p2p: true } }]);

    // A request the server refuses rejects with its error code.
    const refused = await page.evaluate(() => window.viewer.sendMessage({ x: 1 }, 'nobody').then(() => null, (e) => e.code));
    assert.equal(refused, 'unknown-peer');

    // Stats helper: RTT and inbound bitrate from the selected candidate pair and inbound-rtp.
    const stats = await page.evaluate(async (id) => {
      await window.viewer.getStats(id);
      await new Promise((r) => setTimeout(r, 600));
      return window.viewer.getStats(id);
    }, a.id);
    assert.ok(stats.rttMs !== null && stats.rttMs >= 0, `rtt ${stats.rttMs}`);
    assert.ok(stats.inboundBitrate > 0, `inbound ${stats.inboundBitrate}`);
    assert.ok(stats.packetLoss >= 0 && stats.packetLoss <= 1);
  } finally {
    await ctx.close();
    await a.close();
  }
});

test('a refused camera is explained and the peer still joins and watches', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('denied');
  const a = await openPeer(browser, server, room, 'Has camera');
  const denied = await openPeer(browser, server, room, 'No permission', {
    initScript: () => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
    },
  });
  try {
    const notice = denied.page.getByTestId('media-error');
    await notice.waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await notice.getAttribute('data-code'), 'media-denied');
    assert.match(await notice.textContent(), /refused/i);
    assert.equal(await denied.page.getByTestId('toggle-mic').isDisabled(), true);
    assert.equal(await denied.page.getByTestId('toggle-camera').isDisabled(), true);
    await waitForRemoteVideo(denied.page, a.id);
    await tile(a.page, denied.id).getByTestId('badge-video-off').waitFor({ state: 'visible', timeout: WAIT });
    await tile(a.page, denied.id).getByTestId('badge-muted').waitFor({ state: 'visible', timeout: WAIT });
  } finally {
    await a.close();
    await denied.close();
  }
});

test('leave releases everything, and peers coming and going leave nothing behind', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('leave');
  const host = await openPeer(browser, server, room, 'Host');
  for (let round = 0; round < 2; round++) {
    const guest = await openPeer(browser, server, room, `Guest ${round}`);
    await waitForRemoteVideo(host.page, guest.id);
    const tracks = await guest.page.evaluate(() => {
      window.__tracks = window.kaiwa.room.localStream.getTracks();
      window.__pcs = [...window.kaiwa.room.peers.keys()].map((id) => window.kaiwa.room.peerConnection(id));
      return window.__tracks.length;
    });
    assert.equal(tracks, 2);
    await guest.page.getByTestId('leave').click();
    await guest.page.getByTestId('left-screen').waitFor({ timeout: WAIT });
    const after = await guest.page.evaluate(() => ({
      tracks: window.__tracks.map((t) => t.readyState),
      pcs: window.__pcs.map((pc) => pc.connectionState),
      info: window.kaiwa.room.debugInfo(),
      sig: window.kaiwa.room.signalingState,
    }));
    assert.deepEqual(after.tracks, ['ended', 'ended'], 'camera and microphone are released');
    assert.deepEqual(after.pcs, ['closed']);
    assert.deepEqual(after.info, {
      peers: 0, links: 0, openLinks: 0, listeners: 0, urls: 0, left: true, sfu: false,
      sfuData: { open: false, sent: 0, received: 0 },
    });
    assert.equal(after.sig, 'closed');
    await tile(host.page, guest.id).waitFor({ state: 'detached', timeout: WAIT });
    const hostInfo = await host.page.evaluate(() => window.kaiwa.room.debugInfo());
    assert.equal(hostInfo.links, 0);
    assert.equal(hostInfo.peers, 0);
    await guest.close();
  }
  const left = await events(host.page, 'peer-left');
  assert.equal(left.length, 2);
  assert.ok(left.every((e) => e.reason === 'left'));
  await host.close();
});

test('the landing page leads to the pre-join screen; the address never carries the name', { timeout: 60_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await ctx.newPage();
  try {
    await page.goto(`${server.url}/`);
    const suggested = await page.getByTestId('room-input').inputValue();
    assert.match(suggested, /^[A-Za-z0-9_.-]{1,64}$/);
    await page.getByTestId('name-input').fill('Landing Tester');
    await page.getByTestId('join-button').click();
    await page.waitForURL((u) => u.pathname === `/room/${suggested}` && u.search === '', { timeout: WAIT });
    // Pre-join: the remembered name, nothing joined yet.
    await page.getByTestId('prejoin').waitFor({ timeout: WAIT });
    assert.equal(await page.getByTestId('prejoin-name').inputValue(), 'Landing Tester');
    assert.equal(await page.getByTestId('room').count(), 0);
    await joinFromPrejoin(page);
    await page.locator('[data-testid="room"][data-joined="true"]').waitFor({ timeout: WAIT });
    assert.equal(await page.getByTestId('room-name').textContent(), suggested);

    const page2 = await ctx.newPage();
    await page2.goto(`${server.url}/room/${suggested}`);
    await page2.getByTestId('prejoin').waitFor({ timeout: WAIT });
    await page2.getByTestId('prejoin-name').fill('Second');
    await joinFromPrejoin(page2);
    await page2.locator('[data-testid="room"][data-joined="true"]').waitFor({ timeout: WAIT });
    await recordEvents(page2);
    const firstId = await page.evaluate(() => window.kaiwa.room.id);
    await waitForRemoteVideo(page2, firstId);
    assert.equal(await page2.locator(`[data-testid="tile"][data-peer-id="${firstId}"] [data-testid="tile-name"]`).textContent(),
      'Landing Tester');
  } finally {
    await ctx.close();
  }
});

test('works on a phone-sized screen', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('phone');
  const a = await openPeer(browser, server, room, 'Desk');
  const phone = await openPeer(browser, server, room, 'Phone', { viewport: { width: 375, height: 667 } });
  try {
    await waitForRemoteVideo(phone.page, a.id);
    const layout = await phone.page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      camera: window.kaiwa.room.localStream.getVideoTracks()[0].getSettings().width,
    }));
    assert.ok(layout.scrollWidth <= 375, `no horizontal scrolling (${layout.scrollWidth})`);
    assert.ok(layout.camera <= 320, `small screens capture less (${layout.camera})`);
    for (const id of ['toggle-mic', 'toggle-camera', 'leave', 'toggle-panel']) {
      assert.equal(await phone.page.getByTestId(id).isVisible(), true, `${id} visible`);
    }
    // Chat lives in a panel that opens on demand.
    assert.equal(await phone.page.getByTestId('chat-input').isVisible(), false);
    await a.page.evaluate(() => window.kaiwa.room.sendChat('psst'));
    await phone.page.waitForFunction(() => document.querySelector('[data-testid="toggle-panel"]').dataset.unread === '1', null,
      { timeout: WAIT });
    await phone.page.getByTestId('toggle-panel').click();
    await phone.page.getByTestId('chat-input').waitFor({ state: 'visible', timeout: WAIT });
    await phone.page.locator('[data-testid="chat-text"]', { hasText: 'psst' }).waitFor({ state: 'visible', timeout: WAIT });
  } finally {
    await a.close();
    await phone.close();
  }
});

test('a refused join (room full) is shown and releases the camera', { timeout: 60_000 }, async () => {
  const small = await startServer({ extraArgs: ['--peers-per-room', '1'] });
  const room = uniqueRoom('full');
  const first = await openPeer(browser, small, room, 'First');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    await page.goto(`${small.url}/room/${room}?name=Second`);
    await joinFromPrejoin(page);
    const screen = page.getByTestId('join-error');
    await screen.waitFor({ timeout: WAIT });
    assert.equal(await screen.getAttribute('data-code'), 'room-full');
    assert.match(await screen.textContent(), /full/i);
    const after = await page.evaluate(() => ({
      tracks: window.kaiwa.room.localStream?.getTracks().map((t) => t.readyState) ?? [],
      info: window.kaiwa.room.debugInfo(),
    }));
    assert.ok(after.tracks.every((s) => s === 'ended'), `tracks ${after.tracks}`);
    assert.equal(after.info.left, true);
    assert.equal(await first.page.getByTestId('tile').count(), 1, 'the first peer saw nobody join');
  } finally {
    await ctx.close();
    await first.close();
    await small.stop();
  }
});
