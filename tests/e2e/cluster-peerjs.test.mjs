// The real `peerjs` client (1.5.5) in headless Chromium against two kaiwa nodes on Redis (docs/cluster.md, "PeerJS"):
// a page on each node; the key's room lives on the first, the second page's signaling goes through a link. A data
// connection (text and a 2 MiB binary checked by SHA-256) and a media call whose remote videos play, across the
// nodes, and `unavailable-id` for an id taken on the other node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cluster, skip } from '../integration/cluster.mjs';
import { metric } from '../integration/client.mjs';
import { launchBrowser } from './helpers.mjs';
import { callAndPlay, exchangeData, openPage, openWithId } from './peerjs-pages.mjs';

test('peerjs pages on two nodes exchange data and call each other', { skip, timeout: 180_000 }, async (t) => {
  const { nodes: [n1, n2] } = await cluster(t, 2);
  const browser = await launchBrowser();
  const contexts = [];
  t.after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser.close();
  });
  const a = await openPage(browser, n1, contexts);  // first: the key's room is placed on n1
  const b = await openPage(browser, n2, contexts);
  assert.notEqual(a.id, b.id);
  assert.equal(await metric(n2, 'kaiwa_cluster_links'), 1);

  // A (n1) opens a data connection to B (n2): B's half of the signaling crosses the nodes.
  await exchangeData(a, b);
  // B (n2) calls A (n1).
  await callAndPlay(b, a);

  // A third page on n2 asking for A's id (held in n1's room) gets `unavailable-id`.
  assert.equal(await openWithId(browser, n2, contexts, a.id), 'unavailable-id');
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
});
