// kaiwa-loadgen media against a kaiwa started here, so the SFU load tool cannot rot: one publisher and two
// subscribers over WHIP/WHEP with real ICE, DTLS and SRTP for 2 s at a paced 200 video + 50 audio packets/s; every
// subscriber stream must receive packets, none lost (by the sender's packet index, the tail included), none failing
// SRTP, and the tool's JSON must add up. The generator is build/bench/kaiwa-loadgen (next to KAIWA_BIN's directory),
// built with KAIWA_BENCH=ON (the default).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { freeUdpTcpPort, startServer, ROOT, uniqueRoom } from '../e2e/helpers.mjs';

const BIN = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');
const LOADGEN = join(dirname(BIN), 'bench', 'kaiwa-loadgen');

test('kaiwa-loadgen media: 1 publisher x 2 subscribers through kaiwa, nothing lost', {
  skip: !existsSync(LOADGEN) && `no ${LOADGEN} (configured with KAIWA_BENCH=OFF?)`,
}, async () => {
  const sfuPort = await freeUdpTcpPort();
  const server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`] });
  try {
    const { host } = new URL(server.url);
    const { stdout } = await new Promise((resolve, reject) => {
      execFile(LOADGEN, ['media', '--server', 'kaiwa', '--http', host, '--room', uniqueRoom('lg'),
        '--publishers', '1', '--subscribers', '2', '--rate', '200', '--seconds', '2', '--warmup', '0.5',
        '--server-pid', String(server.proc.pid)], { timeout: 60_000 }, (err, stdout, stderr) => {
        // Exit status 3 means loss: the assertions below say which figure, so only other failures reject here.
        if (err && err.code !== 3) reject(new Error(`${err.message}\n${stderr}`));
        else resolve({ stdout });
      });
    });
    const json = stdout.split('\n').find((l) => l.startsWith('{'));
    assert.ok(json, stdout);
    const r = JSON.parse(json);
    assert.equal(r.server, 'kaiwa');
    assert.ok(r.sent > 0, 'the publisher sent');
    assert.ok(r.received > 0, 'the subscribers received in the window');
    assert.equal(r.silentStreams, 0, 'every subscriber stream (audio and video of both) got packets');
    assert.equal(r.lost, 0, stdout);
    assert.equal(r.badSrtp, 0);
    assert.equal(r.wrongPublisher, 0);
    assert.match(r.srtpProfile, /GCM/, 'kaiwa as DTLS server picks an AEAD GCM profile');
    // Two subscribers see every packet of the window: about twice what was sent (the window edges differ slightly).
    assert.ok(r.received >= 1.8 * r.sent && r.received <= 2.2 * r.sent, `${r.received} received for ${r.sent} sent`);
    assert.ok(r.firstFrameMaxMs > 0, 'a frame start reached each subscriber');
    assert.ok(r.serverCpuS >= 0 && r.rssWithSubscribersKb > 0, 'the server was measured');
  } finally {
    await server.stop();
  }
});
