// The call as people use it: who is here and who speaks, chat (links, Enter/Shift+Enter, the limit, the "new
// messages" cue, sending while the server is away), the connection banner, a camera that stops, controls by
// keyboard and for screen readers, switching devices mid-call, the screen share stage, pin, quality bars.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WAIT, launchBrowser, openPeer, startServer, tile, uniqueRoom, waitForMediaFlow, waitForRemoteVideo } from './helpers.mjs';

let server;
let browser;
let peers = [];
let room;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  room = uniqueRoom('ui');
  // A mesh room even when a third joins (the first join sets the policy; `auto` would move three through kaiwa).
  for (const name of ['Ann', 'Ben']) peers.push(await openPeer(browser, server, room, name, { viewport: { width: 1280, height: 800 }, query: 'media=mesh' }));
  await waitForRemoteVideo(peers[0].page, peers[1].id);
});

after(async () => {
  for (const p of peers) await p.close();
  await browser?.close();
  await server?.stop();
});

/** Toasts go away by themselves: record every one shown, as "kind: text", in window.__toasts. */
function recordToasts(page) {
  return page.evaluate(() => {
    window.__toasts = [];
    new MutationObserver((records) => {
      for (const r of records) {
        for (const n of r.addedNodes) if (n.dataset?.testid === 'toast') window.__toasts.push(`${n.dataset.kind}: ${n.textContent}`);
      }
    }).observe(document.querySelector('[data-testid="toasts"]'), { childList: true });
  });
}

const frames = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

describe('presence', () => {
  test('join and leave toasts, the count and the people list', { timeout: 60_000 }, async () => {
    const [ann] = peers;
    await recordToasts(ann.page);
    const cai = await openPeer(browser, server, room, 'Cai');
    await ann.page.waitForFunction(() => window.__toasts.includes('join: Cai joined'));
    assert.equal(await ann.page.getByTestId('participant-count').textContent(), '3');
    assert.equal(await ann.page.getByTestId('toggle-people').getAttribute('aria-label'), 'People in the call: 3');
    await ann.page.getByTestId('toggle-people').click();
    const names = await ann.page.locator('[data-testid="people-item"]').allTextContents();
    assert.deepEqual(names.map((n) => n.trim()), ['Ann (you)', 'Ben', 'Cai']);
    await cai.close();
    await ann.page.waitForFunction(() => window.__toasts.some((t) => /^leave: Cai (left|lost the connection)$/.test(t)));
    await ann.page.waitForFunction(() => document.querySelector('[data-testid="participant-count"]').textContent === '2');
    assert.equal(await ann.page.locator('[data-testid="people-item"]').count(), 2);
    await ann.page.getByTestId('toggle-people').click();
    assert.equal(await ann.page.getByTestId('people-panel').isVisible(), false);
  });

  test('speaking indicator from the audio, on the remote and on our own tile; silence turns it off', { timeout: 60_000 }, async () => {
    const [ann, ben] = peers;
    // The fake microphone beeps: Ann hears Ben speaking, and her own tile shows her speaking.
    await tile(ann.page, ben.id).and(ann.page.locator('[data-speaking="true"]')).waitFor();
    await ann.page.locator('[data-testid="tile"][data-self="true"][data-speaking="true"]').waitFor();
    assert.match(await tile(ann.page, ben.id).getAttribute('class'), /speaking/);
    // Ben mutes: the audio Ann receives goes silent and the indicator goes off (it does not follow the badge).
    await ben.page.getByTestId('toggle-mic').click();
    await tile(ann.page, ben.id).and(ann.page.locator('[data-speaking="false"]')).waitFor();
    await ben.page.locator('[data-testid="tile"][data-self="true"][data-speaking="false"]').waitFor();
    await ben.page.getByTestId('toggle-mic').click();
    await tile(ann.page, ben.id).and(ann.page.locator('[data-speaking="true"]')).waitFor();
  });
});

describe('chat', () => {
  test('links are anchors (http/https only), markup stays text; Enter sends, Shift+Enter is a new line', { timeout: 30_000 }, async () => {
    const [ann, ben] = peers;
    const input = ann.page.getByTestId('chat-input');
    await input.click();
    await input.pressSequentially('see https://example.com/a?b=1, and javascript:alert(1) <img src=x onerror=alert(1)>');
    await input.press('Shift+Enter');
    await input.pressSequentially('second line');
    assert.equal(await input.inputValue(), 'see https://example.com/a?b=1, and javascript:alert(1) <img src=x onerror=alert(1)>\nsecond line');
    assert.equal(await ann.page.locator('[data-testid="chat-message"]').count(), 0, 'Shift+Enter did not send');
    await input.press('Enter');
    const msg = ben.page.locator('[data-testid="chat-message"]').last();
    await msg.getByTestId('chat-link').waitFor();
    const link = await msg.getByTestId('chat-link').evaluate((a) => ({ href: a.href, text: a.textContent, rel: a.rel, target: a.target }));
    assert.deepEqual(link, { href: 'https://example.com/a?b=1', text: 'https://example.com/a?b=1', rel: 'noopener noreferrer nofollow', target: '_blank' });
    assert.equal(await msg.locator('a').count(), 1, 'javascript: is not a link');
    assert.equal(await msg.locator('img').count(), 0);
    assert.match(await msg.getByTestId('chat-text').textContent(), /<img src=x onerror=alert\(1\)>\nsecond line$/);
    assert.equal(await input.inputValue(), '');
  });

  test('over 4096 characters: a counter says so and nothing is cut or sent', { timeout: 30_000 }, async () => {
    const [ann] = peers;
    const input = ann.page.getByTestId('chat-input');
    await input.fill('x'.repeat(4100));
    const counter = ann.page.getByTestId('chat-counter');
    assert.equal(await counter.textContent(), '4100 / 4096');
    assert.equal(await counter.getAttribute('data-over'), 'true');
    assert.equal(await ann.page.getByTestId('chat-send').isDisabled(), true);
    const before = await ann.page.locator('[data-testid="chat-message"]').count();
    await input.press('Enter');
    assert.equal(await ann.page.locator('[data-testid="chat-message"]').count(), before);
    assert.equal((await input.inputValue()).length, 4100, 'the text is kept');
    await input.fill('');
    assert.equal(await counter.textContent(), '');
  });

  test('scrolled up: a "new messages" cue instead of a silent append', { timeout: 30_000 }, async () => {
    const [ann, ben] = peers;
    for (let i = 0; i < 25; i++) await ben.page.evaluate((n) => window.kaiwa.room.sendChat(`filler ${n}`), i);
    await ann.page.locator('[data-testid="chat-text"]', { hasText: 'filler 24' }).waitFor();
    await ann.page.getByTestId('chat-log').evaluate((el) => { el.scrollTop = 0; });
    await ben.page.evaluate(() => window.kaiwa.room.sendChat('while you were reading'));
    await ann.page.locator('[data-testid="chat-text"]', { hasText: 'while you were reading' }).waitFor({ state: 'attached' });
    const cue = ann.page.getByTestId('chat-new-messages');
    await cue.waitFor({ state: 'visible' });
    await cue.click();
    await cue.waitFor({ state: 'hidden' });
    const atEnd = await ann.page.getByTestId('chat-log').evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 40);
    assert.ok(atEnd);
  });

  test('server away: a banner with Retry; a message shows as sending, then failed with Retry, then goes', { timeout: 60_000 }, async () => {
    const [ann, ben] = peers;
    await ann.page.evaluate(() => window.kaiwa.room.signaling.dropForTest({ reconnectAfterMs: 60_000 }));
    const banner = ann.page.getByTestId('connection-banner');
    await banner.waitFor({ state: 'visible' });
    assert.equal(await banner.getAttribute('data-state'), 'reconnecting');
    assert.match(await banner.textContent(), /Connection to the server lost/);
    await ann.page.getByTestId('chat-input').fill('are you there?');
    await ann.page.getByTestId('chat-input').press('Enter');
    const mine = ann.page.locator('[data-testid="chat-message"][data-self="true"]', { hasText: 'are you there?' });
    assert.equal(await mine.getAttribute('data-state'), 'pending');
    assert.equal(await mine.getByTestId('chat-status').textContent(), 'Sending…');
    // The request times out (10 s): failed, said so inline, with Retry.
    await mine.and(ann.page.locator('[data-state="failed"]')).waitFor({ timeout: 20_000 });
    assert.match(await mine.getByTestId('chat-status').textContent(), /Not sent/);
    // Retry the connection from the banner, then the message.
    await ann.page.getByTestId('connection-retry').click();
    await banner.waitFor({ state: 'hidden' });
    assert.equal(await ann.page.evaluate(() => window.kaiwa.room.signalingState), 'connected');
    await mine.getByTestId('chat-retry').click();
    await mine.and(ann.page.locator('[data-state="sent"]')).waitFor();
    await ben.page.locator('[data-testid="chat-text"]', { hasText: 'are you there?' }).waitFor();
    assert.equal(await ben.page.locator('[data-testid="chat-text"]', { hasText: 'are you there?' }).count(), 1, 'once');
    assert.equal(await ann.page.locator('[data-testid="chat-text"]', { hasText: 'are you there?' }).count(), 1, 'no duplicate');
  });
});

describe('controls', () => {
  test('accessible names and pressed states; Ctrl+D and Ctrl+E; muted is not the red of Leave', { timeout: 30_000 }, async () => {
    const [ann, ben] = peers;
    const page = ann.page;
    const mic = page.getByTestId('toggle-mic');
    assert.equal(await mic.getAttribute('aria-pressed'), 'true', 'pressed = microphone on');
    assert.equal(await page.getByRole('button', { name: 'Mute microphone (Ctrl+D)' }).count(), 1);
    await page.getByTestId('grid').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+d');
    await page.waitForFunction(() => window.kaiwa.room.state.audioMuted === true);
    assert.equal(await mic.getAttribute('aria-pressed'), 'false');
    assert.equal(await page.getByRole('button', { name: 'Unmute microphone (Ctrl+D)' }).count(), 1);
    await tile(ben.page, ann.id).getByTestId('badge-muted').waitFor({ state: 'visible' });
    const colors = await page.evaluate(() => ({
      mic: getComputedStyle(document.querySelector('[data-testid="toggle-mic"]')).backgroundColor,
      leave: getComputedStyle(document.querySelector('[data-testid="leave"]')).backgroundColor,
    }));
    assert.notEqual(colors.mic, colors.leave);
    await page.keyboard.press('Control+e');
    await page.waitForFunction(() => window.kaiwa.room.state.videoOff === true);
    assert.equal(await page.getByTestId('toggle-camera').getAttribute('aria-pressed'), 'false');
    await page.keyboard.press('Control+d');
    await page.keyboard.press('Control+e');
    await page.waitForFunction(() => !window.kaiwa.room.state.audioMuted && !window.kaiwa.room.state.videoOff);
    // A phone: icon-only buttons still have names.
    await page.setViewportSize({ width: 390, height: 844 });
    for (const name of ['Leave the call', 'Chat and files', 'Mute microphone (Ctrl+D)', 'Turn camera off (Ctrl+E)', 'Invite people']) {
      assert.equal(await page.getByRole('button', { name, exact: true }).isVisible(), true, name);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('switching the microphone mid-call replaces the track on the same sender', { timeout: 60_000 }, async () => {
    const [ann, ben] = peers;
    await ann.page.getByTestId('toggle-settings').click();
    const select = ann.page.getByTestId('settings-mic-select');
    await ann.page.waitForFunction(() => document.querySelectorAll('[data-testid="settings-mic-select"] option').length >= 2);
    const before = await ann.page.evaluate((id) => {
      const pc = window.kaiwa.room.peerConnection(id);
      window.__audioSender = pc.getSenders().find((s) => s.track?.kind === 'audio');
      return { track: window.__audioSender.track.id, transceivers: pc.getTransceivers().length };
    }, ben.id);
    const target = await ann.page.evaluate(() => [...document.querySelectorAll('[data-testid="settings-mic-select"] option')]
      .find((o) => !o.selected).value);
    await select.selectOption(target);
    await ann.page.waitForFunction((dev) =>
      window.kaiwa.room.localStream.getAudioTracks()[0]?.getSettings().deviceId === dev, target);
    // The local stream has the new track at once; replaceTrack on the senders resolves after it.
    await ann.page.waitForFunction((id) => {
      const sender = window.kaiwa.room.peerConnection(id).getSenders().find((s) => s.track?.kind === 'audio');
      return sender?.track?.id === window.kaiwa.room.localStream.getAudioTracks()[0]?.id;
    }, ben.id);
    const afterSwitch = await ann.page.evaluate((id) => {
      const pc = window.kaiwa.room.peerConnection(id);
      const sender = pc.getSenders().find((s) => s.track?.kind === 'audio');
      return { same: sender === window.__audioSender, track: sender.track.id,
        local: window.kaiwa.room.localStream.getAudioTracks()[0].id, transceivers: pc.getTransceivers().length };
    }, ben.id);
    assert.equal(afterSwitch.same, true, 'the same RTCRtpSender (replaceTrack)');
    assert.notEqual(afterSwitch.track, before.track);
    assert.equal(afterSwitch.track, afterSwitch.local);
    assert.equal(afterSwitch.transceivers, before.transceivers, 'no renegotiation');
    await waitForMediaFlow(ben.page, ann.id);
    await ann.page.getByTestId('toggle-settings').click();
  });

  test('a camera that stops by itself is marked off, the others are told, the user too', { timeout: 30_000 }, async () => {
    const [ann, ben] = peers;
    await ann.page.evaluate(() => {
      const t = window.kaiwa.room.localStream.getVideoTracks()[0];
      t.stop(); // what unplugging does to the capture; the browser then fires `ended`
      t.dispatchEvent(new Event('ended'));
    });
    const notice = ann.page.locator('[data-testid="media-error"][data-code="media-ended"]');
    await notice.waitFor();
    assert.match(await notice.textContent(), /camera stopped/);
    assert.equal(await ann.page.getByTestId('toggle-camera').getAttribute('aria-pressed'), 'false');
    await tile(ben.page, ann.id).getByTestId('badge-video-off').waitFor({ state: 'visible' });
    assert.equal(await ben.page.evaluate((id) => window.kaiwa.room.peers.get(id).state.videoOff, ann.id), true);
    assert.equal(await ann.page.locator('[data-testid="tile"][data-self="true"]').getAttribute('data-video-off'), 'true');
  });
});

describe('stage', () => {
  test('a screen share takes the stage; pin; fullscreen; quality bars on every tile, poor at a starved bitrate', { timeout: 90_000 }, async () => {
    const [ann, ben] = peers;
    // Ben shares: Ann's stage shows his screen large, both cameras (his too) in a strip.
    await ben.page.getByTestId('toggle-screen').click();
    await ann.page.locator(`[data-testid="screen-tile"][data-peer-id="${ben.id}"].featured`).waitFor();
    await frames(ann.page);
    const g = await ann.page.evaluate(() => {
      const r = (el) => el.getBoundingClientRect();
      const grid = document.querySelector('[data-testid="grid"]');
      return { mode: grid.dataset.mode, grid: r(grid).width * r(grid).height,
        featured: r(grid.querySelector('.featured')).width * r(grid.querySelector('.featured')).height,
        strip: [...grid.querySelectorAll('.strip')].map((t) => r(t).width * r(t).height),
        fit: getComputedStyle(grid.querySelector('.featured video')).objectFit };
    });
    assert.equal(g.mode, 'spotlight');
    assert.ok(g.featured / g.grid > 0.6, 'the share fills most of the stage');
    assert.equal(g.strip.length, 2, 'Ann and Ben\'s cameras');
    assert.ok(g.strip.every((x) => x < g.featured / 4));
    assert.equal(g.fit, 'contain', 'a screen is never cropped');
    await ben.page.getByTestId('toggle-screen').click();
    await ann.page.waitForFunction(() => document.querySelector('[data-testid="grid"]').dataset.mode === 'pip');

    // Pin our own tile: it takes the stage; unpin.
    const selfTile = ann.page.locator('[data-testid="tile"][data-self="true"]');
    await selfTile.hover();
    await selfTile.getByTestId('pin').click();
    await ann.page.waitForFunction(() => document.querySelector('[data-testid="grid"]').dataset.mode === 'spotlight');
    assert.match(await selfTile.getAttribute('class'), /featured/);
    assert.equal(await selfTile.getByTestId('pin').getAttribute('aria-pressed'), 'true');
    await selfTile.getByTestId('pin').click();
    await ann.page.waitForFunction(() => document.querySelector('[data-testid="grid"]').dataset.mode === 'pip');

    // Fullscreen on a tile.
    const remote = tile(ann.page, ben.id);
    await remote.hover();
    await remote.getByTestId('fullscreen').click();
    await ann.page.waitForFunction((id) => document.fullscreenElement?.dataset.peerId === id, ben.id);
    await ann.page.evaluate(() => document.exitFullscreen());

    // Quality: bars on every tile including our own, with details on tap.
    await ann.page.waitForFunction(() => [...document.querySelectorAll('[data-testid="tile"] [data-testid="quality"]')]
      .every((q) => ['good', 'fair', 'poor'].includes(q.dataset.quality)));
    const q = remote.getByTestId('quality');
    await q.click();
    await remote.getByTestId('quality-details').waitFor({ state: 'visible' });
    assert.match(await remote.getByTestId('quality-details').textContent(), /Round trip \d+ ms/);
    await q.click();
    // Starve Ben's video: Ann's indicator for him says poor, and why.
    await ben.page.evaluate(() => window.kaiwa.room.setMaxVideoBitrate(30_000));
    await remote.and(ann.page.locator(':has([data-testid="quality"][data-quality="poor"])')).waitFor({ timeout: 30_000 });
    assert.match(await q.getAttribute('aria-label'), /Poor connection.*low video bitrate/);
    await ben.page.evaluate(() => window.kaiwa.room.setMaxVideoBitrate(undefined));
  });
});

describe('phone', () => {
  test('invite from a phone (link, copy, share sheet); a file offer is flagged while the panel is closed', { timeout: 60_000 }, async () => {
    const [ann] = peers;
    const phone = await openPeer(browser, server, room, 'Pho', {
      viewport: { width: 390, height: 844 },
      initScript: () => {
        navigator.share = async (data) => { window.__shared = data; };
      },
    });
    try {
      const invite = phone.page.getByRole('button', { name: 'Invite people', exact: true });
      assert.equal(await invite.isVisible(), true);
      await invite.click();
      const panel = phone.page.getByTestId('invite-panel');
      await panel.waitFor({ state: 'visible' });
      assert.equal(await panel.getByTestId('invite-link').inputValue(), `${server.url}/room/${room}`);
      const box = await panel.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390, 'the invite panel fits the screen');
      await panel.getByTestId('share-link').click();
      assert.deepEqual(await phone.page.evaluate(() => window.__shared), { title: `Join ${room} on kaiwa`, url: `${server.url}/room/${room}` });
      await panel.getByTestId('copy-link').click();
      await panel.getByTestId('invite-status').filter({ hasText: /copied|Ctrl\+C/ }).waitFor();
      await phone.page.getByRole('button', { name: 'Close invite' }).click();

      // A file offered while the panel is closed: a toast and the unread badge; accepting it in the panel works.
      await recordToasts(phone.page);
      await ann.page.evaluate(async (to) => {
        const f = new File([new Uint8Array(5000).fill(7)], 'for-your-phone.bin', { type: 'application/octet-stream' });
        await window.kaiwa.room.sendFile(f, to);
      }, phone.id);
      await phone.page.waitForFunction(() => window.__toasts.some((t) => t.startsWith('file-offer-toast: Ann wants to send you for-your-phone.bin')));
      await phone.page.waitForFunction(() => Number(document.querySelector('[data-testid="toggle-panel"]').dataset.unread) >= 1);
      await phone.page.getByTestId('toggle-panel').click();
      const row = phone.page.locator('[data-testid="file-transfer"][data-state="offer"]', { hasText: 'for-your-phone.bin' });
      await row.getByTestId('file-accept').click();
      await phone.page.locator('[data-testid="file-transfer"][data-state="done"]', { hasText: 'for-your-phone.bin' }).waitFor();
      assert.equal(await phone.page.evaluate(() => document.documentElement.scrollWidth), 390);
      await phone.page.getByTestId('toggle-panel').click();

      // A share seen on the phone: the screen on top, the three cameras in one row below, all on screen.
      await ann.page.getByTestId('toggle-screen').click();
      await phone.page.locator(`[data-testid="screen-tile"][data-peer-id="${ann.id}"].featured`).waitFor();
      await frames(phone.page);
      const boxes = await phone.page.evaluate(() => [...document.querySelectorAll('[data-testid="grid"] .strip')]
        .map((t) => { const r = t.getBoundingClientRect(); return { top: Math.round(r.top), right: r.right, bottom: r.bottom }; }));
      const grid = await phone.page.getByTestId('grid').boundingBox();
      assert.equal(boxes.length, 3);
      assert.equal(new Set(boxes.map((b) => b.top)).size, 1, 'one row');
      assert.ok(boxes.every((b) => b.right <= 390 && b.bottom <= grid.y + grid.height + 1), JSON.stringify(boxes));
      await ann.page.getByTestId('toggle-screen').click();
      await phone.page.locator('[data-testid="screen-tile"]').waitFor({ state: 'detached' });
    } finally {
      await phone.close();
    }
  });
});

describe('several cameras', () => {
  test('the camera picked on the pre-join screen is used; switching it mid-call keeps the sender', { timeout: 60_000 }, async () => {
    // Chromium's fake_device_1 stands in for a depth camera (Y16) that does not encode: use devices 0 and 2.
    const two = await launchBrowser({ fakeCameras: 3 });
    const r = uniqueRoom('cams');
    let a;
    let b;
    try {
      a = await openPeer(two, server, r, 'Cam A', {
        beforeJoin: async (page) => {
          const options = await page.locator('[data-testid="prejoin-camera-select"] option').evaluateAll((os) => os.map((o) => o.value));
          assert.equal(options.length, 3);
          await page.getByTestId('prejoin-camera-select').selectOption(options[2]);
          await page.waitForFunction((dev) => document.querySelector('[data-testid="prejoin-preview"]').srcObject
            ?.getVideoTracks()[0]?.getSettings().deviceId === dev, options[2]);
        },
      });
      b = await openPeer(two, server, r, 'Cam B');
      await waitForRemoteVideo(b.page, a.id);
      const devices = await a.page.evaluate(async () => (await navigator.mediaDevices.enumerateDevices())
        .filter((d) => d.kind === 'videoinput').map((d) => d.deviceId));
      assert.equal(await a.page.evaluate(() => window.kaiwa.room.localStream.getVideoTracks()[0].getSettings().deviceId), devices[2]);
      // Back to the first camera from the devices panel, mid-call.
      await a.page.evaluate((id) => {
        window.__videoSender = window.kaiwa.room.peerConnection(id).getSenders().find((s) => s.track?.kind === 'video');
      }, b.id);
      await a.page.getByTestId('toggle-settings').click();
      await a.page.waitForFunction(() => document.querySelectorAll('[data-testid="settings-camera-select"] option').length === 3);
      await a.page.getByTestId('settings-camera-select').selectOption(devices[0]);
      await a.page.waitForFunction((dev) => window.kaiwa.room.localStream.getVideoTracks()[0]?.getSettings().deviceId === dev, devices[0]);
      const after = await a.page.evaluate((id) => {
        const sender = window.kaiwa.room.peerConnection(id).getSenders().find((s) => s.track?.kind === 'video');
        const self = document.querySelector('[data-testid="tile"][data-self="true"] video').srcObject.getVideoTracks()[0];
        return { same: sender === window.__videoSender, sent: sender.track.id, local: window.kaiwa.room.localStream.getVideoTracks()[0].id, self: self.id };
      }, b.id);
      assert.equal(after.same, true, 'replaceTrack on the same sender');
      assert.equal(after.sent, after.local);
      assert.equal(after.self, after.local, 'the self view shows the new camera');
      await waitForRemoteVideo(b.page, a.id);
    } finally {
      await a?.close();
      await b?.close();
      await two.close();
    }
  });
});
