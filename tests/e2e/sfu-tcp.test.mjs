// ICE-TCP on the SFU's media port (issue 14): a WHIP publisher and a WHEP viewer (Chromium, fake camera) on a network
// that lets no UDP through to or from the media port connect over TCP — each page's selected candidate pair has a
// TCP local candidate — and the viewer decodes the publisher's video; kaiwa counts the connections. And where UDP
// works, Chromium selects UDP although the answer offers TCP too (the TCP candidate's priority is below).
//
// Blocking UDP needs root: that test runs itself again inside a private network namespace (`unshare -n`, loopback
// only) where nftables drops every UDP datagram to or from the media port on input (as sfu-loss.test.mjs does; on
// output a drop fails Chromium's sendmsg, which is not what a blocking network looks like). It skips when not root
// or nft is missing.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, sleep, startServer, uniqueRoom, WAIT } from './helpers.mjs';
import { connect, openMediaPage } from './whip-client.mjs';

const INNER = process.env.KAIWA_TCP_NS === '1';

function skipReason() {
  if (process.getuid?.() !== 0) return 'needs root (a private network namespace with nftables)';
  if (spawnSync('nft', ['--version']).status !== 0) return 'needs nft (Debian nftables)';
  if (spawnSync('unshare', ['--version']).status !== 0) return 'needs unshare (util-linux)';
  return false;
}

// A publisher and a viewer of one room; returns what each page's selected pair is and what the viewer decoded.
async function publishAndView(port) {
  const server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${port}`] });
  const browser = await launchBrowser();
  try {
    const room = uniqueRoom('icetcp');
    // The selected pair (through the transport's selectedCandidatePairId) and the video stream's counts.
    const stats = (page) => page.evaluate(async () => {
      const report = await window.pc.getStats();
      const out = { state: window.pc.iceConnectionState };
      report.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) {
          const pair = report.get(s.selectedCandidatePairId);
          const local = pair && report.get(pair.localCandidateId);
          const remote = pair && report.get(pair.remoteCandidateId);
          Object.assign(out, { localProtocol: local?.protocol, localType: local?.candidateType,
            remoteProtocol: remote?.protocol, remotePort: remote?.port, tcpType: remote?.tcpType });
        }
        if ((s.type === 'inbound-rtp' || s.type === 'outbound-rtp') && s.kind === 'video') {
          Object.assign(out, { framesDecoded: s.framesDecoded, framesEncoded: s.framesEncoded,
            packetsReceived: s.packetsReceived, packetsSent: s.packetsSent, pliCount: s.pliCount,
            keyFramesDecoded: s.keyFramesDecoded, keyFramesEncoded: s.keyFramesEncoded });
        }
      });
      return out;
    });

    const publisher = await openMediaPage(browser, server);
    await connect(publisher, `/whip/${room}`);
    const answer = await publisher.evaluate(() => window.answerSdp);
    assert.match(answer, new RegExp(`a=candidate:\\S+ 1 tcp \\d+ 127\\.0\\.0\\.1 ${port} typ host tcptype passive`));
    const viewer = await openMediaPage(browser, server);
    await connect(viewer, `/whep/${room}`);

    // Bounded: the viewer decodes a few frames, or the wait ends.
    const deadline = Date.now() + WAIT * 2;
    let seen = await stats(viewer);
    while (!(seen.framesDecoded > 10) && Date.now() < deadline) {
      await sleep(250);
      seen = await stats(viewer);
    }
    const sent = await stats(publisher);
    // The media port's TCP connections as the kernel sees them (queues, retransmissions), for the report.
    const sockets = spawnSync('ss', ['-tni', `sport = :${port}`]).stdout?.toString() ?? '';
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const tcpLines = metrics.split('\n').filter((l) => l.startsWith('kaiwa_sfu') && !/ 0$/.test(l)).join('\n');
    const report = `viewer: ${JSON.stringify(seen)}\npublisher: ${JSON.stringify(sent)}\n${tcpLines}\n${sockets}`;
    console.log(report);
    const tcpConnections = Number(metrics.match(/^kaiwa_sfu_tcp_connections (\d+)$/m)?.[1] ?? 0);
    return { viewer: seen, publisher: sent, tcpConnections, report, logs: server.logs().slice(-3000) };
  } finally {
    await browser.close();
    await server.stop();
  }
}

if (!INNER) {
  test('UDP blocked: publisher and viewer connect over ICE-TCP and the viewer decodes', { timeout: 240_000, skip: skipReason() },
    async () => {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const rules = [
        'ip link set lo up',
        'nft add table inet kaiwatcp',
        "nft add chain inet kaiwatcp in '{ type filter hook input priority 0; }'",
        `nft add rule inet kaiwatcp in udp dport ${port} counter drop`,
        `nft add rule inet kaiwatcp in udp sport ${port} counter drop`,
      ].join(' && ');
      const env = { ...process.env, KAIWA_TCP_NS: '1', KAIWA_TCP_PORT: String(port) };
      delete env.NODE_TEST_CONTEXT;
      const child = spawn('unshare', ['-n', '--', 'sh', '-c', `${rules} && exec "$@"`, 'sh', process.execPath,
        '--experimental-websocket', fileURLToPath(import.meta.url)], { stdio: 'inherit', env });
      const code = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? signal)));
      assert.equal(code, 0, 'the test inside the namespace failed (its output is above)');
    });

  test('UDP open: Chromium selects UDP although TCP is offered', { timeout: 120_000 }, async () => {
    const port = await freeUdpTcpPort();
    const r = await publishAndView(port);
    assert.ok(r.viewer.framesDecoded > 10, `the viewer did not decode:\n${r.report}\n${r.logs}`);
    for (const [who, s] of [['publisher', r.publisher], ['viewer', r.viewer]]) {
      assert.equal(s.localProtocol, 'udp', `${who}:\n${r.report}`);
      assert.equal(s.remoteProtocol, 'udp', `${who}:\n${r.report}`);
    }
  });
} else {
  test('inside the namespace: UDP to and from the media port is dropped', { timeout: 180_000 }, async () => {
    const port = Number(process.env.KAIWA_TCP_PORT);
    const r = await publishAndView(port);
    console.log(spawnSync('nft', ['list', 'table', 'inet', 'kaiwatcp']).stdout.toString());
    assert.ok(r.viewer.framesDecoded > 10, `the viewer did not decode over TCP:\n${r.report}\n${r.logs}`);
    for (const [who, s] of [['publisher', r.publisher], ['viewer', r.viewer]]) {
      assert.equal(s.localProtocol, 'tcp', `${who}'s selected pair is not TCP:\n${r.report}`);
      assert.equal(s.remoteProtocol, 'tcp', `${who}:\n${r.report}`);
      assert.equal(s.remotePort, port, `${who}:\n${r.report}`);
    }
    assert.ok(r.tcpConnections >= 2, `kaiwa counts no ICE-TCP connections:\n${r.report}`);
  });
}
