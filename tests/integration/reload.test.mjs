// SIGHUP reloads what can change without dropping anyone (docs/configuration.md, "Reloading"): the TLS certificate
// and key (a renewal), the log level and the TURN users and secrets from the config file. Connections already open
// stay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { uniqueRoom } from '../e2e/helpers.mjs';
import { Client, WAIT, clientFrame } from './client.mjs';
import { get, openConnection, spawnKaiwa, upgrade } from './process.mjs';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';  // self-made certificates, loopback only

/** A self-signed P-256 certificate for `cn`, written as `name`.crt / `name`.key in `dir`. */
function makeCert(dir, name, cn) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`), '-days', '2', '-subj', `/CN=${cn}`],
  { stdio: 'ignore' });
}

/** The CN of the certificate a new TLS connection is shown. */
function presentedCn(port) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(cn);
    });
    s.on('error', reject);
  });
}

test('SIGHUP: a new certificate for new connections, open ones stay; a bad one keeps the old; the log level', async () => {
  const dir = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'kaiwa-reload-'));
  const open = [];
  let k = null;
  try {
    makeCert(dir, 'a', 'kaiwa-a');
    makeCert(dir, 'b', 'kaiwa-b');
    copyFileSync(join(dir, 'a.crt'), join(dir, 'live.crt'));
    copyFileSync(join(dir, 'a.key'), join(dir, 'live.key'));
    const config = join(dir, 'kaiwa.toml');
    writeFileSync(config, 'log-level = "info"\n');
    k = await spawnKaiwa(['--no-turn', '--config', config, '--tls-cert', join(dir, 'live.crt'),
      '--tls-key', join(dir, 'live.key')]);
    assert.equal(await presentedCn(k.port), 'kaiwa-a');

    // Open before the reload: a native client (WSS), a raw WSS, and a keep-alive HTTPS connection.
    const room = uniqueRoom('reload');
    const a = await Client.open({ url: k.url });
    assert.equal((await a.join(room, 'A')).type, 'ok');
    const raw = await openConnection(k.port, { tls: true });
    open.push(raw);
    assert.equal(await upgrade(raw), 101);
    const https = await openConnection(k.port, { tls: true });
    open.push(https);
    assert.equal(await get(https), 200);

    // The renewal: new files in place, then SIGHUP.
    copyFileSync(join(dir, 'b.crt'), join(dir, 'live.crt'));
    copyFileSync(join(dir, 'b.key'), join(dir, 'live.key'));
    writeFileSync(config, 'log-level = "debug"\n');
    let from = k.log.length;
    k.proc.kill('SIGHUP');
    await k.logged(/SIGHUP: TLS certificate reloaded from .*live\.crt: subject CN ?= ?kaiwa-b/, from);
    await k.logged(/SIGHUP: log level info -> debug/, from);
    assert.equal(k.exited, null, 'still running');
    assert.equal(await presentedCn(k.port), 'kaiwa-b', 'a new connection gets the new certificate');
    // Those open before go on.
    const b = await Client.open({ url: k.url });
    assert.equal((await b.join(room, 'B')).type, 'ok');
    assert.equal((await a.waitFor((m) => m.type === 'peer-joined')).peer.id, b.peer);
    raw.sock.write(clientFrame(1, Buffer.from(JSON.stringify({ v: 1, type: 'join', id: 1, room, name: 'Raw' }))));
    assert.ok(await raw.until(() => raw.text().includes('"re":1')), 'the raw WSS opened before still works');
    assert.equal(await get(https), 200, 'the keep-alive HTTPS connection opened before still works');
    assert.equal(a.closed, null);

    // A broken renewal (a key that does not belong to the certificate): the old certificate stays.
    copyFileSync(join(dir, 'a.key'), join(dir, 'live.key'));
    from = k.log.length;
    k.proc.kill('SIGHUP');
    await k.logged(/SIGHUP: TLS certificate not reloaded, the old one stays: /, from);
    assert.equal(await presentedCn(k.port), 'kaiwa-b');
    // And a config file that no longer parses: logged, the rest goes on.
    writeFileSync(config, 'log-level = "loud"\n');
    copyFileSync(join(dir, 'b.key'), join(dir, 'live.key'));
    from = k.log.length;
    k.proc.kill('SIGHUP');
    await k.logged(/SIGHUP: configuration not re-read/, from);
    await k.logged(/SIGHUP: TLS certificate reloaded/, from);
    assert.equal(k.exited, null, 'still running after three SIGHUPs');
    assert.equal((await a.request({ type: 'chat', text: 'after the reloads' })).type, 'ok');
    a.close();
    b.close();
  } finally {
    for (const c of open) c.sock.destroy();
    if (k) await k.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(k.exited.code, 0, `exit ${JSON.stringify(k.exited)}`);
});

test('SIGHUP without TLS or a config file: logged, nothing dropped, still running', async () => {
  const k = await spawnKaiwa(['--no-turn']);
  try {
    const a = await Client.open({ url: k.url });
    assert.equal((await a.join(uniqueRoom('hup'), 'A')).type, 'ok');
    const from = k.log.length;
    k.proc.kill('SIGHUP');
    await k.logged(/SIGHUP: log level unchanged \(info\)/, from);
    assert.equal(k.exited, null);
    assert.equal((await a.request({ type: 'chat', text: 'still here' })).type, 'ok');
    a.close();
  } finally {
    await k.stop();
  }
  assert.equal(k.exited.code, 0);
  assert.ok(WAIT > 0);
});

test('SIGHUP: new TURN secrets from the config file; /api/ice-servers signs with the one in force', async () => {
  const dir = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'kaiwa-reload-'));
  const config = join(dir, 'kaiwa.toml');
  const turnPort = 20000 + Math.floor(Math.random() * 20000);
  // The REST password of `username` under `secret` (TURN REST API: base64 HMAC-SHA1).
  const restPassword = async (secret, username) => {
    const { createHmac } = await import('node:crypto');
    return createHmac('sha1', secret).update(username).digest('base64');
  };
  const credential = async (k) => {
    const res = await fetch(`${k.url}/api/ice-servers`);
    const turn = (await res.json()).iceServers.find((s) => s.username);
    return turn;
  };
  let k = null;
  try {
    writeFileSync(config, 'turn-secret = ["first-secret"]\n');
    k = await spawnKaiwa(['--config', config, '--turn-listen', `127.0.0.1:${turnPort}`]);
    const before = await credential(k);
    assert.equal(before.credential, await restPassword('first-secret', before.username));

    writeFileSync(config, 'turn-secret = ["second-secret"]\n');
    let from = k.log.length;
    k.proc.kill('SIGHUP');
    await k.logged(/SIGHUP: TURN users and secrets: reloaded: 0 users, 1 REST secrets/, from);
    const after = await credential(k);
    assert.equal(after.credential, await restPassword('second-secret', after.username));

    // A user SASLprep refuses: nothing changes, and the log says why.
    writeFileSync(config, 'turn-secret = ["third-secret"]\nturn-user = ["private\ue000use:pw"]\n');  // RFC 4013 C.3
    from = k.log.length;
    k.proc.kill('SIGHUP');
    await k.logged(/SIGHUP: TURN users and secrets: not reloaded: .*SASLprep/, from);
    const still = await credential(k);
    assert.equal(still.credential, await restPassword('second-secret', still.username));
    assert.equal(k.exited, null);
  } finally {
    if (k) await k.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(k.exited.code, 0);
});
