// Recording in the native protocol (docs/protocol.md, "Recording"), without media: who may start and stop it, the
// `recording` events every member gets (and a member joining later), the errors (recording-off, not-allowed, not-sfu,
// already-recording, not-recording, recording-failed), and what lands under --record-dir: one directory per
// recording, a manifest that lists the published tracks (one published later too) and says why it ended, and a WebM
// file per track that is closed when its publisher unpublishes, when the recording stops and when the room ends.
// The recorded media itself (duration, playback, ffprobe) is tests/e2e/recording.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, uniqueRoom } from '../e2e/helpers.mjs';
import { sleep, withSfuServer } from './client.mjs';

const BIN = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');
const PUBLISHER = readFileSync(join(ROOT, 'tests/unit/sdp/vectors/chromium156_audio_video.sdp'), 'utf8');
const TRACKS = [{ mid: '0', source: 'microphone' }, { mid: '1', source: 'camera' }];

function tempDir() {
  return mkdtempSync(join(tmpdir(), 'kaiwa-rec-'));
}

// The recordings under `dir`: [{name, manifest}] (a manifest is rewritten by rename, so it is whole when read).
function recordings(dir) {
  return readdirSync(dir).map((name) => ({
    name,
    dir: join(dir, name),
    manifest: JSON.parse(readFileSync(join(dir, name, 'manifest.json'), 'utf8')),
  }));
}

async function until(what, fn, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('without --record-dir record-start is refused with recording-off', async () => {
  await withSfuServer([], async (server, open) => {
    const a = await open();
    await a.join(uniqueRoom('off'), 'a', { media: 'sfu' });
    assert.equal((await a.request({ type: 'record-start' })).code, 'recording-off');
    assert.equal((await a.request({ type: 'record-stop' })).code, 'recording-off');
  });
});

test('start, events to every member and a late joiner, the files and the manifest, stop', async () => {
  const dir = tempDir();
  try {
    await withSfuServer(['--record-dir', dir], async (server, open) => {
      const room = uniqueRoom('rec');
      const [a, b] = [await open(), await open()];
      await a.join(room, 'Alice', { media: 'sfu' });
      await b.join(room, 'Bob');
      assert.equal((await a.request({ type: 'publish', sdp: PUBLISHER, tracks: TRACKS })).type, 'ok');

      const before = Date.now();
      const started = await a.request({ type: 'record-start' });
      assert.equal(started.type, 'ok', JSON.stringify(started));
      for (const x of [a, b]) {
        const ev = await x.waitFor((m) => m.type === 'recording');
        assert.equal(ev.active, true);
        assert.equal(ev.by, a.peer);
        assert.equal(ev.name, 'Alice');
        assert.ok(ev.since >= before - 1000 && ev.since <= Date.now() + 1000, String(ev.since));
      }
      assert.equal((await b.request({ type: 'record-start' })).code, 'already-recording');

      // A member who joins now is told right after its ok.
      const c = await open();
      const joined = await c.join(room, 'Carol');
      assert.equal(joined.type, 'ok');
      const order = c.messages.map((m) => m.type);
      const late = await c.waitFor((m) => m.type === 'recording');
      assert.equal(late.active, true);
      assert.equal(late.by, a.peer);
      assert.ok(order.indexOf('ok') < c.messages.indexOf(late));

      const [rec] = recordings(dir);
      assert.match(rec.name, /^rec[-\w]*-[0-9a-f]{8}-\d{8}T\d{6}Z-[-\w]{6}$/);
      assert.equal(rec.manifest.room, room);
      assert.deepEqual(rec.manifest.startedBy, { peer: a.peer, name: 'Alice' });
      assert.equal(rec.manifest.end, null);
      assert.deepEqual(rec.manifest.tracks.map((t) => [t.peer, t.source, t.kind, t.codec, t.status]).sort(),
        [[a.peer, 'camera', 'video', 'VP8', 'recording'], [a.peer, 'microphone', 'audio', 'opus', 'recording']]);
      for (const t of rec.manifest.tracks) assert.ok(existsSync(join(rec.dir, t.file)), t.file);

      // A track published while recording is recorded too.
      assert.equal((await b.request({ type: 'publish', sdp: PUBLISHER, tracks: [TRACKS[0]] })).type, 'ok');
      await until('b\'s track in the manifest', () => recordings(dir)[0].manifest.tracks.some((t) => t.peer === b.peer));

      // Unpublish closes a's files; the recording goes on.
      assert.equal((await a.request({ type: 'unpublish' })).type, 'ok');
      const afterUnpublish = await until('a\'s tracks done', () => {
        const m = recordings(dir)[0].manifest;
        return m.tracks.filter((t) => t.peer === a.peer).every((t) => t.status === 'done') && m;
      });
      for (const t of afterUnpublish.tracks.filter((x) => x.peer === a.peer)) {
        assert.equal(typeof t.end, 'number');
        // An empty recording is still a whole WebM: EBML header, Segment, Info, Tracks, Cues.
        const bytes = readFileSync(join(rec.dir, t.file));
        assert.deepEqual([...bytes.subarray(0, 4)], [0x1a, 0x45, 0xdf, 0xa3]);
        assert.equal(t.bytes, bytes.length);
      }
      assert.equal(afterUnpublish.tracks.find((t) => t.peer === b.peer).status, 'recording');

      const stopped = await b.request({ type: 'record-stop' });
      assert.equal(stopped.type, 'ok');
      for (const x of [a, b, c]) {
        const ev = await x.waitFor((m) => m.type === 'recording' && m.active === false);
        assert.equal(ev.by, b.peer);
        assert.equal(ev.name, 'Bob');
        assert.equal(ev.reason, 'stopped');
      }
      assert.equal((await b.request({ type: 'record-stop' })).code, 'not-recording');
      const final = recordings(dir)[0].manifest;
      assert.equal(final.endReason, 'stopped');
      assert.equal(typeof final.end, 'number');
      assert.ok(final.tracks.every((t) => t.status === 'done'), JSON.stringify(final.tracks));

      // A new recording is a new directory; the room's end stops it and closes its files.
      assert.equal((await a.request({ type: 'record-start' })).type, 'ok');
      await until('a second recording', () => readdirSync(dir).length === 2);
      for (const x of [a, b, c]) assert.equal((await x.request({ type: 'leave' })).type, 'ok');
      const second = await until('the second recording ended', () =>
        recordings(dir).find((r) => r.name !== rec.name && r.manifest.end !== null));
      assert.equal(second.manifest.endReason, 'ended');
      assert.ok(second.manifest.tracks.every((t) => t.status === 'done'));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('only SFU rooms are recorded, and a switch to mesh stops it', async () => {
  const dir = tempDir();
  try {
    await withSfuServer(['--record-dir', dir], async (server, open) => {
      const a = await open();
      const mesh = uniqueRoom('mesh');
      await a.join(mesh, 'a', { media: 'mesh' });
      assert.equal((await a.request({ type: 'record-start' })).code, 'not-sfu');

      // auto: sfu from three members; the third leaving makes it mesh, which stops the recording.
      const room = uniqueRoom('auto');
      const [x, y, z] = [await open(), await open(), await open()];
      await x.join(room, 'x');
      await y.join(room, 'y');
      await z.join(room, 'z');
      await x.waitFor((m) => m.type === 'media-mode' && m.mode === 'sfu');
      assert.equal((await x.request({ type: 'record-start' })).type, 'ok');
      assert.equal((await z.request({ type: 'leave' })).type, 'ok');
      for (const w of [x, y]) {
        const ev = await w.waitFor((m) => m.type === 'recording' && m.active === false);
        assert.equal(ev.reason, 'mesh');
        assert.equal(ev.by, undefined);
      }
      const ended = await until('the SFU side stopped', () => recordings(dir).find((r) => r.manifest.end !== null));
      assert.equal(ended.manifest.endReason, 'mesh');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with --auth-secret only a token with the record claim may record; room names never become paths', async () => {
  const dir = tempDir();
  const secret = 'recording-secret';
  try {
    await withSfuServer(['--record-dir', dir, '--auth-secret', secret], async (server, open) => {
      // Dots are allowed in room names: ".." must not climb out of --record-dir.
      const room = '..';
      const token = (user, record) => execFileSync(BIN, ['token', '--secret', secret, '--room', room, '--user', user,
        ...(record ? ['--record'] : [])]).toString().trim();
      const [a, b] = [await open(), await open()];
      assert.equal((await a.join(room, 'a', { token: token('alice', false), media: 'sfu' })).type, 'ok');
      assert.equal((await b.join(room, 'b', { token: token('bob', true) })).type, 'ok');
      assert.equal((await a.request({ type: 'record-start' })).code, 'not-allowed');
      assert.equal((await b.request({ type: 'record-start' })).type, 'ok');
      assert.equal((await a.request({ type: 'record-stop' })).code, 'not-allowed');
      const [rec] = recordings(dir);
      assert.match(rec.name, /^__-[0-9a-f]{8}-/);
      assert.equal(rec.manifest.room, '..');
      assert.ok(statSync(rec.dir).isDirectory());
      // A resume carries no token: on a server with tokens, the resumed connection may not record.
      const again = await open();
      const resumed = await again.request({ type: 'resume', room, peer: b.peer, resume: b.resumeToken });
      assert.equal(resumed.type, 'ok', JSON.stringify(resumed));
      assert.equal((await again.request({ type: 'record-stop' })).code, 'not-allowed');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a disk with less free space than --record-min-free-mb refuses to start (recording-failed)', async () => {
  const dir = tempDir();
  try {
    // 2^40 MiB: more than any disk here has free.
    await withSfuServer(['--record-dir', dir, '--record-min-free-mb', String(2 ** 40)], async (server, open) => {
      const a = await open();
      await a.join(uniqueRoom('full'), 'a', { media: 'sfu' });
      const refused = await a.request({ type: 'record-start' });
      assert.equal(refused.code, 'recording-failed');
      assert.match(refused.message, /free/);
      assert.deepEqual(readdirSync(dir), []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
