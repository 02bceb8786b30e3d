// The real `peerjs` npm client (1.5.5) in a Chromium page, for the PeerJS e2e tests (one node: peerjs.test.mjs; a
// cluster: cluster-peerjs.test.mjs): a page with the bundle, a camera and a Peer; a data connection and a media call
// between two such pages, checked.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, WAIT } from './helpers.mjs';

export const BUNDLE = join(ROOT, 'node_modules', 'peerjs', 'dist', 'peerjs.min.js');

/**
 * An empty document from kaiwa itself (GET /healthz): a secure context on the server's origin. A page fulfilled by
 * the test instead, or one on localhost, is blocked by Chromium's local-network-access checks from reaching
 * 127.0.0.1.
 */
export async function blankPage(page, server) {
  await page.goto(`${server.url}/healthz`);
  await page.evaluate(() => {
    document.body.textContent = '';
  });
}

/**
 * A page on `server` with the peerjs bundle and a camera stream; `window.peer` is a Peer that got its id from the
 * server, or `wantId`. Its context is pushed onto `contexts` (the caller closes them).
 */
export async function openPage(browser, server, contexts, wantId) {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  await blankPage(page, server);
  await page.addScriptTag({ path: BUNDLE });
  const id = await page.evaluate(
    async ([port, wantId]) => {
      // A camera first: with the permission granted Chromium gathers plain loopback candidates, not mDNS names.
      window.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      window.log = [];
      window.received = [];
      const options = { host: '127.0.0.1', port, path: '/', key: 'peerjs', secure: false, debug: 1,
        config: { iceServers: [] } };
      window.makePeer = (id) => (id ? new Peer(id, options) : new Peer(options));
      window.peer = window.makePeer(wantId);
      const peer = window.peer;
      peer.on('error', (e) => window.log.push(`error ${e.type}`));
      peer.on('connection', (conn) => {
        window.incoming = conn;
        conn.on('data', async (data) => {
          if (typeof data === 'string') {
            window.received.push(data);
            conn.send(`echo:${data}`);
          } else {
            const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer ?? data);
            const hash = await crypto.subtle.digest('SHA-256', bytes);
            const hex = [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, '0')).join('');
            window.received.push(`binary:${bytes.length}:${hex}`);
          }
        });
      });
      peer.on('call', (call) => {
        call.answer(window.stream);
        call.on('stream', (remote) => {
          const v = document.createElement('video');
          v.id = 'remote';
          v.muted = true;
          v.autoplay = true;
          v.playsInline = true;
          v.srcObject = remote;
          document.body.append(v);
          v.play().catch(() => undefined);
        });
      });
      return new Promise((resolve, reject) => {
        peer.on('open', resolve);
        peer.on('error', (e) => reject(new Error(`${e.type}: ${e.message}`)));
      });
    },
    [server.port, wantId],
  );
  return { page, context, id, errors };
}

export async function remoteVideoPlays(page) {
  await page.waitForFunction(() => {
    const v = document.getElementById('remote');
    return v && v.videoWidth > 0 && v.readyState >= 2 && v.currentTime > 0;
  }, null, { timeout: WAIT, polling: 100 });
  const t0 = await page.$eval('#remote', (v) => v.currentTime);
  await page.waitForFunction((t) => document.getElementById('remote').currentTime > t + 0.2, t0,
    { timeout: WAIT, polling: 100 });
}

/** A data connection from page `a` to page `b`: text both ways, then 2 MiB of random bytes checked by SHA-256. */
export async function exchangeData(a, b) {
  const sent = await a.page.evaluate(async (bId) => {
    const conn = window.peer.connect(bId, { reliable: true });
    window.outgoing = conn;
    window.replies = [];
    conn.on('data', (d) => window.replies.push(d));
    await new Promise((resolve, reject) => {
      conn.on('open', resolve);
      conn.on('error', reject);
    });
    conn.send('こんにちは kaiwa');
    const bytes = new Uint8Array(2 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    const hash = await crypto.subtle.digest('SHA-256', bytes);
    conn.send(bytes.buffer);
    return [...new Uint8Array(hash)].map((x) => x.toString(16).padStart(2, '0')).join('');
  }, b.id);
  await b.page.waitForFunction(() => window.received.length >= 2, null, { timeout: 60_000, polling: 200 });
  const received = await b.page.evaluate(() => window.received);
  assert.equal(received[0], 'こんにちは kaiwa');
  assert.equal(received[1], `binary:${2 * 1024 * 1024}:${sent}`);
  await a.page.waitForFunction(() => window.replies.includes('echo:こんにちは kaiwa'));
  assert.equal(await b.page.evaluate(() => window.incoming.peer), a.id);
}

/** A media call from page `a` to page `b`, answered with B's camera: both remote videos play. */
export async function callAndPlay(a, b) {
  await a.page.evaluate((bId) => {
    const call = window.peer.call(bId, window.stream);
    call.on('stream', (remote) => {
      const v = document.createElement('video');
      v.id = 'remote';
      v.muted = true;
      v.autoplay = true;
      v.srcObject = remote;
      document.body.append(v);
      v.play().catch(() => undefined);
    });
  }, b.id);
  await Promise.all([remoteVideoPlays(a.page), remoteVideoPlays(b.page)]);
}

/** A Peer asking `server` for `id` in a page of its own: resolves 'open', or the error type (`unavailable-id`...). */
export async function openWithId(browser, server, contexts, id) {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  await blankPage(page, server);
  await page.addScriptTag({ path: BUNDLE });
  return page.evaluate(
    ([port, wantId]) =>
      new Promise((resolve) => {
        const p = new Peer(wantId, { host: '127.0.0.1', port, path: '/', key: 'peerjs', debug: 0 });
        p.on('open', () => resolve('open'));
        p.on('error', (e) => resolve(e.type));
      }),
    [server.port, id],
  );
}
