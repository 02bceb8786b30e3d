// Recording end to end (docs/sfu.md, "Recording"): two Chromium pages of the web app in a `media=sfu` room, one
// clicks Record; both show the recording indicator; after a 15 s call it clicks again. Every track's WebM file then
// (1) passes `ffprobe -v error` with nothing said and a duration within 1 s of the call's, and (2) loads in a
// Chromium <video>/<audio> element whose duration is within 1 s of it and which plays (frames decoded, time moving).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, openPeer, sleep, startServer, uniqueRoom, waitForMediaFlow, WAIT } from './helpers.mjs';

const CALL_MS = 15_000;

let server;
let browser;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kaiwa-e2e-rec-'));
  const sfuPort = await freeUdpTcpPort();
  server = await startServer({
    extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`, '--record-dir', dir],
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ffprobe's duration of `file`; with -v error it prints nothing else unless it finds an error, which fails the test.
function ffprobe(file) {
  const r = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file],
    { encoding: 'utf8' });
  assert.equal(r.status, 0, `ffprobe ${file}: ${r.stderr}`);
  assert.equal(r.stderr, '', `ffprobe ${file} reports errors`);
  return Number(r.stdout.trim());
}

test('a 15 s SFU call is recorded: every track plays in Chromium and ffprobe finds no error', async (t) => {
  const room = uniqueRoom('rec');
  const a = await openPeer(browser, server, room, 'Alice', { query: 'media=sfu' });
  const b = await openPeer(browser, server, room, 'Bob', { query: 'media=sfu' });
  try {
    await waitForMediaFlow(a.page, b.id);
    await waitForMediaFlow(b.page, a.id);
    const record = a.page.getByTestId('toggle-recording');
    await record.waitFor({ state: 'visible' });
    const started = Date.now();
    await record.click();
    for (const p of [a, b]) {
      await p.page.locator('[data-testid="recording-indicator"][data-active="true"]').waitFor({ timeout: WAIT });
    }
    assert.equal(await b.page.evaluate(() => window.kaiwa.room.recording.name), 'Alice');
    await sleep(CALL_MS);
    await record.click();
    const stopped = Date.now();
    for (const p of [a, b]) {
      await p.page.locator('[data-testid="recording-indicator"]').waitFor({ state: 'hidden', timeout: WAIT });
    }
    // The span the server recorded (from its manifest: when record-start and record-stop reached it) is what each
    // file must last; the span the test saw adds the clicks' round trips, which a busy machine makes long.
    const clicked = (stopped - started) / 1000;

    const [name] = readdirSync(dir);
    const manifest = JSON.parse(readFileSync(join(dir, name, 'manifest.json'), 'utf8'));
    assert.equal(manifest.endReason, 'stopped');
    const callSeconds = (manifest.end - manifest.start) / 1000;
    assert.ok(callSeconds <= clicked + 0.5 && callSeconds >= CALL_MS / 1000, `recorded ${callSeconds} s, clicked ${clicked} s`);
    assert.deepEqual(manifest.tracks.map((t) => `${t.kind}/${t.codec}/${t.status}`).sort(),
      ['audio/opus/done', 'audio/opus/done', 'video/VP8/done', 'video/VP8/done'], JSON.stringify(manifest.tracks));

    const viewer = await browser.newContext();
    const page = await viewer.newPage();
    try {
      await page.goto(`${server.url}/healthz`);
      for (const track of manifest.tracks) {
        const path = join(dir, name, track.file);
        const probed = ffprobe(path);
        assert.ok(Math.abs(probed - callSeconds) <= 1,
          `${track.file}: ffprobe says ${probed} s, the call took ${callSeconds} s`);
        // The page loads the file from a URL the test answers with its bytes.
        const url = `${server.url}/recording/${track.file}`;
        await page.route(url, (route) => route.fulfill({ body: readFileSync(path), contentType: `${track.kind}/webm` }));
        const played = await page.evaluate(async ({ url, kind }) => {
          const el = document.createElement(kind);
          el.muted = true;
          el.src = url;
          document.body.append(el);
          await new Promise((resolve, reject) => {
            el.onloadedmetadata = resolve;
            el.onerror = () => reject(new Error(`cannot load: ${el.error?.message}`));
          });
          const duration = el.duration;
          await el.play();
          const deadline = Date.now() + 10_000;
          while (el.currentTime < 1.5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
          const quality = kind === 'video' ? el.getVideoPlaybackQuality() : null;
          const result = {
            duration, currentTime: el.currentTime, width: el.videoWidth ?? 0,
            frames: quality ? quality.totalVideoFrames : 0, error: el.error?.message ?? null,
          };
          el.remove();
          return result;
        }, { url, kind: track.kind });
        t.diagnostic(JSON.stringify({ file: track.file, frames: track.frames, call: callSeconds, ffprobe: probed, ...played }));
        assert.equal(played.error, null);
        assert.ok(Math.abs(played.duration - callSeconds) <= 1,
          `${track.file}: the element says ${played.duration} s, the call took ${callSeconds} s`);
        assert.ok(played.currentTime >= 1.5, `${track.file} plays: ${JSON.stringify(played)}`);
        if (track.kind === 'video') {
          // The file's own frame rate (the publisher lowers it when the machine is busy): at least half of the frames
          // up to where playback got were decoded.
          const fps = track.frames / (track.durationMs / 1000);
          assert.ok(played.width > 0 && played.frames >= Math.max(3, 0.5 * fps * played.currentTime),
            `${track.file} decodes (${fps.toFixed(1)} frames/s in the file): ${JSON.stringify(played)}`);
        }
      }
    } finally {
      await viewer.close();
    }
  } finally {
    await a.close();
    await b.close();
  }
});
