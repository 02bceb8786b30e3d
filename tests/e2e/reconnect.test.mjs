// Signaling drops: resume within the grace period, a connection lost without `leave`, a tab closed (1001), a resume that comes too late.
// The server runs with a 2 s grace period so the "too late" paths are quick.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  WAIT, events, launchBrowser, openPeer, startServer, tile, uniqueRoom, waitForMediaFlow, waitForRemoteVideo,
} from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer({ resumeGrace: '2s' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a dropped socket resumes with the same peer id and the call goes on', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('resume');
  const a = await openPeer(browser, server, room, 'Roamer');
  const b = await openPeer(browser, server, room, 'Steady');
  try {
    await Promise.all([waitForRemoteVideo(a.page, b.id), waitForRemoteVideo(b.page, a.id)]);
    assert.equal(await a.page.evaluate(() => window.kaiwa.room.signaling.connectionCount), 1);

    await a.page.evaluate(() => window.kaiwa.room.signaling.dropForTest());
    await a.page.waitForFunction(() => window.__events.some((e) => e.type === 'signaling-state' && e.state === 'reconnecting'),
      null, { timeout: WAIT });
    await a.page.waitForFunction(() => window.kaiwa.room.signalingState === 'connected' &&
      window.kaiwa.room.signaling.connectionCount === 2, null, { timeout: WAIT });
    await a.page.locator('[data-testid="signaling-state"][data-state="connected"]').waitFor({ timeout: WAIT });

    // Same id, no rejoin; the other side saw nobody leave or join.
    assert.equal(await a.page.evaluate(() => window.kaiwa.room.id), a.id);
    assert.deepEqual(await events(a.page, 'joined'), []);
    assert.deepEqual(await events(b.page, 'peer-left'), []);
    assert.deepEqual(await events(b.page, 'peer-joined'), []);

    // Signaling works again both ways (chat, state), and media still flows.
    await a.page.evaluate(() => window.kaiwa.room.sendChat('back again'));
    await b.page.locator('[data-testid="chat-text"]', { hasText: 'back again' }).waitFor({ timeout: WAIT });
    await a.page.getByTestId('toggle-mic').click();
    await tile(b.page, a.id).getByTestId('badge-muted').waitFor({ state: 'visible', timeout: WAIT });
    await b.page.evaluate(() => window.kaiwa.room.sendChat('welcome back'));
    await a.page.locator('[data-testid="chat-text"]', { hasText: 'welcome back' }).waitFor({ timeout: WAIT });
    await Promise.all([waitForMediaFlow(a.page, b.id), waitForMediaFlow(b.page, a.id)]);
    // A renegotiation after the resume works too (screen share on and off needs no new m-line, so force an ICE restart).
    await a.page.evaluate((id) => window.kaiwa.room.peerConnection(id).restartIce(), b.id);
    await waitForMediaFlow(b.page, a.id);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a peer whose connection dies without leave is dropped after the grace period', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('grace');
  const a = await openPeer(browser, server, room, 'Stays');
  const b = await openPeer(browser, server, room, 'Crashes');
  try {
    await waitForRemoteVideo(a.page, b.id);
    // As if the network went: no `leave`, the socket closes (4000, not "going away") and no reconnect follows.
    await b.page.evaluate(() => window.kaiwa.room.signaling.dropForTest({ reconnect: false }));
    await tile(a.page, b.id).waitFor({ state: 'detached', timeout: WAIT });
    assert.deepEqual(await events(a.page, 'peer-left'), [{ type: 'peer-left', peer: b.id, reason: 'disconnected' }]);
    assert.equal(await a.page.evaluate(() => window.kaiwa.room.debugInfo().links), 0);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a tab closed without leave leaves at once (the browser closes its socket with 1001)', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('closed');
  const a = await openPeer(browser, server, room, 'Stays');
  const b = await openPeer(browser, server, room, 'Closes');
  try {
    await waitForRemoteVideo(a.page, b.id);
    await b.page.evaluate(() => { window.kaiwa.room.leaveOnPageHide = false; });
    await b.page.close();
    await tile(a.page, b.id).waitFor({ state: 'detached', timeout: WAIT });
    assert.deepEqual(await events(a.page, 'peer-left'), [{ type: 'peer-left', peer: b.id, reason: 'left' }]);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a resume after the grace period joins afresh and the call is rebuilt', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('late');
  const a = await openPeer(browser, server, room, 'Late');
  const b = await openPeer(browser, server, room, 'Waits');
  try {
    await waitForRemoteVideo(b.page, a.id);
    // Stay away longer than the server's 2 s grace period.
    await a.page.evaluate(() => window.kaiwa.room.signaling.dropForTest({ reconnectAfterMs: 3500 }));
    await b.page.waitForFunction(() => window.__events.some((e) => e.type === 'peer-left'), null, { timeout: WAIT });
    assert.deepEqual(await events(b.page, 'peer-left'), [{ type: 'peer-left', peer: a.id, reason: 'disconnected' }]);

    await a.page.waitForFunction(() => window.__events.some((e) => e.type === 'joined' && e.rejoined), null, { timeout: WAIT });
    const newId = await a.page.evaluate(() => window.kaiwa.room.id);
    assert.notEqual(newId, a.id, 'a fresh join gets a new id');
    await b.page.waitForFunction((id) => window.__events.some((e) => e.type === 'peer-joined' && e.peer === id), newId,
      { timeout: WAIT });
    await Promise.all([waitForRemoteVideo(b.page, newId), waitForRemoteVideo(a.page, b.id)]);
    assert.equal(await a.page.getByTestId('tile').count(), 2);
    assert.equal(await b.page.getByTestId('tile').count(), 2);
  } finally {
    await a.close();
    await b.close();
  }
});
