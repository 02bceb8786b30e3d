// Peer-to-peer file transfer through the web app: a 20 MiB file of random bytes to one peer, a small one to all.
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
  for (const name of ['Sender', 'Receiver', 'Bystander']) peers.push(await openPeer(browser, server, room, name));
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
  return page.evaluate(async ([n, sz, ty]) => {
    const bytes = new Uint8Array(sz);
    for (let off = 0; off < sz; off += 65536) crypto.getRandomValues(bytes.subarray(off, Math.min(sz, off + 65536)));
    const file = new File([bytes], n, { type: ty });
    const dt = new DataTransfer();
    dt.items.add(file);
    const input = document.querySelector('[data-testid="file-input"]');
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }, [name, size, type]);
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

  const row = receiver.page.locator('[data-testid="file-transfer"][data-direction="receive"]');
  await row.waitFor({ state: 'attached', timeout: WAIT });
  const transferId = await row.getAttribute('data-transfer-id');
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
