// kaiwa's TURN/STUN service against coturn's own client tools (Debian package `coturn`): turnutils_stunclient and
// turnutils_uclient over UDP and TCP, with long-term and REST credentials, channels and Send indications, echoed by
// turnutils_peer on loopback. Relaying to 127.0.0.0/8 is turned on explicitly (--turn-allow-peer); a server without
// it refuses the same peer. Skipped when the tools are not installed (scripts/install-deps.sh installs them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { freeUdpTcpPort, startServer } from '../e2e/helpers.mjs';
import { sleep } from './client.mjs';

const haveTools = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v turnutils_uclient && command -v turnutils_peer && command -v turnutils_stunclient'],
      { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = haveTools ? false : 'coturn client tools not installed (apt-get install coturn)';

// A port free for both TCP and UDP on 127.0.0.1.
function run(cmd, args, timeoutMs = 60_000) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGINT', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? err.signal) : 0, out: stdout + stderr });
    });
  });
}

// turnutils_uclient's totals: "tot_send_msgs=N, tot_recv_msgs=M" and "Total lost packets L".
function totals(out) {
  const m = [...out.matchAll(/start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/g)].pop();
  const lost = [...out.matchAll(/Total lost packets (\d+)/g)].pop();
  return m ? { sent: Number(m[1]), received: Number(m[2]), lost: lost ? Number(lost[1]) : NaN } : null;
}

async function metricValue(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
  return m ? Number(m[1]) : NaN;
}

async function withTurn(extra, fn) {
  const turnPort = await freeUdpTcpPort();
  const tlsPort = await freeUdpTcpPort();
  const peerPort = await freeUdpTcpPort();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-realm', 'example.test', '--turn-user', 'alice:alicepw',
      '--turn-secret', 's3cr3t', '--turn-ports', '40000-44999', '--turn-tls-listen', `127.0.0.1:${tlsPort}`, ...extra],
  });
  const peer = spawn('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)], { stdio: 'ignore' });
  await sleep(200);
  try {
    await fn({ server, turnPort, tlsPort, peerPort });
  } finally {
    peer.kill('SIGKILL');
    await server.stop();
  }
}

const CLIENTS = 5;
const MESSAGES = 100;
const uclient = (turnPort, peerPort, args) => run('turnutils_uclient',
  [...args, '-e', '127.0.0.1', '-r', String(peerPort), '-m', String(CLIENTS), '-n', String(MESSAGES), '-z', '5', '-c',
    '-p', String(turnPort), '127.0.0.1']);

test('TURN interop with coturn client tools', { skip }, async (t) => {
  await withTurn(['--turn-allow-peer', '127.0.0.0/8'], async ({ server, turnPort, tlsPort, peerPort }) => {
    await t.test('turnutils_stunclient gets its reflexive address', async () => {
      const r = await run('turnutils_stunclient', ['-p', String(turnPort), '127.0.0.1'], 20_000);
      assert.match(r.out, /UDP reflexive addr: 127\.0\.0\.1:\d+/, r.out);
    });

    const cases = [
      ['UDP, long-term credentials, channels', ['-u', 'alice', '-w', 'alicepw']],
      ['TCP, long-term credentials, channels', ['-t', '-u', 'alice', '-w', 'alicepw']],
      ['UDP, REST credentials', ['-W', 's3cr3t', '-u', 'bob']],
      ['TCP, REST credentials', ['-t', '-W', 's3cr3t', '-u', 'bob']],
      ['UDP, Send/Data indications', ['-s', '-u', 'alice', '-w', 'alicepw']],
      ['TCP, Send/Data indications', ['-t', '-s', '-u', 'alice', '-w', 'alicepw']],
    ];
    for (const [name, args] of cases) {
      await t.test(`turnutils_uclient ${name}: no loss`, async () => {
        const r = await uclient(turnPort, peerPort, args);
        const tot = totals(r.out);
        assert.ok(tot, r.out.slice(-2000));
        assert.equal(tot.sent, CLIENTS * MESSAGES, r.out.slice(-1500));
        assert.equal(tot.received, tot.sent, r.out.slice(-1500));
        assert.equal(tot.lost, 0);
        assert.doesNotMatch(r.out, /ERROR/);
      });
    }

    await t.test('turnutils_uclient over TLS (self-signed certificate), long-term and REST credentials', async () => {
      for (const args of [['-u', 'alice', '-w', 'alicepw'], ['-W', 's3cr3t', '-u', 'bob']]) {
        const r = await uclient(tlsPort, peerPort, ['-t', '-S', ...args]);
        const tot = totals(r.out);
        assert.ok(tot, r.out.slice(-2000));
        assert.equal(tot.sent, CLIENTS * MESSAGES, r.out.slice(-1500));
        // The relay-to-peer leg is UDP: on a loaded machine a datagram may be lost; TLS itself must not lose any.
        assert.ok(tot.received >= tot.sent * 0.99, r.out.slice(-1500));
        assert.doesNotMatch(r.out, /ERROR/);
      }
    });

    await t.test('the turns: URL and credentials from /api/ice-servers work over TLS', async () => {
      const body = await (await fetch(`${server.url}/api/ice-servers`)).json();
      const entry = body.iceServers.find((s) => s.urls.some((u) => u.startsWith('turns:')));
      assert.ok(entry, JSON.stringify(body));
      const url = entry.urls.find((u) => u.startsWith('turns:'));
      assert.equal(url, `turns:127.0.0.1:${tlsPort}?transport=tcp`);
      const r = await uclient(tlsPort, peerPort, ['-t', '-S', '-u', entry.username, '-w', entry.credential]);
      const tot = totals(r.out);
      assert.ok(tot, r.out.slice(-2000));
      assert.ok(tot.received >= tot.sent * 0.99, r.out.slice(-1500));
      assert.doesNotMatch(r.out, /ERROR/);
    });

    await t.test('a wrong password is refused', async () => {
      const before = await metricValue(server, 'kaiwa_turn_auth_failures_total');
      const r = await run('turnutils_uclient', ['-u', 'alice', '-w', 'wrong', '-e', '127.0.0.1', '-r', String(peerPort),
        '-m', '1', '-n', '5', '-c', '-p', String(turnPort), '127.0.0.1'], 20_000);
      assert.match(r.out, /Cannot complete Allocation|error 401/, r.out.slice(-1000));
      await sleep(1200);  // metrics are published once a second
      assert.ok(await metricValue(server, 'kaiwa_turn_auth_failures_total') > before);
    });

    await t.test('relayed traffic shows in /metrics', async () => {
      await sleep(1200);
      assert.ok(await metricValue(server, 'kaiwa_turn_channeldata_in_total') >= CLIENTS * MESSAGES);
      assert.ok(await metricValue(server, 'kaiwa_turn_channeldata_out_total') >= CLIENTS * MESSAGES);
      assert.ok(await metricValue(server, 'kaiwa_turn_send_indications_total') >= CLIENTS * MESSAGES);
    });
  });
});

test('TURN refuses loopback peers by default', { skip }, async () => {
  await withTurn([], async ({ server, turnPort, peerPort }) => {
    const r = await run('turnutils_uclient', ['-u', 'alice', '-w', 'alicepw', '-e', '127.0.0.1', '-r', String(peerPort),
      '-m', '1', '-n', '5', '-c', '-p', String(turnPort), '127.0.0.1'], 20_000);
    assert.match(r.out, /error 403|Forbidden/, r.out.slice(-1000));
    await sleep(1200);
    assert.equal(await metricValue(server, 'kaiwa_turn_channeldata_in_total'), 0);
  });
});

// Needs no coturn tools: what the web app gets to reach kaiwa's TURN.
test('/api/ice-servers: turns: with a TLS listener, credentials that live --turn-credential-ttl', async () => {
  const turnPort = await freeUdpTcpPort();
  const tlsPort = await freeUdpTcpPort();
  const server = await startServer({
    extraArgs: ['--turn-listen', `127.0.0.1:${turnPort}`, '--turn-tls-listen', `127.0.0.1:${tlsPort}`,
      '--turn-secret', 's3cr3t', '--turn-credential-ttl', '2m'],
  });
  try {
    const before = Math.floor(Date.now() / 1000);
    const body = await (await fetch(`${server.url}/api/ice-servers`)).json();
    const after = Math.floor(Date.now() / 1000);
    assert.equal(body.ttl, 120, JSON.stringify(body));
    const turn = body.iceServers.find((s) => s.urls.some((u) => u.startsWith('turn:')));
    assert.deepEqual(turn.urls, [`turn:127.0.0.1:${turnPort}?transport=udp`, `turn:127.0.0.1:${turnPort}?transport=tcp`,
      `turns:127.0.0.1:${tlsPort}?transport=tcp`]);
    const expiry = Number(turn.username.split(':')[0]);
    assert.ok(expiry >= before + 120 - 2 && expiry <= after + 120 + 2, `expiry ${expiry}, now ${before}..${after}`);
    assert.equal(turn.credential, createHmac('sha1', 's3cr3t').update(turn.username).digest('base64'));
  } finally {
    await server.stop();
  }
  // Without a TLS listener: no turns:.
  const plain = await startServer({ extraArgs: ['--turn-listen', `127.0.0.1:${await freeUdpTcpPort()}`] });
  try {
    const body = await (await fetch(`${plain.url}/api/ice-servers`)).json();
    assert.equal(body.ttl, 3600);
    assert.ok(body.iceServers.every((s) => s.urls.every((u) => !u.startsWith('turns:'))), JSON.stringify(body));
  } finally {
    await plain.stop();
  }
});
