// Data channels through the SFU (docs/sfu.md, "Data channels"): three pages in a `?media=sfu` room (one of them
// sending no media at all) exchange chat and a 3 MiB file over the `kaiwa` channel of their publish connections,
// which kaiwa relays. Proof that it went
// through kaiwa: the pages' channel counters, kaiwa's /metrics (messages and bytes relayed: the file's bytes
// arrive once from the sender and leave twice), and no page has a peer connection to another page.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  WAIT, countPeerConnections, freeUdpTcpPort, launchBrowser, openPeer, serverMetric, startServer, uniqueRoom,
} from './helpers.mjs';

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

// A series that is not there yet counts as 0 (kaiwa writes a labelled one once it has counted something).
async function metric(name) {
  const v = await serverMetric(server, name);
  return Number.isNaN(v) ? 0 : v;
}

/** Waits until kaiwa's published counter (updated once a second) reaches `atLeast`. */
async function waitForMetric(name, atLeast) {
  const end = Date.now() + WAIT;
  for (;;) {
    const v = await metric(name);
    if (v >= atLeast || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('chat and a 3 MiB file go through the SFU data channel, verified', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('sfudata');
  const peers = [];
  try {
    // Cameras off (the test is about data, and the machine may be busy); Cai sends nothing at all, so its publish
    // connection carries only the data channel.
    const off = (buttons) => async (page) => {
      for (const b of buttons) await page.getByTestId(b).click();
    };
    peers.push(...await Promise.all([
      openPeer(browser, server, room, 'Ann', { query: 'media=sfu', initScript: countPeerConnections, beforeJoin: off(['prejoin-camera']) }),
      openPeer(browser, server, room, 'Ben', { query: 'media=sfu', initScript: countPeerConnections, beforeJoin: off(['prejoin-camera']) }),
      openPeer(browser, server, room, 'Cai', { query: 'media=sfu', initScript: countPeerConnections,
        beforeJoin: off(['prejoin-camera', 'prejoin-mic']) }),
    ]));
    for (const p of peers) {
      await p.page.waitForFunction(() => window.kaiwa.room.debugInfo().sfuData.open, null, { timeout: WAIT });
    }
    const [sender, ...others] = peers;
    const inBefore = await metric('kaiwa_sfu_data_bytes_total');
    const outBefore = await metric('kaiwa_sfu_data_delivered_bytes_total');

    // Chat: typed on one page, shown on the others, carried by the channel.
    await sender.page.getByTestId('chat-input').fill('hello through the SFU channel');
    await sender.page.getByTestId('chat-send').click();
    for (const p of others) {
      await p.page.locator('[data-testid="chat-text"]', { hasText: 'hello through the SFU channel' }).waitFor({ timeout: WAIT });
      assert.ok((await p.page.evaluate(() => window.kaiwa.room.debugInfo().sfuData.received)) >= 1);
    }

    // A 3 MiB file to everyone, sent once.
    const size = 3 * 1024 * 1024;
    const sha256 = await sender.page.evaluate(async (sz) => {
      const bytes = new Uint8Array(sz);
      for (let off = 0; off < sz; off += 65536) crypto.getRandomValues(bytes.subarray(off, Math.min(sz, off + 65536)));
      window.__file = new File([bytes], 'big.bin', { type: 'application/octet-stream' });
      const digest = await crypto.subtle.digest('SHA-256', bytes);
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
    }, size);
    const sentBefore = await sender.page.evaluate(() => window.kaiwa.room.debugInfo().sfuData.sent);
    const received = others.map((p) => p.page.evaluate(() => new Promise((resolve) => {
      window.kaiwa.room.on('file-offer', (f) => window.kaiwa.room.acceptFile(f.peer, f.id));
      window.kaiwa.room.on('file-received', async (f) => {
        const buf = await (await fetch(f.url)).arrayBuffer();
        const digest = await crypto.subtle.digest('SHA-256', buf);
        resolve({ verified: f.verified, size: buf.byteLength,
          sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('') });
      });
      window.kaiwa.room.on('file-failed', (f) => resolve({ failed: f.error.message }));
    })));
    const outcome = await sender.page.evaluate(async () => {
      const h = await window.kaiwa.room.sendFile(window.__file);
      return (await h.done).map((r) => r.status === 'fulfilled' ? { verified: r.value.verified } : { failed: String(r.reason) });
    });
    assert.deepEqual(outcome, [{ verified: true }, { verified: true }]);
    for (const r of await Promise.all(received)) assert.deepEqual(r, { verified: true, size, sha256 });

    // Sent once: the sender's channel carried about one copy (48 KiB chunks, base64), kaiwa delivered two.
    const chunks = Math.ceil(size / (48 * 1024));
    const sent = (await sender.page.evaluate(() => window.kaiwa.room.debugInfo().sfuData.sent)) - sentBefore;
    assert.ok(sent >= chunks + 2 && sent <= chunks + 4, `the sender sent ${sent} messages for ${chunks} chunks`);
    const base64 = (size * 4) / 3;
    const bytesIn = (await waitForMetric('kaiwa_sfu_data_bytes_total', inBefore + base64)) - inBefore;
    const bytesOut = (await waitForMetric('kaiwa_sfu_data_delivered_bytes_total', outBefore + 2 * base64)) - outBefore;
    assert.ok(bytesIn >= base64 && bytesIn < base64 * 1.1, `kaiwa took ${bytesIn} bytes from the sender`);
    assert.ok(bytesOut >= 2 * base64 && bytesOut < 2 * base64 * 1.1, `kaiwa relayed ${bytesOut} bytes`);
    assert.equal(await metric('kaiwa_sfu_data_dropped_total{reason="buffer_full"}'), 0);

    // No page has a connection to another page: only its two to kaiwa.
    for (const p of peers) {
      const info = await p.page.evaluate(() => ({ links: window.kaiwa.room.debugInfo().links, created: window.__pcs.length }));
      assert.equal(info.links, 0);
      assert.ok(info.created <= 2, `${info.created} peer connections`);
      assert.deepEqual(p.errors, []);
    }
  } finally {
    for (const p of peers) await p.close();
  }
});
