// Shared helpers for the end-to-end browser tests: start the kaiwa server, launch Chromium, open peers.
//
// Environment:
//   KAIWA_BIN        the server binary (default <repo>/build/kaiwa)
//   KAIWA_WEB_ROOT   pass --web-root DIR to the server (default: the binary's own built web app)
//   CHROMIUM_BIN     the browser (default /usr/lib/chromium/chromium, else /usr/bin/chromium)
//   E2E_DEBUG=1      print server and browser console output
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEBUG = process.env.E2E_DEBUG === '1';

// Browser profiles and other temporary files go into a private directory, removed at exit.
const TMP = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'kaiwa-e2e-'));
process.env.TMPDIR = TMP;
process.on('exit', () => rmSync(TMP, { recursive: true, force: true }));

/** Default bound for every wait in the tests (ms). */
export const WAIT = 20_000;

export function uniqueRoom(prefix = 'e2e') {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

async function healthy(url) {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** A loopback port free for both TCP and UDP (TURN listens on both), tried at random in 20000-39999. */
export async function freeUdpTcpPort() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const ok = await new Promise((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => {
        const sock = createSocket('udp4');
        sock.once('error', () => { srv.close(); resolve(false); });
        sock.bind(port, '127.0.0.1', () => { sock.close(); srv.close(() => resolve(true)); });
      });
    });
    if (ok) return port;
  }
  throw new Error('no port free for both TCP and UDP in 100 tries');
}

/**
 * Starts `kaiwa serve` on a free loopback port and waits for GET /healthz = 200.
 * @param {{ resumeGrace?: string, extraArgs?: string[] }} [opts]
 */
export async function startServer(opts = {}) {
  const bin = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');
  if (!existsSync(bin)) throw new Error(`kaiwa server binary not found at ${bin} (build it, or set KAIWA_BIN)`);
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const args = ['serve', '--listen', `127.0.0.1:${port}`];
    if (opts.resumeGrace) args.push('--resume-grace', opts.resumeGrace);
    if (process.env.KAIWA_WEB_ROOT) args.push('--web-root', resolve(process.env.KAIWA_WEB_ROOT));
    args.push(...(opts.extraArgs ?? []));
    // opts.tls: HTTPS with a certificate made at start-up; the caller trusts it (NODE_TLS_REJECT_UNAUTHORIZED=0 for
    // Node, ignoreHTTPSErrors for the browser context).
    if (opts.tls) args.push('--tls-self-signed');
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
    const logs = [];
    const keep = (chunk) => {
      const text = chunk.toString();
      if (DEBUG) process.stderr.write(`[kaiwa] ${text}`);
      logs.push(text);
      if (logs.length > 500) logs.shift();
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    let exited = null;
    const exitPromise = new Promise((r) => proc.on('exit', (code, signal) => { exited = { code, signal }; r(exited); }));
    const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    const deadline = Date.now() + 15_000;
    while (!exited && Date.now() < deadline) {
      if (await healthy(url)) {
        return {
          url,
          port,
          proc,
          logs: () => logs.join(''),
          async stop() {
            if (exited) return;
            proc.kill('SIGTERM');
            const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
            await exitPromise;
            clearTimeout(killer);
          },
        };
      }
      await sleep(100);
    }
    if (!exited) {
      proc.kill('SIGKILL');
      await exitPromise;
    }
    lastError = new Error(`kaiwa did not become healthy on ${url} (${exited ? `exited ${JSON.stringify(exited)}` :
      'timeout'}):\n${logs.join('').slice(-4000)}`);
    if (!/address|in use|EADDRINUSE/i.test(logs.join(''))) break; // only a port race is worth retrying
  }
  throw lastError;
}

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

/**
 * @param {{ fakeCameras?: number, audioFile?: string }} [opts] fakeCameras: how many fake cameras the browser offers
 *   (default 1); audioFile: a WAV the fake microphone plays in a loop (for the whole browser) instead of its beeps
 */
export async function launchBrowser(opts = {}) {
  const executablePath = process.env.CHROMIUM_BIN ||
    (existsSync('/usr/lib/chromium/chromium') ? '/usr/lib/chromium/chromium' : '/usr/bin/chromium');
  const args = opts.fakeCameras ? CHROMIUM_ARGS.map((a) => (a === '--use-fake-device-for-media-stream'
    ? `--use-fake-device-for-media-stream=device-count=${opts.fakeCameras}` : a)) : [...CHROMIUM_ARGS];
  if (opts.audioFile) args.push(`--use-file-for-fake-audio-capture=${opts.audioFile}`);
  return chromium.launch({ executablePath, headless: true, args, timeout: 30_000 });
}

/**
 * On the pre-join screen: waits until camera and microphone are settled, lets `beforeJoin(page)` change things
 * (toggles, devices), then clicks "Join now".
 */
export async function joinFromPrejoin(page, beforeJoin) {
  await page.locator('[data-testid="prejoin"][data-ready="true"]').waitFor({ timeout: WAIT });
  if (beforeJoin) await beforeJoin(page);
  await page.getByTestId('prejoin-join').click();
}

/**
 * Opens the web app at /room/<room>?name=<name> in a fresh browser context, clicks Join on the pre-join screen and
 * waits until it has joined. opts: viewport, initScript, query (more of the query string, e.g. 'media=sfu'), hash
 * (e.g. '#token=…'), beforeJoin(page).
 * Returns { page, context, id, errors, close() }.
 */
export async function openPeer(browser, server, room, name, opts = {}) {
  const context = await browser.newContext({
    viewport: opts.viewport ?? { width: 1100, height: 760 },
    ignoreHTTPSErrors: server.url.startsWith('https:'),
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (msg) => {
    if (DEBUG) process.stderr.write(`[${name}] ${msg.type()}: ${msg.text()}\n`);
    if (msg.type() === 'error') errors.push(msg.text());
  });
  if (opts.initScript) await page.addInitScript(opts.initScript);
  await page.goto(`${server.url}/room/${encodeURIComponent(room)}?name=${encodeURIComponent(name)}${opts.query ? `&${opts.query}` : ''}${opts.hash ?? ''}`);
  await joinFromPrejoin(page, opts.beforeJoin);
  await page.waitForSelector('[data-testid="room"][data-joined="true"]', { timeout: WAIT });
  const id = await page.evaluate(() => window.kaiwa.room.id);
  await recordEvents(page);
  return {
    page, context, id, name, errors,
    async close() {
      await context.close().catch(() => undefined);
    },
  };
}

/** Installs listeners that log room events into window.__events for later assertions. */
export async function recordEvents(page) {
  await page.evaluate(() => {
    const room = window.kaiwa.room;
    window.__events = [];
    const log = (type, extra) => window.__events.push({ type, ...extra });
    room.on('peer-joined', (p) => log('peer-joined', { peer: p.id }));
    room.on('peer-left', ({ peer, reason }) => log('peer-left', { peer: peer.id, reason }));
    room.on('signaling-state', (s) => log('signaling-state', { state: s }));
    room.on('joined', ({ id, rejoined }) => log('joined', { id, rejoined }));
    room.on('error', (e) => log('error', { code: e.code, message: e.message }));
  });
}

export async function events(page, type) {
  return page.evaluate((t) => window.__events.filter((e) => !t || e.type === t), type);
}

/** Waits until peer `who` shows the remote video of `peerId` playing: videoWidth > 0 and currentTime advancing. */
export async function waitForRemoteVideo(page, peerId, timeout = WAIT) {
  const sel = `[data-testid="tile"][data-peer-id="${peerId}"] video`;
  await page.waitForFunction((s) => {
    const v = document.querySelector(s);
    return v && v.videoWidth > 0 && v.readyState >= 2 && !v.paused && v.currentTime > 0;
  }, sel, { timeout, polling: 100 });
  const t0 = await page.$eval(sel, (v) => v.currentTime);
  await page.waitForFunction(([s, t]) => document.querySelector(s)?.currentTime > t + 0.2, [sel, t0],
    { timeout, polling: 100 });
}

/** Inbound RTP bytes from one peer, per kind. */
export async function inboundBytes(page, peerId) {
  return page.evaluate(async (id) => {
    const s = await window.kaiwa.room.getStats(id);
    return s ? { audio: s.audio.bytesReceived, video: s.video.bytesReceived } : { audio: 0, video: 0 };
  }, peerId);
}

/** Waits until inbound audio and video bytes from `peerId` grow past what they are now. */
export async function waitForMediaFlow(page, peerId, timeout = WAIT) {
  const before = await inboundBytes(page, peerId);
  await page.waitForFunction(async ([id, b]) => {
    const s = await window.kaiwa.room.getStats(id);
    return !!s && s.audio.bytesReceived > b.audio + 1000 && s.video.bytesReceived > b.video + 5000;
  }, [peerId, before], { timeout, polling: 250 });
  return before;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** The tile of `peerId` on `page`. */
export function tile(page, peerId) {
  return page.locator(`[data-testid="tile"][data-peer-id="${peerId}"]`);
}

/** Init script for openPeer: records every RTCPeerConnection the page creates in `window.__pcs`, to be counted. */
export function countPeerConnections() {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__pcs.push(this);
    }
  };
}

/** The value of the series `name` (labels included, as /metrics writes it) at `server`; NaN when it is absent. */
export async function serverMetric(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}
