// A native WHIP publisher: GStreamer's webrtcbin (Debian's gstreamer1.0-plugins-bad, driven by
// gst_whip_publisher.py) publishes a test pattern and a tone into a room, and a Chromium WHEP viewer decodes both
// through kaiwa's SFU.
//
// webrtcbin's ICE (libnice) never gathers loopback addresses, so the publisher runs in a network namespace of this
// test's own, joined to this one by a veth pair (10.X.Y.1 here, 10.X.Y.2 there); kaiwa's media port listens on this
// side's address. The WHIP exchange itself goes through this process (the publisher cannot reach kaiwa's HTTP port on
// loopback): the script prints its offer, the test POSTs it to /whip/<room> and hands the answer back.
// Needs root (for the namespace); skipped with a message otherwise. GStreamer missing fails the test
// (scripts/install-deps.sh installs it).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freeUdpTcpPort, launchBrowser, startServer, uniqueRoom, WAIT } from './helpers.mjs';
import { connect, waitForPlayback } from './whip-client.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3'; // Debian's, which has python3-gi (a pyenv python would not)
const isRoot = process.getuid?.() === 0;

let server;
let browser;
let holder; // `unshare -n sleep`: holds the publisher's namespace
let veth; // this side's interface name
let here; // this side's address

function ip(...args) {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
function inNamespace(...args) {
  execFileSync('nsenter', ['-t', String(holder.pid), '-n', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

before(async () => {
  if (!isRoot) return;
  assert.ok(existsSync(PYTHON), `${PYTHON} is missing`);
  try {
    execFileSync(PYTHON, ['-c', "import gi; gi.require_version('GstWebRTC', '1.0'); from gi.repository import GstWebRTC"]);
  } catch (err) {
    assert.fail(`GStreamer's webrtcbin or python3-gi is missing (bash scripts/install-deps.sh): ${err.stderr ?? err}`);
  }
  // A /30 of 10.0.0.0/8 picked per run, so two runs on one machine do not collide.
  const a = 1 + Math.floor(Math.random() * 250);
  const b = 4 * Math.floor(Math.random() * 60);
  here = `10.${a}.${b}.1`;
  const there = `10.${a}.${b}.2`;
  const tag = `${a}x${b}`;
  veth = `kwg${tag}a`;
  holder = spawn('unshare', ['-n', 'sleep', '600'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 200));
  ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', `kwg${tag}b`);
  ip('link', 'set', `kwg${tag}b`, 'netns', String(holder.pid));
  ip('addr', 'add', `${here}/30`, 'dev', veth);
  ip('link', 'set', veth, 'up');
  inNamespace('ip', 'link', 'set', 'lo', 'up');
  inNamespace('ip', 'addr', 'add', `${there}/30`, 'dev', `kwg${tag}b`);
  inNamespace('ip', 'link', 'set', `kwg${tag}b`, 'up');

  const sfuPort = await freeUdpTcpPort();
  server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `${here}:${sfuPort}`] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  holder?.kill(); // the namespace, and the veth pair with it, go when its last process does
  try {
    if (veth) ip('link', 'del', veth);
  } catch {
    // gone with the namespace
  }
});

const options = { timeout: 120_000, skip: !isRoot && 'needs root for a network namespace' };
test('a GStreamer webrtcbin publisher reaches a Chromium WHEP viewer', options, async () => {
  const room = uniqueRoom('gst');
  const script = join(HERE, 'gst_whip_publisher.py');
  const publisher = spawn('nsenter', ['-t', String(holder.pid), '-n', PYTHON, script, '60'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  publisher.stderr.on('data', (d) => { stderr += d; });
  const lines = createInterface({ input: publisher.stdout });
  const states = [];
  let location;
  try {
    const offer = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no offer from GStreamer: ${stderr.slice(-2000)}`)), 30_000);
      lines.on('line', (line) => {
        const msg = JSON.parse(line);
        if (msg.offer) {
          clearTimeout(timer);
          resolve(msg.offer);
        }
        if (msg.state) states.push(msg.state);
        if (msg.error) reject(new Error(`GStreamer: ${msg.error}`));
      });
      publisher.on('exit', (code) => reject(new Error(`GStreamer exited ${code}: ${stderr.slice(-2000)}`)));
    });
    const res = await fetch(`${server.url}/whip/${room}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer,
    });
    const answer = await res.text();
    assert.equal(res.status, 201, answer);
    location = res.headers.get('Location');
    publisher.stdin.write(`${JSON.stringify({ answer })}\n`);

    const context = await browser.newContext();
    const viewer = await context.newPage();
    await viewer.goto(`${server.url}/healthz`);
    await connect(viewer, `/whep/${room}`);
    const v = await waitForPlayback(viewer, WAIT * 2, 'the Chromium viewer')
      .catch((e) => assert.fail(
        `${e.message}\nGStreamer states: ${states}\n${stderr.slice(-1500)}\n${server.logs().slice(-2000)}`));
    assert.equal(v.frameWidth, 320, JSON.stringify(v));
    assert.ok(states.includes('connected'), `webrtcbin states: ${states}`);
  } finally {
    if (location) await fetch(`${server.url}${location}`, { method: 'DELETE' }).catch(() => undefined);
    publisher.kill();
  }
});
