// The loss run: two browsers, each in its own network namespace, call each other through kaiwa over links that drop
// 5 % of packets at random, then lose their network for 5 s. Checks and measures:
//   - the call connects (both peer connections `connected`), and how long joining and connecting took;
//   - video keeps decoding under loss (frames decoded per second at each side, packet loss seen by getStats);
//   - a 3 MiB file arrives intact (the SDK's SHA-256 check), and how long it took;
//   - after a 5 s blackhole of browser A's link, signaling resumes (same peer id, no `peer-left` at B), a server
//     message gets through again and video decodes again.
// Needs root (ip netns, nftables; no netem in this kernel, see ../shared/docs/browser-testing.md). Not part of CI.
//   sudo node bench/loss.mjs [--loss 5] [--blackhole 5] [--kaiwa build/kaiwa] [--keep]
//
// Topology, all made here and removed at the end:
//   ns kwS (kaiwa, routes between the two links)   10.77.1.1 ─ veth ─ 10.77.1.2  ns kwA (Chromium A)
//                                                   10.77.2.1 ─ veth ─ 10.77.2.2  ns kwB (Chromium B)
// Loss: nftables in kwS drops --loss % of what each browser sends as it arrives (to kaiwa, or through kwS to the
// other browser), and nftables in kwA / kwB drops --loss % of what kaiwa sends them as it arrives: every path, each
// way, crosses one such rule.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const LOSS = Number(opt('loss', 5));
const BLACKHOLE_S = Number(opt('blackhole', 5));
const KAIWA = resolve(opt('kaiwa', join(ROOT, 'build', 'kaiwa')));
const CHROMIUM = existsSync('/usr/lib/chromium/chromium') ? '/usr/lib/chromium/chromium' : '/usr/bin/chromium';
const PORT = 8080;
const WAIT = 60_000;

const sh = (cmd, ...a) => execFileSync(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const inNs = (ns, ...a) => sh('ip', 'netns', 'exec', ns, ...a);
const tmp = mkdtempSync(join(tmpdir(), 'kaiwa-loss-'));
const t0 = Date.now();
const log = (...m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s]`, ...m);

function teardownNetwork() {
  for (const ns of ['kwA', 'kwB', 'kwS']) {
    try { sh('ip', 'netns', 'del', ns); } catch { /* not there */ }
  }
}

function setupNetwork() {
  teardownNetwork();
  for (const ns of ['kwS', 'kwA', 'kwB']) {
    sh('ip', 'netns', 'add', ns);
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  for (const [side, net] of [['A', 1], ['B', 2]]) {
    const ns = `kw${side}`;
    sh('ip', 'link', 'add', `kwS${side}`, 'netns', 'kwS', 'type', 'veth', 'peer', 'name', `kw${side}0`, 'netns', ns);
    inNs('kwS', 'ip', 'addr', 'add', `10.77.${net}.1/24`, 'dev', `kwS${side}`);
    inNs('kwS', 'ip', 'link', 'set', `kwS${side}`, 'up');
    inNs(ns, 'ip', 'addr', 'add', `10.77.${net}.2/24`, 'dev', `kw${side}0`);
    inNs(ns, 'ip', 'link', 'set', `kw${side}0`, 'up');
    inNs(ns, 'ip', 'route', 'add', 'default', 'via', `10.77.${net}.1`);
    // kaiwa → this browser: dropped as it comes in (an output drop would show the sender EPERM, which a real
    // network never does).
    inNs(ns, 'nft', 'add', 'table', 'inet', 'loss');
    inNs(ns, 'nft', 'add', 'chain', 'inet', 'loss', 'in', '{ type filter hook input priority 0; }');
    lossRule(ns, 'in', `iifname kw${side}0 ip saddr 10.77.${net}.1`);
  }
  inNs('kwS', 'sysctl', '-qw', 'net.ipv4.ip_forward=1');  // this namespace's own setting, not the host's
  // What each browser sends (to kaiwa or through it to the other browser): dropped as it reaches the router.
  inNs('kwS', 'nft', 'add', 'table', 'inet', 'loss');
  inNs('kwS', 'nft', 'add', 'chain', 'inet', 'loss', 'pre', '{ type filter hook prerouting priority 0; }');
  lossRule('kwS', 'pre', 'iifname kwSA');
  lossRule('kwS', 'pre', 'iifname kwSB');
}

function lossRule(ns, chain, match, percent = LOSS) {
  if (percent <= 0) return;
  const random = percent >= 100 ? [] : ['numgen', 'random', 'mod', '100', '<', String(percent)];
  inNs(ns, 'nft', 'add', 'rule', 'inet', 'loss', chain, ...match.split(' '), ...random, 'counter', 'drop');
}

// Browser A's link is a black hole for `ms` (both ways), then only lossy again.
async function blackhole(ms) {
  inNs('kwS', 'nft', 'insert', 'rule', 'inet', 'loss', 'pre', 'iifname', 'kwSA', 'drop');
  inNs('kwA', 'nft', 'insert', 'rule', 'inet', 'loss', 'in', 'iifname', 'kwA0', 'drop');
  await new Promise((r) => setTimeout(r, ms));
  for (const [ns, chain, match] of [['kwS', 'pre', 'iifname kwSA'], ['kwA', 'in', 'iifname kwA0 ip saddr 10.77.1.1']]) {
    inNs(ns, 'nft', 'flush', 'chain', 'inet', 'loss', chain);
    lossRule(ns, chain, match);
  }
  lossRule('kwS', 'pre', 'iifname kwSB');
}

// Packets the loss rules dropped, per namespace.
function dropped() {
  const count = (ns) => [...inNs(ns, 'nft', 'list', 'table', 'inet', 'loss').matchAll(/packets (\d+)/g)]
    .reduce((n, m) => n + Number(m[1]), 0);
  return { router: count('kwS'), A: count('kwA'), B: count('kwB') };
}

async function launch(side, origin) {
  const wrapper = join(tmp, `chromium-${side}.sh`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec kw${side} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return chromium.launch({
    executablePath: wrapper,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream', `--unsafely-treat-insecure-origin-as-secure=${origin}`],
  });
}

// Joins `room` with the SDK from a blank page of kaiwa's origin; keeps what the test reads on window.t.
async function joinRoom(browser, origin, room, name) {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => log(`${name} page error: ${e.message}`));
  await page.goto(`${origin}/healthz`);
  await page.evaluate(async ({ room, name }) => {
    const { Room } = await import('/sdk/kaiwa.js');
    const r = new Room({ room, name });
    const t = { room: r, peers: [], left: [], files: [], messages: [], states: [], failures: [] };
    window.t = t;
    r.on('peer-joined', (p) => t.peers.push(p.id));
    r.on('peer-left', ({ peer }) => t.left.push(peer.id));
    r.on('file-received', (f) => t.files.push({ size: f.size, verified: f.verified }));
    r.on('file-failed', (f) => t.failures.push(f.reason ?? 'failed'));
    r.on('message', (m) => t.messages.push(m.data));
    r.on('signaling-state', (s) => t.states.push([s, Date.now()]));
    r.on('stream', ({ stream }) => {
      const v = Object.assign(document.createElement('video'), { autoplay: true, muted: true, srcObject: stream });
      v.style.width = '160px';
      document.body.append(v);
      v.play().catch(() => undefined);
    });
    await r.join();
  }, { room, name });
  return page;
}

// Inbound video as getStats sees it: frames decoded, packets received and lost.
const inbound = (page) => page.evaluate(async () => {
  const [peer] = window.t.peers;
  const pc = window.t.room.peerConnection(peer);
  const out = { framesDecoded: 0, packetsReceived: 0, packetsLost: 0, connection: pc?.connectionState };
  if (!pc) return out;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.framesDecoded += s.framesDecoded ?? 0;
      out.packetsReceived += s.packetsReceived ?? 0;
      out.packetsLost += s.packetsLost ?? 0;
    }
  }
  return out;
});

async function decodeRate(page, ms) {
  const a = await inbound(page);
  await new Promise((r) => setTimeout(r, ms));
  const b = await inbound(page);
  const got = b.packetsReceived - a.packetsReceived, lost = b.packetsLost - a.packetsLost;
  return { fps: ((b.framesDecoded - a.framesDecoded) * 1000) / ms, loss: got + lost > 0 ? lost / (got + lost) : 0 };
}

const results = {};
let server, browsers = [];
try {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces and nftables)');
  setupNetwork();
  server = spawn('ip', ['netns', 'exec', 'kwS', KAIWA, 'serve', '--listen', `0.0.0.0:${PORT}`, '--log-level', 'warn'],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; i < 50; i++) {
    try { inNs('kwA', 'curl', '-sf', `http://10.77.1.1:${PORT}/healthz`); break; } catch { await new Promise((r) => setTimeout(r, 200)); }
  }
  const originA = `http://10.77.1.1:${PORT}`, originB = `http://10.77.2.1:${PORT}`;
  browsers = [await launch('A', originA), await launch('B', originB)];
  const room = `loss-${process.pid}`;
  log(`${LOSS} % loss on each browser's link; joining ${room}`);
  let start = Date.now();
  const a = await joinRoom(browsers[0], originA, room, 'A');
  results.joinSecondsA = (Date.now() - start) / 1000;  // page, SDK, camera, ICE servers, join
  start = Date.now();
  const b = await joinRoom(browsers[1], originB, room, 'B');
  results.joinSecondsB = (Date.now() - start) / 1000;
  start = Date.now();
  for (const p of [a, b]) {
    await p.waitForFunction(() => {
      const [peer] = window.t.peers;
      return peer && window.t.room.peerConnection(peer)?.connectionState === 'connected';
    }, null, { timeout: WAIT });
  }
  results.connectSeconds = (Date.now() - start) / 1000;
  results.path = await a.evaluate(async () => {
    const pc = window.t.room.peerConnection(window.t.peers[0]);
    const stats = [...(await pc.getStats()).values()];
    const pair = stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
    const cand = (id) => stats.find((s) => s.id === id);
    return pair ? `${cand(pair.localCandidateId)?.candidateType} ${cand(pair.localCandidateId)?.address} → ${cand(pair.remoteCandidateId)?.candidateType} ${cand(pair.remoteCandidateId)?.address}` : 'none';
  });
  log(`joined in ${results.joinSecondsA} s and ${results.joinSecondsB} s; call connected ${results.connectSeconds} s after B joined (${results.path})`);
  for (const p of [a, b]) {
    await p.waitForFunction(() => [...document.querySelectorAll('video')].some((v) => v.videoWidth > 0 && v.currentTime > 0),
      null, { timeout: WAIT });
  }
  results.decodeUnderLoss = { A: await decodeRate(a, 5000), B: await decodeRate(b, 5000) };
  log('video under loss (fps, loss seen by the receiver):', JSON.stringify(results.decodeUnderLoss));

  const fileStart = Date.now();
  await a.evaluate(async () => {
    const bytes = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    await window.t.room.sendFile(new File([bytes], 'three-mib.bin'));
  });
  await b.waitForFunction(() => window.t.files.length > 0 || window.t.failures.length > 0, null, { timeout: 120_000 });
  results.file = { ...(await b.evaluate(() => window.t.files[0] ?? { failed: window.t.failures })), seconds: (Date.now() - fileStart) / 1000 };
  log('3 MiB file:', JSON.stringify(results.file));

  const idBefore = await a.evaluate(() => window.t.room.id);
  log(`blackholing A for ${BLACKHOLE_S} s`);
  await blackhole(BLACKHOLE_S * 1000);
  const healed = Date.now();
  // Signaling is back when a server message from A reaches B again. After a long blackhole the SDK notices the
  // dead socket only now and reconnects (resume): a send that meets the drop is tried again, for 60 s at most.
  await a.evaluate(async () => {
    for (const end = Date.now() + 60_000; Date.now() < end;) {
      try {
        await window.t.room.sendMessage({ after: 'blackhole' });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw new Error('no server message got through within 60 s of the link healing');
  });
  await b.waitForFunction(() => window.t.messages.some((m) => m?.after === 'blackhole'), null, { timeout: WAIT });
  results.resumeSeconds = (Date.now() - healed) / 1000;
  results.sameId = idBefore === (await a.evaluate(() => window.t.room.id));
  results.statesAtA = await a.evaluate(() => window.t.states.map(([s]) => s));
  results.peerLeftAtB = await b.evaluate(() => window.t.left.length);
  results.decodeAfter = { A: await decodeRate(a, 5000), B: await decodeRate(b, 5000) };
  log(`signaling back ${results.resumeSeconds} s after the link healed; same id ${results.sameId}; peer-left at B ${results.peerLeftAtB}`);
  log('video after the blackhole:', JSON.stringify(results.decodeAfter));

  results.droppedByRules = dropped();
  const ok = results.file.verified === true && results.file.size === 3 * 1024 * 1024 && results.sameId &&
    results.peerLeftAtB === 0 && results.decodeUnderLoss.A.fps > 1 && results.decodeUnderLoss.B.fps > 1 &&
    results.decodeAfter.A.fps > 1 && results.decodeAfter.B.fps > 1;
  console.log(JSON.stringify({ loss: LOSS, blackholeSeconds: BLACKHOLE_S, ...results, ok }));
  process.exitCode = ok ? 0 : 1;
} catch (e) {
  console.error(`loss run failed: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  for (const b of browsers) await b.close().catch(() => undefined);
  server?.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  teardownNetwork();
  if (!args.includes('--keep')) rmSync(tmp, { recursive: true, force: true });
}
