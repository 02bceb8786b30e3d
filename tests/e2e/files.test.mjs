// Peer-to-peer file transfer through the web app: a 20 MiB file of random bytes to one peer, a small one to all;
// the receiver accepts or declines before any byte flows; either side cancels; several files queue; drag and drop.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WAIT, launchBrowser, openPeer, startServer, uniqueRoom, waitForRemoteVideo } from './helpers.mjs';

let server;
let browser;
let peers = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const room = uniqueRoom('files');
  // A mesh room (on a server with SFU rooms, `auto` would move three people through kaiwa): these are data-channel files.
  for (const name of ['Sender', 'Receiver', 'Bystander']) peers.push(await openPeer(browser, server, room, name, { query: 'media=mesh' }));
  // Wait for the mesh so the data channels are up (not required — sendFile waits — but keeps timings tight).
  await Promise.all([waitForRemoteVideo(peers[0].page, peers[1].id), waitForRemoteVideo(peers[0].page, peers[2].id)]);
});

after(async () => {
  for (const p of peers) await p.close();
  await browser?.close();
  await server?.stop();
});

/** Makes a File of random bytes in the page, puts it into the file input, and returns its SHA-256. */
async function pickRandomFile(page, name, size, type) {
  return (await pickRandomFiles(page, [[name, size, type]]))[0];
}

/** Several files at once (multi-select), or with `drop` dropped on the room instead; returns their SHA-256s. */
async function pickRandomFiles(page, specs, { drop = false } = {}) {
  return page.evaluate(async ([list, dropIt]) => {
    const dt = new DataTransfer();
    const hashes = [];
    for (const [n, sz, ty] of list) {
      const bytes = new Uint8Array(sz);
      for (let off = 0; off < sz; off += 65536) crypto.getRandomValues(bytes.subarray(off, Math.min(sz, off + 65536)));
      dt.items.add(new File([bytes], n, { type: ty }));
      const digest = await crypto.subtle.digest('SHA-256', bytes);
      hashes.push([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''));
    }
    if (dropIt) {
      const room = document.querySelector('[data-testid="room"]');
      room.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
      window.__overlayShown = !document.querySelector('[data-testid="drop-overlay"]').hidden;
      room.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    } else {
      const input = document.querySelector('[data-testid="file-input"]');
      input.files = dt.files;
      input.dispatchEvent(new Event('change', { bubbles: true }));
    }
    return hashes;
  }, [specs, drop]);
}

/** The row of transfer `id` on `page` (optionally one direction). */
function rowOf(page, id, dir) {
  return page.locator(`[data-testid="file-transfer"][data-transfer-id="${id}"]${dir ? `[data-direction="${dir}"]` : ''}`);
}

/** Waits for the incoming offer of `name` on `page`, checks nothing flowed yet, and accepts or declines it. */
async function answerOffer(page, name, accept = true) {
  const offer = page.locator('[data-testid="file-transfer"][data-direction="receive"][data-state="offer"]', { hasText: name });
  await offer.waitFor({ state: 'attached', timeout: WAIT });
  const id = await offer.getAttribute('data-transfer-id');
  await offer.getByTestId(accept ? 'file-accept' : 'file-decline').click();
  return id;
}

/** Reads back what the download link points at and hashes it. */
async function linkDigest(page, transferId) {
  return page.evaluate(async (id) => {
    const a = document.querySelector(`[data-testid="file-transfer"][data-transfer-id="${id}"][data-direction="receive"] [data-testid="file-link"]`);
    const buf = await (await fetch(a.href)).arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', buf);
    return {
      download: a.getAttribute('download'),
      size: buf.byteLength,
      sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''),
    };
  }, transferId);
}

test('a 20 MiB file reaches the chosen peer intact, with progress on both sides', { timeout: 120_000 }, async () => {
  const [sender, receiver, bystander] = peers;
  const size = 20 * 1024 * 1024;
  const name = 'random 20MiB (テスト).bin';
  // Watch the SDK's progress events on both sides.
  for (const p of [sender, receiver]) {
    await p.page.evaluate(() => {
      window.__progress = [];
      window.kaiwa.room.on('file-progress', (e) => window.__progress.push({ dir: e.direction, bytes: e.bytes, size: e.size }));
    });
  }
  const sha256 = await pickRandomFile(sender.page, name, size, 'application/octet-stream');
  await sender.page.getByTestId('file-target').selectOption(receiver.id);
  await sender.page.getByTestId('file-send').click();

  // An offer first: nothing flows until the receiver accepts; the sender says it is waiting.
  const row = receiver.page.locator('[data-testid="file-transfer"][data-direction="receive"]');
  await row.waitFor({ state: 'attached', timeout: WAIT });
  const transferId = await row.getAttribute('data-transfer-id');
  assert.equal(await row.getAttribute('data-state'), 'offer');
  assert.match(await row.textContent(), /Sender wants to send you this file/);
  await rowOf(sender.page, transferId, 'send').and(sender.page.locator('[data-state="waiting"]')).waitFor({ timeout: WAIT });
  assert.match(await rowOf(sender.page, transferId, 'send').getByTestId('file-status').textContent(), /waiting for Receiver to accept/);
  assert.deepEqual(await receiver.page.evaluate(() => window.__progress), [], 'no bytes before accepting');
  await row.getByTestId('file-accept').click();
  await receiver.page.locator(`[data-testid="file-transfer"][data-transfer-id="${transferId}"][data-state="done"]`)
    .waitFor({ state: 'attached', timeout: 90_000 });
  await sender.page.locator(`[data-testid="file-transfer"][data-transfer-id="${transferId}"][data-state="done"]`)
    .waitFor({ state: 'attached', timeout: WAIT });

  // Receiver: name, size, type, 100 %, verified mark, and a download link to the very same bytes.
  const r = receiver.page.locator(`[data-testid="file-transfer"][data-transfer-id="${transferId}"]`);
  assert.equal(await r.getByTestId('file-name').textContent(), name);
  assert.equal(await r.getByTestId('file-size').getAttribute('data-bytes'), String(size));
  assert.equal(await r.getByTestId('file-type').textContent(), 'application/octet-stream');
  assert.equal(await r.getByTestId('file-percent').textContent(), '100%');
  assert.equal(await r.getAttribute('data-sha256'), sha256, 'announced hash = hash computed by the test');
  assert.equal(await r.getAttribute('data-received-sha256'), sha256, 'hash computed on arrival');
  await r.getByTestId('file-verified').waitFor({ state: 'visible', timeout: WAIT });
  const link = await linkDigest(receiver.page, transferId);
  assert.deepEqual(link, { download: name, size, sha256 });

  // Speed and time left were shown while it ran (kept on the row as data attributes).
  assert.ok(Number(await r.getAttribute('data-bytes-per-second')) > 0, 'receiver saw a speed');

  // Sender: 100 % and the receiver's confirmation.
  const s = sender.page.locator(`[data-testid="file-transfer"][data-transfer-id="${transferId}"]`);
  assert.equal(await s.getByTestId('file-percent').textContent(), '100%');
  await s.getByTestId('file-verified').waitFor({ state: 'visible', timeout: WAIT });

  // Progress events: increasing, intermediate values seen, ending at the full size, on both sides.
  for (const [p, dir] of [[sender, 'send'], [receiver, 'receive']]) {
    const progress = (await p.page.evaluate(() => window.__progress)).filter((e) => e.dir === dir);
    assert.ok(progress.length >= 3, `${dir}: ${progress.length} progress events`);
    assert.equal(progress.at(-1).bytes, size, `${dir} progress reaches 100%`);
    assert.ok(progress.some((e) => e.bytes > 0 && e.bytes < size), `${dir}: intermediate progress`);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].bytes >= progress[i - 1].bytes, `${dir} progress is monotonic`);
  }

  // The bystander was not sent anything.
  assert.equal(await bystander.page.getByTestId('file-transfer').count(), 0);
});

test('a file sent to everybody reaches every peer', { timeout: 60_000 }, async () => {
  const [sender, ...others] = peers;
  const sha256 = await pickRandomFile(sender.page, 'notes.txt', 100_000, 'text/plain');
  await sender.page.getByTestId('file-target').selectOption('');
  await sender.page.getByTestId('file-send').click();
  for (const p of others) await answerOffer(p.page, 'notes.txt');
  for (const p of others) {
    const done = p.page.locator('[data-testid="file-transfer"][data-direction="receive"][data-state="done"]', { hasText: 'notes.txt' });
    await done.waitFor({ state: 'attached', timeout: WAIT });
    const id = await done.getAttribute('data-transfer-id');
    assert.deepEqual(await linkDigest(p.page, id), { download: 'notes.txt', size: 100_000, sha256 });
    assert.equal(await done.getByTestId('file-type').textContent(), 'text/plain');
  }
  // Two send rows (one per receiver), both confirmed.
  await sender.page.waitForFunction(() => document.querySelectorAll(
    '[data-testid="file-transfer"][data-direction="send"][data-state="done"]').length === 3, null, { timeout: WAIT });
});

test('a declined file sends no bytes, and the sender is told', { timeout: 60_000 }, async () => {
  const [sender, receiver] = peers;
  await receiver.page.evaluate(() => {
    window.__bytesIn = 0;
    window.kaiwa.room.on('file-progress', (e) => { if (e.direction === 'receive') window.__bytesIn += e.bytes; });
  });
  await pickRandomFile(sender.page, 'unwanted.bin', 2 * 1024 * 1024, 'application/octet-stream');
  await sender.page.getByTestId('file-target').selectOption(receiver.id);
  await sender.page.getByTestId('file-send').click();
  const id = await answerOffer(receiver.page, 'unwanted.bin', false);
  await rowOf(receiver.page, id, 'receive').and(receiver.page.locator('[data-state="declined"]')).waitFor({ timeout: WAIT });
  const s = rowOf(sender.page, id, 'send');
  await s.and(sender.page.locator('[data-state="declined"]')).waitFor({ timeout: WAIT });
  assert.match(await s.getByTestId('file-status').textContent(), /declined/);
  assert.equal(await s.getAttribute('data-code'), 'file-declined');
  assert.equal(await receiver.page.evaluate(() => window.__bytesIn), 0);
  assert.equal(await rowOf(receiver.page, id).getByTestId('file-link').count(), 0);
});

test('either side cancels: while offered, and once accepted; the next file still goes through', { timeout: 90_000 }, async () => {
  const [sender, receiver] = peers;
  // The sender withdraws an offer: the receiver's offer turns into "cancelled".
  await pickRandomFile(sender.page, 'withdrawn.bin', 1024 * 1024, 'application/octet-stream');
  await sender.page.getByTestId('file-target').selectOption(receiver.id);
  await sender.page.getByTestId('file-send').click();
  const offer = receiver.page.locator('[data-testid="file-transfer"][data-state="offer"]', { hasText: 'withdrawn.bin' });
  await offer.waitFor({ state: 'attached', timeout: WAIT });
  const id1 = await offer.getAttribute('data-transfer-id');
  await rowOf(sender.page, id1, 'send').getByTestId('file-cancel').click();
  await rowOf(receiver.page, id1).and(receiver.page.locator('[data-state="cancelled"]')).waitFor({ timeout: WAIT });
  assert.equal(await rowOf(sender.page, id1).getAttribute('data-state'), 'cancelled');

  // The receiver stops a big file it has just accepted: both sides end "cancelled", no download link.
  await pickRandomFile(sender.page, 'big.bin', 48 * 1024 * 1024, 'application/octet-stream');
  await sender.page.getByTestId('file-send').click();
  const id2 = await answerOffer(receiver.page, 'big.bin');
  const r2 = rowOf(receiver.page, id2);
  await r2.getByTestId('file-cancel').click();
  await r2.and(receiver.page.locator('[data-state="cancelled"]')).waitFor({ timeout: WAIT });
  await rowOf(sender.page, id2).and(sender.page.locator('[data-state="cancelled"]')).waitFor({ timeout: WAIT });
  assert.equal(await r2.getByTestId('file-link').count(), 0);

  // The channel is still good: a small file right after arrives intact.
  const [sha] = await pickRandomFiles(sender.page, [['after.txt', 50_000, 'text/plain']]);
  await sender.page.getByTestId('file-send').click();
  const id3 = await answerOffer(receiver.page, 'after.txt');
  await rowOf(receiver.page, id3).and(receiver.page.locator('[data-state="done"]')).waitFor({ timeout: WAIT });
  assert.equal((await linkDigest(receiver.page, id3)).sha256, sha);
});

test('several files at once queue behind each other; dropped files are sent too', { timeout: 60_000 }, async () => {
  const [sender, receiver] = peers;
  await sender.page.getByTestId('file-target').selectOption(receiver.id);
  const hashes = await pickRandomFiles(sender.page, [['one.txt', 10_000, 'text/plain'], ['two.txt', 20_000, 'text/plain']]);
  assert.match(await sender.page.getByTestId('file-send').textContent(), /Send 2 files/);
  await sender.page.getByTestId('file-send').click();
  // While the first waits for an answer the second is queued, not "sending 0 %".
  const two = sender.page.locator('[data-testid="file-transfer"][data-direction="send"]', { hasText: 'two.txt' });
  await two.and(sender.page.locator('[data-state="queued"]')).waitFor({ timeout: WAIT });
  assert.equal(await two.getByTestId('file-status').textContent(), 'queued');
  assert.equal(await two.getByTestId('file-progress').isVisible(), false);
  const id1 = await answerOffer(receiver.page, 'one.txt');
  const id2 = await answerOffer(receiver.page, 'two.txt');
  for (const [id, sha] of [[id1, hashes[0]], [id2, hashes[1]]]) {
    await rowOf(receiver.page, id).and(receiver.page.locator('[data-state="done"]')).waitFor({ timeout: WAIT });
    assert.equal((await linkDigest(receiver.page, id)).sha256, sha);
  }
  // Drag and drop onto the room.
  const [dropped] = await pickRandomFiles(sender.page, [['dropped.txt', 3000, 'text/plain']], { drop: true });
  assert.equal(await sender.page.evaluate(() => window.__overlayShown), true, 'the drop target shows while dragging');
  const id3 = await answerOffer(receiver.page, 'dropped.txt');
  await rowOf(receiver.page, id3).and(receiver.page.locator('[data-state="done"]')).waitFor({ timeout: WAIT });
  assert.equal((await linkDigest(receiver.page, id3)).sha256, dropped);
});
