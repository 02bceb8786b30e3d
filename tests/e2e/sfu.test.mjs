// SFU rooms through the SDK and the web app (docs/web.md, "SFU rooms"): four pages in a `?media=sfu` room see and
// hear each other with at most two peer connections each (both to kaiwa); a screen shared through the SFU is the
// screen tile at the others; a file sent in an sfu room reaches everyone verified; an `auto` room going 2 → 3 → 2
// switches mesh → sfu → mesh while the first two pages' remote video keeps playing on the same <video> element.
// Files over signaling are also checked in a mesh room (`sendFile(…, {viaServer: true})`).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  WAIT, countPeerConnections, freeUdpTcpPort, launchBrowser, openPeer, sleep, startServer, uniqueRoom, waitForMediaFlow,
  waitForRemoteVideo,
} from './helpers.mjs';

let server;
let browser;

before(async () => {
  // kaiwa's media port on loopback, as in whip.test.mjs (its host candidate is what the pages reach).
  const sfuPort = await freeUdpTcpPort();
  server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function pcCounts(page) {
  return page.evaluate(() => ({
    created: window.__pcs.length,
    open: window.__pcs.filter((pc) => pc.signalingState !== 'closed').length,
    states: window.__pcs.map((pc) => pc.connectionState),
    republishes: window.kaiwa.room.sfuConnections()?.republishes,
  }));
}

/** Waits until the frames decoded from `peerId` (SDK stats) grow by `n` from now. */
async function waitForDecodedFrames(page, peerId, n = 10) {
  const before = await page.evaluate(async (id) => (await window.kaiwa.room.getStats(id))?.video.framesDecoded ?? 0, peerId);
  await page.waitForFunction(async ([id, b, k]) => {
    const s = await window.kaiwa.room.getStats(id);
    return !!s && s.video.framesDecoded >= b + k;
  }, [peerId, before, n], { timeout: WAIT, polling: 250 });
}

/** Random bytes as a file picked in the files panel; returns their SHA-256. */
async function pickRandomFile(page, name, size, type) {
  return page.evaluate(async ([n, sz, ty]) => {
    const bytes = new Uint8Array(sz);
    for (let off = 0; off < sz; off += 65536) crypto.getRandomValues(bytes.subarray(off, Math.min(sz, off + 65536)));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], n, { type: ty }));
    const input = document.querySelector('[data-testid="file-input"]');
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }, [name, size, type]);
}

/** Accepts the offer of `name` on `page`, waits until it is done, and hashes what the download link holds. */
async function acceptAndHash(page, name) {
  const offer = page.locator('[data-testid="file-transfer"][data-direction="receive"][data-state="offer"]', { hasText: name });
  await offer.waitFor({ state: 'attached', timeout: WAIT });
  const id = await offer.getAttribute('data-transfer-id');
  await offer.getByTestId('file-accept').click();
  const row = page.locator(`[data-testid="file-transfer"][data-transfer-id="${id}"][data-direction="receive"][data-state="done"]`);
  await row.waitFor({ state: 'attached', timeout: WAIT });
  await row.getByTestId('file-verified').waitFor({ state: 'visible', timeout: WAIT });
  return page.evaluate(async (tid) => {
    const a = document.querySelector(`[data-testid="file-transfer"][data-transfer-id="${tid}"][data-direction="receive"] [data-testid="file-link"]`);
    const buf = await (await fetch(a.href)).arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', buf);
    return { download: a.getAttribute('download'), size: buf.byteLength,
      sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('') };
  }, id);
}

describe('four pages in an sfu room', () => {
  const room = uniqueRoom('sfu');
  let peers = [];

  before(async () => {
    for (const name of ['Ann', 'Ben', 'Cai', 'Dee']) {
      peers.push(await openPeer(browser, server, room, name, { query: 'media=sfu', initScript: countPeerConnections }));
    }
  });

  after(async () => {
    for (const p of peers) await p.close();
    peers = [];
  });

  test('everyone sees and hears everyone through kaiwa, with at most two peer connections each', { timeout: 120_000 }, async () => {
    for (const p of peers) {
      assert.equal(await p.page.evaluate(() => window.kaiwa.room.mediaMode), 'sfu');
      assert.equal(await p.page.evaluate(() => window.kaiwa.room.mediaPolicy), 'sfu');
      const badge = p.page.getByTestId('media-mode');
      await badge.waitFor({ state: 'visible', timeout: WAIT });
      assert.equal(await badge.textContent(), 'via server');
    }
    const waits = [];
    for (const p of peers) for (const q of peers) if (p !== q) waits.push(waitForRemoteVideo(p.page, q.id, 60_000));
    await Promise.all(waits);
    for (const p of peers) {
      for (const q of peers) {
        if (p === q) continue;
        await waitForMediaFlow(p.page, q.id);
        await waitForDecodedFrames(p.page, q.id);
        // Each tile shows its own peer's camera: the stream holds one audio and one video track from kaiwa.
        const kinds = await p.page.evaluate((id) => window.kaiwa.room.peers.get(id).stream.getTracks().map((t) => t.kind).sort(), q.id);
        assert.deepEqual(kinds, ['audio', 'video']);
      }
      const counts = await pcCounts(p.page);
      assert.ok(counts.created <= 2 && counts.open <= 2, `${p.name}: ${JSON.stringify(counts)}`);
      const info = await p.page.evaluate(() => window.kaiwa.room.debugInfo());
      assert.equal(info.links, 0, 'no mesh connection');
      assert.equal(info.sfu, true);
    }
    // The per-peer stats are the peer's own tracks: two tiles do not report the same inbound bytes.
    const a = peers[0];
    const stats = await a.page.evaluate(async (ids) => Promise.all(ids.map((id) => window.kaiwa.room.getStats(id))),
      peers.slice(1).map((p) => p.id));
    assert.equal(new Set(stats.map((s) => s.bytesReceived)).size, 3, JSON.stringify(stats.map((s) => s.bytesReceived)));
    for (const s of stats) assert.ok(s.bytesSent > 0 && s.rttMs !== null, JSON.stringify(s));
    for (const p of peers) assert.deepEqual(p.errors, [], `${p.name}: ${p.errors}`);
  });

  test('a screen shared through kaiwa is the screen tile at the others; the camera stays', { timeout: 90_000 }, async () => {
    const [presenter, ...viewers] = peers;
    await presenter.page.getByTestId('toggle-screen').click();
    const screenSel = `[data-testid="screen-tile"][data-peer-id="${presenter.id}"]`;
    for (const v of viewers) {
      await v.page.waitForFunction((sel) => {
        const video = document.querySelector(`${sel} video`);
        return video && video.videoWidth > 0 && Math.abs(video.videoWidth / video.videoHeight - 16 / 9) < 0.05;
      }, screenSel, { timeout: 40_000, polling: 100 });
      await waitForRemoteVideo(v.page, presenter.id);
    }
    // Renegotiated on the publish connection: still two connections.
    const counts = await pcCounts(presenter.page);
    assert.ok(counts.created <= 2, JSON.stringify(counts));
    await presenter.page.getByTestId('toggle-screen').click();
    for (const v of viewers) await v.page.locator(screenSel).waitFor({ state: 'detached', timeout: WAIT });
    await waitForDecodedFrames(viewers[0].page, presenter.id);
  });

  test('a file to everybody goes through kaiwa and arrives verified at every other page', { timeout: 90_000 }, async () => {
    const [sender, ...others] = peers;
    const size = 300_000; // several chunks
    const sha256 = await pickRandomFile(sender.page, 'report.bin', size, 'application/octet-stream');
    await sender.page.getByTestId('file-target').selectOption('');
    await sender.page.getByTestId('file-send').click();
    for (const p of others) assert.deepEqual(await acceptAndHash(p.page, 'report.bin'), { download: 'report.bin', size, sha256 });
    await sender.page.waitForFunction((n) => document.querySelectorAll(
      '[data-testid="file-transfer"][data-direction="send"][data-state="done"]').length === n, others.length, { timeout: WAIT });
    // It went through kaiwa (the SFU data channel, sfu-data.test.mjs): still two connections, none to a peer.
    for (const p of peers) assert.ok((await pcCounts(p.page)).created <= 2);
  });
});

test('an auto room switches mesh → sfu → mesh and the remote video keeps playing', { timeout: 180_000 }, async () => {
  const room = uniqueRoom('auto');
  const opts = { query: 'media=auto', initScript: countPeerConnections };
  const a = await openPeer(browser, server, room, 'Amy', opts);
  const b = await openPeer(browser, server, room, 'Bo', opts);
  let c = null;
  try {
    await Promise.all([waitForRemoteVideo(a.page, b.id), waitForRemoteVideo(b.page, a.id)]);
    for (const p of [a, b]) assert.equal(await p.page.evaluate(() => window.kaiwa.room.mediaMode), 'mesh');
    // Sample each page's <video> of the other every 250 ms: frames presented, and whether it is still the same
    // element showing the same MediaStream object.
    for (const [p, other] of [[a, b], [b, a]]) {
      await p.page.evaluate((id) => {
        const sel = `[data-testid="tile"][data-peer-id="${id}"] video`;
        const first = document.querySelector(sel);
        const stream = window.kaiwa.room.peers.get(id).stream;
        window.__samples = [];
        window.__sampler = setInterval(() => {
          const v = document.querySelector(sel);
          window.__samples.push({ t: performance.now(), frames: v ? v.getVideoPlaybackQuality().totalVideoFrames : -1,
            sameElement: v === first, sameStream: v?.srcObject === stream, mode: window.kaiwa.room.mediaMode });
        }, 250);
      }, other.id);
    }
    await sleep(2000);
    c = await openPeer(browser, server, room, 'Cy', opts);
    for (const p of [a, b]) {
      await p.page.waitForFunction(() => window.kaiwa.room.mediaMode === 'sfu', null, { timeout: WAIT });
      // The mesh connection goes once kaiwa carries the other's media both ways.
      await p.page.waitForFunction(() => window.kaiwa.room.debugInfo().links === 0, null, { timeout: WAIT });
    }
    await Promise.all([waitForRemoteVideo(c.page, a.id, 40_000), waitForRemoteVideo(a.page, c.id, 40_000)]);
    await sleep(2000);
    await c.close();
    c = null;
    for (const p of [a, b]) {
      await p.page.waitForFunction(() => window.kaiwa.room.mediaMode === 'mesh', null, { timeout: WAIT });
      await p.page.waitForFunction(() => !window.kaiwa.room.debugInfo().sfu && window.kaiwa.room.debugInfo().links === 1,
        null, { timeout: WAIT });
    }
    await sleep(3000);
    for (const [p, other] of [[a, b], [b, a]]) {
      const samples = await p.page.evaluate(() => {
        clearInterval(window.__sampler);
        return window.__samples;
      });
      const modes = samples.map((s) => s.mode).filter((m, i, all) => i === 0 || all[i - 1] !== m);
      assert.deepEqual(modes, ['mesh', 'sfu', 'mesh'], `${p.name}: modes seen`);
      assert.ok(samples.every((s) => s.sameElement && s.sameStream), `${p.name}: the same <video> and MediaStream throughout`);
      // Frames keep coming around either switch: the longest time without a new frame stays short. (A bound of
      // seconds, not less: on a loaded 2-core machine a page's decoder stalls now and then in a plain mesh too.)
      let stall = { ms: 0, at: 0, mode: '' };
      for (let i = 1, last = 0; i < samples.length; i++) {
        if (samples[i].frames > samples[last].frames) {
          last = i;
          continue;
        }
        const ms = samples[i].t - samples[last].t;
        if (ms > stall.ms) stall = { ms, at: i, mode: samples[i].mode };
      }
      assert.ok(stall.ms < 3000, `${p.name}: no new frame of ${other.name} for ${Math.round(stall.ms)} ms (mode ${stall.mode}): ` +
        JSON.stringify(samples.slice(Math.max(0, stall.at - 12), stall.at + 3).map((x) => [Math.round(x.t), x.frames, x.mode])));
      assert.ok(samples.at(-1).frames > samples[0].frames + 50);
      const counts = await pcCounts(p.page);
      console.log(`${p.name}: ${samples.length} samples, frames ${samples[0].frames} → ${samples.at(-1).frames}, ` +
        `longest without a new frame ${Math.round(stall.ms)} ms (${stall.mode}), ` +
        `peer connections created ${counts.created}, open ${counts.open}`);
      assert.equal(counts.open, 1, 'back to one mesh connection');
      assert.deepEqual(p.errors, []);
    }
    await waitForMediaFlow(a.page, b.id);
  } finally {
    await c?.close();
    await a.close();
    await b.close();
  }
});

test('files over signaling work in a mesh room too (viaServer): to one peer after its yes, and to everybody', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('sigfile');
  const peers = [];
  try {
    for (const name of ['Sen', 'Rae', 'Oli']) peers.push(await openPeer(browser, server, room, name, { query: 'media=mesh' }));
    const [sender, receiver, other] = peers;
    assert.equal(await sender.page.evaluate(() => window.kaiwa.room.mediaMode), 'mesh');
    const send = (to, name, size) => sender.page.evaluate(async ([t, n, sz]) => {
      const bytes = new Uint8Array(sz);
      for (let off = 0; off < sz; off += 65536) crypto.getRandomValues(bytes.subarray(off, Math.min(sz, off + 65536)));
      const digest = await crypto.subtle.digest('SHA-256', bytes);
      window.__done = window.kaiwa.room.sendFile(new File([bytes], n), t || undefined, { viaServer: true })
        .then((h) => h.done).then((r) => r.map((x) => x.status === 'fulfilled' && x.value.verified));
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
    }, [to, name, size]);
    // To one peer: nothing flows before its yes, then it arrives verified and the sender hears so.
    await sender.page.evaluate(() => {
      window.__sent = 0;
      window.kaiwa.room.on('file-progress', (e) => { if (e.direction === 'send') window.__sent = e.bytes; });
    });
    const one = await send(receiver.id, 'one.bin', 200_000);
    await receiver.page.locator('[data-testid="file-transfer"][data-state="offer"]', { hasText: 'one.bin' }).waitFor({ timeout: WAIT });
    await sleep(500);
    assert.equal(await sender.page.evaluate(() => window.__sent), 0, 'no bytes before the receiver accepts');
    assert.deepEqual(await acceptAndHash(receiver.page, 'one.bin'), { download: 'one.bin', size: 200_000, sha256: one });
    assert.deepEqual(await sender.page.evaluate(() => window.__done), [true]);
    assert.equal(await other.page.getByTestId('file-transfer').count(), 0, 'the bystander got nothing');
    // To everybody: one send, both receive it verified.
    const all = await send('', 'all.bin', 150_000);
    for (const p of [receiver, other]) assert.deepEqual(await acceptAndHash(p.page, 'all.bin'), { download: 'all.bin', size: 150_000, sha256: all });
    assert.deepEqual(await sender.page.evaluate(() => window.__done), [true, true]);
    for (const p of peers) assert.deepEqual(p.errors, []);
  } finally {
    for (const p of peers) await p.close();
  }
});
