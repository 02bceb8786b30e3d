// Joining through the web app: the pre-join screen (preview, name, devices, joining muted, invite link), the
// address after joining, and invite tokens against a server run with --auth-secret (#token= / ?token=, and a
// distinct message for a missing, invalid, expired or wrong-room token).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  WAIT, joinFromPrejoin, launchBrowser, openPeer, startServer, tile, uniqueRoom, waitForRemoteVideo,
} from './helpers.mjs';

const SECRET = 'e2e-join-secret';
let server;
let authServer;
let browser;

before(async () => {
  server = await startServer();
  authServer = await startServer({ extraArgs: ['--auth-secret', SECRET] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await authServer?.stop();
});

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A room token as `kaiwa token` makes it (HS256 over header.payload). */
function token({ room, sub = 'guest', exp = Math.floor(Date.now() / 1000) + 3600, secret = SECRET }) {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ room, sub, exp })}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

async function newPage(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  return { context, page };
}

test('pre-join: preview, devices, name; joining muted is what the others see first; the address loses the name', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('prejoin');
  const host = await openPeer(browser, server, room, 'Host');
  const { context, page } = await newPage();
  try {
    await page.goto(`${server.url}/room/${room}?name=${encodeURIComponent('Mia Muted')}`);
    await page.locator('[data-testid="prejoin"][data-ready="true"]').waitFor();
    // Nothing joined yet, and the name is out of the address bar already.
    assert.equal(new URL(page.url()).search, '');
    assert.equal(await host.page.getByTestId('tile').count(), 1);
    assert.equal(await page.getByTestId('prejoin-name').inputValue(), 'Mia Muted');
    await page.waitForFunction(() => {
      const v = document.querySelector('[data-testid="prejoin-preview"]');
      return v.videoWidth > 0 && v.currentTime > 0;
    });
    // Device pickers list the (fake) camera and microphones.
    assert.ok(await page.locator('[data-testid="prejoin-camera-select"] option').count() >= 1);
    assert.ok(await page.locator('[data-testid="prejoin-mic-select"] option').count() >= 2);
    // The invite link is there before joining: the room URL, no name, no token.
    assert.equal(await page.getByTestId('invite-link').inputValue(), `${server.url}/room/${room}`);
    // Another microphone chosen before joining is the one the call uses.
    const micChoice = await page.evaluate(() => [...document.querySelectorAll('[data-testid="prejoin-mic-select"] option')]
      .find((o) => !o.selected).value);
    await page.getByTestId('prejoin-mic-select').selectOption(micChoice);
    await page.waitForFunction((dev) => document.querySelector('[data-testid="prejoin-mic-select"]').value === dev, micChoice);
    // Mic off before joining; aria-pressed tells whether it is on.
    const mic = page.getByTestId('prejoin-mic');
    assert.equal(await mic.getAttribute('aria-pressed'), 'true');
    await mic.click();
    assert.equal(await mic.getAttribute('aria-pressed'), 'false');
    assert.equal(await mic.getAttribute('aria-label'), 'Turn microphone on');
    await page.getByTestId('prejoin-join').click();
    await page.locator('[data-testid="room"][data-joined="true"]').waitFor();
    const me = await page.evaluate(() => ({
      id: window.kaiwa.room.id,
      state: window.kaiwa.room.state,
      audio: window.kaiwa.room.localStream.getAudioTracks().map((t) => t.enabled),
      mic: window.kaiwa.room.localStream.getAudioTracks()[0].getSettings().deviceId,
      prefs: JSON.parse(localStorage.getItem('kaiwa.devices')),
      path: location.pathname + location.search + location.hash,
      saved: localStorage.getItem('kaiwa.displayName'),
    }));
    assert.deepEqual(me.state, { audioMuted: true, videoOff: false, screenSharing: false });
    assert.deepEqual(me.audio, [false]);
    assert.equal(me.mic, micChoice, 'the microphone picked on the pre-join screen');
    assert.equal(me.prefs.audio, micChoice, 'and remembered');
    assert.equal(me.prefs.micOn, false);
    assert.equal(me.path, `/room/${room}`);
    assert.equal(me.saved, 'Mia Muted');
    assert.equal(await page.getByTestId('toggle-mic').getAttribute('aria-pressed'), 'false');
    // The host sees her muted from the first moment: the state came with the join.
    const seen = await host.page.evaluate(() => window.__events.filter((e) => e.type === 'peer-joined').length);
    assert.equal(seen, 1);
    assert.equal(await host.page.evaluate((id) => window.kaiwa.room.peers.get(id).state.audioMuted, me.id), true);
    await tile(host.page, me.id).getByTestId('badge-muted').waitFor({ state: 'visible' });
    await waitForRemoteVideo(host.page, me.id);

    // A reload (what "Rejoin" does) shows the pre-join screen again with the remembered name.
    await page.reload();
    await page.getByTestId('prejoin').waitFor();
    assert.equal(await page.getByTestId('prejoin-name').inputValue(), 'Mia Muted');
  } finally {
    await context.close();
    await host.close();
  }
});

test('invite tokens: #token= joins and leaves the address bar; missing, invalid, expired, wrong-room are told apart', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('tok');
  // A valid token in the fragment: joins, the name comes from `sub`, the token leaves the address bar.
  const valid = await openPeer(browser, authServer, room, '', { hash: `#token=${token({ room, sub: 'Tina' })}` })
    .catch((e) => { throw new Error(`valid #token= did not join: ${e.message}`); });
  try {
    const v = await valid.page.evaluate(() => ({ url: location.href, name: window.kaiwa.room.name }));
    assert.ok(!v.url.includes('token'), v.url);
    assert.ok(!v.url.includes('name='), v.url);
    assert.equal(v.name, 'Tina');
    // ?token= works as well (for links made by tools that cannot set a fragment).
    const q = await newPage();
    await q.page.goto(`${authServer.url}/room/${room}?token=${token({ room: '*', sub: 'Quinn' })}`);
    await joinFromPrejoin(q.page);
    await q.page.locator('[data-testid="room"][data-joined="true"]').waitFor();
    assert.equal(new URL(q.page.url()).search, '');
    await q.context.close();

    const cases = [
      ['', 'token-missing', /invite-only/],
      [`#token=not.a.token`, 'token-invalid', /not valid/],
      [`#token=${token({ room, secret: 'another secret' })}`, 'token-invalid', /not valid/],
      [`#token=${token({ room, exp: Math.floor(Date.now() / 1000) - 60 })}`, 'token-expired', /expired/],
      [`#token=${token({ room: 'some-other-room' })}`, 'token-wrong-room', /some-other-room/],
    ];
    for (const [hash, reason, text] of cases) {
      const { context, page } = await newPage();
      try {
        await page.goto(`${authServer.url}/room/${room}?name=Eve${hash}`);
        await page.getByTestId('prejoin').waitFor();
        // Expired and wrong-room tokens are flagged before joining too.
        if (reason === 'token-expired' || reason === 'token-wrong-room') {
          assert.equal(await page.getByTestId('prejoin-token-problem').getAttribute('data-code'), reason);
        }
        await joinFromPrejoin(page);
        const screen = page.getByTestId('join-error');
        await screen.waitFor();
        assert.equal(await screen.getAttribute('data-code'), 'unauthorized');
        assert.equal(await screen.getAttribute('data-reason'), reason, `${hash || 'no token'}`);
        assert.match(await screen.textContent(), text);
        assert.ok(!page.url().includes('token='), 'the token is not left in the address bar');
        // Retrying a refused token cannot help: no "Try again" then, and the tab forgets it.
        assert.equal(await page.getByTestId('try-again').count(), reason === 'token-missing' ? 1 : 0);
        assert.equal(await page.evaluate((r) => sessionStorage.getItem(`kaiwa.token.${r}`), room), null);
      } finally {
        await context.close();
      }
    }
  } finally {
    await valid.close();
  }
});

test('pre-join on a phone: everything fits the width; camera off before joining', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('prephone');
  const host = await openPeer(browser, server, room, 'Host');
  const phone = await openPeer(browser, server, room, 'Phone', {
    viewport: { width: 390, height: 844 },
    beforeJoin: async (page) => {
      const fit = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        right: Math.max(...[...document.querySelectorAll('[data-testid="prejoin"] button, [data-testid="prejoin"] input, [data-testid="prejoin"] select')]
          .filter((el) => el.offsetParent !== null).map((el) => el.getBoundingClientRect().right)),
      }));
      assert.ok(fit.scrollWidth <= 390 && fit.right <= 390, JSON.stringify(fit));
      await page.getByTestId('prejoin-camera').click();
      assert.equal(await page.getByTestId('prejoin-camera').getAttribute('aria-pressed'), 'false');
    },
  });
  try {
    assert.deepEqual(await phone.page.evaluate(() => window.kaiwa.room.state), { audioMuted: false, videoOff: true, screenSharing: false });
    await tile(host.page, phone.id).getByTestId('badge-video-off').waitFor({ state: 'visible' });
    assert.equal(await host.page.evaluate((id) => window.kaiwa.room.peers.get(id).state.videoOff, phone.id), true);
  } finally {
    await phone.close();
    await host.close();
  }
});
