// Active speaker through the SFU (issue 15): two Chromium browsers in a forced-sfu room, one whose fake microphone
// plays a speech-like WAV (a voiced buzz in syllables with pauses) and one whose microphone plays silence. kaiwa reads
// the RFC 6464 audio levels of their published audio, its detector picks the talking page, and both pages hear
// `active-speaker` naming it: the web app outlines that tile, and its speaker view shows it large.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, openPeer, startServer, tile, uniqueRoom, WAIT } from './helpers.mjs';

let server;
let talker;
let listener;
let dir;

// A 16-bit mono 48 kHz WAV of `seconds`, each sample from `sample(t)` in [-1, 1].
function wav(path, seconds, sample) {
  const rate = 48000;
  const n = Math.round(seconds * rate);
  const b = Buffer.alloc(44 + 2 * n);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + 2 * n, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(2 * n, 40);
  for (let i = 0; i < n; i++) {
    const v = Math.max(-1, Math.min(1, sample(i / rate)));
    b.writeInt16LE(Math.round(v * 32767), 44 + 2 * i);
  }
  writeFileSync(path, b);
}

// Syllables: 300 ms of a voiced buzz (harmonics of a gliding ~140 Hz pitch) with soft edges, then 150 ms of silence.
// The pauses give the detector the talker's noise floor; the buzz is well above it. Noise suppression leaves a
// sound that starts and stops like speech alone.
function speech(t) {
  const cycle = 0.45;
  const at = t % cycle;
  if (at >= 0.3) return 0;
  const edge = Math.min(1, at / 0.03, (0.3 - at) / 0.03);
  const f0 = 140 + 20 * Math.sin(2 * Math.PI * 1.3 * t);
  let v = 0;
  for (let h = 1; h <= 8; h++) v += Math.sin(2 * Math.PI * f0 * h * t) / h;
  return 0.35 * edge * v;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kaiwa-speaker-'));
  wav(join(dir, 'speech.wav'), 4.5, speech);
  wav(join(dir, 'silence.wav'), 2, () => 0);
  const sfuPort = await freeUdpTcpPort();
  server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`] });
  // The fake microphone's file is the browser's: one browser per sound.
  talker = await launchBrowser({ audioFile: join(dir, 'speech.wav') });
  listener = await launchBrowser({ audioFile: join(dir, 'silence.wav') });
});

after(async () => {
  await talker?.close();
  await listener?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the page that talks becomes the active speaker at the other page, outlined and shown large', { timeout: 45_000 }, async () => {
  const room = uniqueRoom('speaker');
  const quiet = await openPeer(listener, server, room, 'Quiet', { query: 'media=sfu' });
  const loud = await openPeer(talker, server, room, 'Loud', { query: 'media=sfu' });
  try {
    // The listener's page: kaiwa names the talker, and its tile (only its) is outlined.
    await quiet.page.waitForFunction((id) => window.kaiwa.room.activeSpeaker === id, loud.id, { timeout: WAIT, polling: 100 });
    await tile(quiet.page, loud.id).and(quiet.page.locator('.active-speaker')).waitFor({ timeout: 5000 });
    assert.equal(await quiet.page.locator('[data-testid="tile"].active-speaker').count(), 1);
    assert.equal(await quiet.page.locator('[data-testid="tile"][data-self="true"]').getAttribute('data-active-speaker'), 'false');
    // The talker hears it is the speaker itself: its own tile is outlined.
    await loud.page.waitForFunction((id) => window.kaiwa.room.activeSpeaker === id, loud.id, { timeout: WAIT, polling: 100 });
    await loud.page.locator('[data-testid="tile"][data-self="true"].active-speaker').waitFor({ timeout: 5000 });
    // Silence kept it: the quiet page never took over (its level stays at the bottom).
    assert.equal(await quiet.page.evaluate(() => window.kaiwa.room.activeSpeaker), loud.id);
    // Speaker view at the listener: the talker takes the stage.
    await quiet.page.getByTestId('toggle-speaker-view').click();
    await quiet.page.locator('[data-testid="grid"][data-mode="spotlight"]').waitFor({ timeout: 5000 });
    await tile(quiet.page, loud.id).and(quiet.page.locator('.featured')).waitFor({ timeout: 5000 });
    assert.deepEqual([...quiet.errors, ...loud.errors], []);
  } finally {
    await quiet.close();
    await loud.close();
  }
});
