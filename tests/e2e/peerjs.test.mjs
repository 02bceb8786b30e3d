// The real `peerjs` npm client (1.5.5) in headless Chromium against kaiwa's PeerJS front door (docs/peerjs.md):
// ids from GET /peerjs/id, a data connection with text and a 2 MiB binary checked by
// SHA-256, a media call whose remote video plays, ID-TAKEN for a reused id, and a reconnect that keeps the id.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, startServer } from './helpers.mjs';
import { callAndPlay, exchangeData, openPage, openWithId } from './peerjs-pages.mjs';

let server;
let browser;
const contexts = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await server?.stop();
});

test('peerjs clients get ids, exchange text and a 2 MiB binary, and call each other', { timeout: 120_000 }, async () => {
  const a = await openPage(browser, server, contexts);
  const b = await openPage(browser, server, contexts);
  assert.match(a.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(a.id, b.id);

  // Data connection: text both ways, then 2 MiB of random bytes, chunked by peerjs, checked by SHA-256.
  await exchangeData(a, b);

  // Media call A -> B, answered with B's camera: both remote videos play.
  await callAndPlay(a, b);

  // ID-TAKEN: a third client asking for A's id gets `unavailable-id`.
  assert.equal(await openWithId(browser, server, contexts, a.id), 'unavailable-id');

  // Reconnect: A drops its signaling connection and gets the same id back; B can still reach it.
  const again = await a.page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const peer = window.peer;
        peer.once('disconnected', () => peer.reconnect());
        peer.once('open', resolve);
        peer.once('error', (e) => reject(new Error(e.type)));
        peer.disconnect();
      }),
  );
  assert.equal(again, a.id);
  const text = await b.page.evaluate(
    (aId) =>
      new Promise((resolve, reject) => {
        const conn = window.peer.connect(aId);
        conn.on('open', () => conn.send('after reconnect'));
        conn.on('data', resolve);
        conn.on('error', reject);
      }),
    a.id,
  );
  assert.equal(text, 'echo:after reconnect');
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
});
