// SFU connections that heal (docs/protocol.md, "Healing a connection"): three Chromium pages in a `media=sfu` room
// through the SDK. First one page's subscribe connection is cut (every datagram between its local port and kaiwa's
// media port dropped): the SDK sees it go `disconnected`, sends `subscribe-restart` and answers kaiwa's new offer on
// a new connection, and the others' video plays again on the same <video> element, without a rejoin. Then another
// page's publish connection is cut the same way: the SDK restarts ICE on it (a `publish` re-offer with new
// credentials, new local candidates) and the others see that page's video again.
//
// Cutting one connection needs root: the test runs itself again inside a private network namespace (`unshare -n`,
// loopback only) where nftables drops the chosen 5-tuple's UDP on input (as in sfu-loss.test.mjs). It skips when not
// root or nft is missing.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { launchBrowser, openPeer, sleep, startServer, uniqueRoom, waitForRemoteVideo, WAIT } from './helpers.mjs';

const INNER = process.env.KAIWA_HEAL_NS === '1';

function skipReason() {
  if (process.getuid?.() !== 0) return 'needs root (a private network namespace with nftables)';
  if (spawnSync('nft', ['--version']).status !== 0) return 'needs nft (Debian nftables)';
  if (spawnSync('unshare', ['--version']).status !== 0) return 'needs unshare (util-linux)';
  return false;
}

function nft(...args) {
  const r = spawnSync('nft', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `nft ${args.join(' ')}: ${r.stderr}`);
}

/** The local port of the selected candidate pair of one of the page's SFU connections. */
function localPort(page, which) {
  return page.evaluate(async (w) => {
    const pc = window.kaiwa.room.sfuConnections()?.[w];
    if (!pc) return null;
    const stats = [...(await pc.getStats()).values()];
    const transport = stats.find((s) => s.type === 'transport');
    const pair = stats.find((s) => s.id === transport?.selectedCandidatePairId);
    const local = stats.find((s) => s.id === pair?.localCandidateId);
    return local?.port ?? null;
  }, which);
}

/** Records the connection's state changes (ms since now) in window.__states[which], for the report. */
function recordStates(page, which) {
  return page.evaluate((w) => {
    const first = window.kaiwa.room.sfuConnections()[w];
    const t0 = performance.now();
    window.__states ??= {};
    const log = (window.__states[w] = []);
    let last = '';
    // Sampled (the connection may be replaced): which one it is, and its states.
    const timer = setInterval(() => {
      const pc = window.kaiwa.room.sfuConnections()?.[w];
      const now = `${pc === first ? 'old' : 'new'} ${pc?.iceConnectionState}/${pc?.connectionState}`;
      if (now !== last) log.push(`${Math.round(performance.now() - t0)} ${now}`);
      last = now;
      if (w === 'subscribe' && pc && pc !== first && Math.round((performance.now() - t0) / 100) % 20 === 0) {
        void pc.getStats().then((r) => {
          const v = [...r.values()].filter((x) => x.type === 'inbound-rtp' && x.kind === 'video')
            .map((x) => `${x.packetsReceived}p/${x.framesDecoded}f/${x.keyFramesDecoded}k/${x.pliCount}pli`);
          log.push(`${Math.round(performance.now() - t0)} video ${v.join(' ')}`);
        });
      }
      if (performance.now() - t0 > 90_000) clearInterval(timer);
    }, 100);
    return true;
  }, which);
}

/** Frames the page's <video> of `peerId` has presented so far, and whether it is the element first seen. */
function videoState(page, peerId) {
  return page.evaluate((id) => {
    const v = document.querySelector(`[data-testid="tile"][data-peer-id="${id}"] video`);
    window.__firstVideo ??= {};
    window.__firstVideo[id] ??= v;
    return { frames: v ? v.getVideoPlaybackQuality().totalVideoFrames : -1, same: v === window.__firstVideo[id],
      sameStream: v?.srcObject === window.kaiwa.room.peers.get(id)?.stream };
  }, peerId);
}

/** Waits until the page's <video> of `peerId` presents `n` more frames than it had at `from`. */
async function waitForFrames(page, peerId, from, n, timeout) {
  const end = Date.now() + timeout;
  for (;;) {
    const s = await videoState(page, peerId);
    if (s.frames >= from + n) return s;
    if (Date.now() > end) assert.fail(`no ${n} new frames of ${peerId} (had ${from}, now ${s.frames})`);
    await sleep(250);
  }
}

/** Waits until the page's <video> of `peerId` stops presenting new frames for 1.5 s (the cut took effect). */
async function waitForFreeze(page, peerId, timeout) {
  const end = Date.now() + timeout;
  let last = (await videoState(page, peerId)).frames;
  let since = Date.now();
  for (;;) {
    await sleep(250);
    const now = (await videoState(page, peerId)).frames;
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= 1500) {
      return now;
    }
    if (Date.now() > end) assert.fail(`the video of ${peerId} never froze`);
  }
}

if (!INNER) {
  test('sfu connections heal: a cut subscribe and a cut publish connection come back without a rejoin',
    { timeout: 420_000, skip: skipReason() }, async () => {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const rules = [
        'ip link set lo up',
        'nft add table inet kaiwaheal',
        "nft add chain inet kaiwaheal in '{ type filter hook input priority 0; }'",
      ].join(' && ');
      const env = { ...process.env, KAIWA_HEAL_NS: '1', KAIWA_HEAL_PORT: String(port) };
      delete env.NODE_TEST_CONTEXT;
      const child = spawn('unshare', ['-n', '--', 'sh', '-c', `${rules} && exec "$@"`, 'sh', process.execPath,
        '--experimental-websocket', fileURLToPath(import.meta.url)], { stdio: 'inherit', env });
      const code = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? signal)));
      assert.equal(code, 0, 'the test inside the namespace failed (its output is above)');
    });
} else {
  const mediaPort = Number(process.env.KAIWA_HEAL_PORT);
  let server;
  let browser;
  let peers = [];

  before(async () => {
    server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${mediaPort}`] });
    browser = await launchBrowser();
  });

  after(async () => {
    for (const p of peers) await p.close();
    await browser?.close();
    await server?.stop();
  });

  // Drops every datagram between the page's local UDP port and kaiwa's media port, both ways.
  function cut(localPortNumber) {
    nft('add', 'rule', 'inet', 'kaiwaheal', 'in', 'udp', 'sport', String(localPortNumber), 'udp', 'dport',
      String(mediaPort), 'drop');
    nft('add', 'rule', 'inet', 'kaiwaheal', 'in', 'udp', 'sport', String(mediaPort), 'udp', 'dport',
      String(localPortNumber), 'drop');
  }

  const metric = async (name) => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(name + ' '));
    return line ? Number(line.split(' ').pop()) : NaN;
  };

  test('inside the namespace', { timeout: 400_000 }, async () => {
    const room = uniqueRoom('heal');
    for (const name of ['Ada', 'Bea', 'Cid']) peers.push(await openPeer(browser, server, room, name, { query: 'media=sfu' }));
    const [a, b, c] = peers;
    const waits = [];
    for (const p of peers) for (const q of peers) if (p !== q) waits.push(waitForRemoteVideo(p.page, q.id, 60_000));
    await Promise.all(waits);
    const idsBefore = await Promise.all(peers.map((p) => p.page.evaluate(() => window.kaiwa.room.id)));

    // 1. A's subscribe connection is cut: B's and C's pictures freeze at A, then come back on a new connection.
    const subPort = await localPort(a.page, 'subscribe');
    assert.ok(subPort, 'the subscribe connection has a selected pair');
    const oldSub = await a.page.evaluate(() => { window.__oldSub = window.kaiwa.room.sfuConnections().subscribe; return true; });
    assert.ok(oldSub);
    await videoState(a.page, b.id);
    await videoState(a.page, c.id);
    await recordStates(a.page, 'subscribe');
    const cutAt = Date.now();
    cut(subPort);
    const frozen = await waitForFreeze(a.page, b.id, 20_000);
    for (const q of [b, c]) {
      const s = await waitForFrames(a.page, q.id, q === b ? frozen : (await videoState(a.page, q.id)).frames, 30, 60_000);
      assert.ok(s.same && s.sameStream, `A shows ${q.name} on the same <video> and MediaStream`);
    }
    const healedMs = Date.now() - cutAt;
    const sub = await a.page.evaluate(() => {
      const s = window.kaiwa.room.sfuConnections();
      return { restarts: s.subscribeRestarts, replaced: s.subscribe !== window.__oldSub,
        oldState: window.__oldSub.signalingState };
    });
    assert.ok(sub.restarts >= 1 && sub.replaced, JSON.stringify(sub));
    assert.equal(sub.oldState, 'closed', 'the old subscribe connection is closed');
    assert.ok((await metric('kaiwa_sfu_subscribe_restarts_total')) >= 1);
    const subStates = await a.page.evaluate(() => window.__states.subscribe);
    console.log(`subscribe cut: video back at A ${healedMs} ms after the cut (${JSON.stringify(sub)}; ` +
      `connections: ${subStates.join(', ')})`);

    // 2. B's publish connection is cut: A and C stop seeing B, then see B again after B's ICE restart.
    const pubPort = await localPort(b.page, 'publish');
    assert.ok(pubPort, 'the publish connection has a selected pair');
    await b.page.evaluate(() => { window.__oldPub = window.kaiwa.room.sfuConnections().publish; });
    await recordStates(b.page, 'publish');
    const pubCutAt = Date.now();
    cut(pubPort);
    const frozenAtA = await waitForFreeze(a.page, b.id, 20_000);
    const fromC = (await videoState(c.page, b.id)).frames;
    await waitForFrames(a.page, b.id, frozenAtA, 30, 60_000);
    await waitForFrames(c.page, b.id, fromC, 30, WAIT);
    const pubHealedMs = Date.now() - pubCutAt;
    const pub = await b.page.evaluate(() => {
      const s = window.kaiwa.room.sfuConnections();
      return { iceRestarts: s.iceRestarts, republishes: s.republishes, same: s.publish === window.__oldPub,
        state: s.publish?.connectionState };
    });
    const kaiwaIceRestarts = await metric('kaiwa_sfu_ice_restarts_total');
    const pubStates = await b.page.evaluate(() => window.__states.publish);
    console.log(`publish cut: B's video back at A ${pubHealedMs} ms after the cut (${JSON.stringify(pub)}, ` +
      `kaiwa_sfu_ice_restarts_total ${kaiwaIceRestarts}; connection: ${pubStates.join(', ')})`);
    assert.ok(pub.iceRestarts >= 1 && pub.same && pub.republishes === 0,
      `healed by an ICE restart on the same connection: ${JSON.stringify(pub)}`);
    assert.ok(kaiwaIceRestarts >= 1);

    // Nobody rejoined.
    assert.deepEqual(await Promise.all(peers.map((p) => p.page.evaluate(() => window.kaiwa.room.id))), idsBefore);
    for (const p of peers) assert.deepEqual(p.errors, [], `${p.name}: ${p.errors}`);
  });
}
