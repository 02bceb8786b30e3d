// The kaiwa process for the tests that look at the process itself (descriptor limits, signals, CPU) or at where a
// connection comes from (per-address limits): spawned with `--listen 127.0.0.1:0` (the port it logs), optionally
// under a descriptor limit, with its log kept; raw HTTP from a chosen loopback address.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { ROOT } from '../e2e/helpers.mjs';
import { WAIT, sleep } from './client.mjs';

const BIN = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');

/**
 * Starts `kaiwa serve --listen 127.0.0.1:0 ...args` and waits for the line saying where it serves.
 * `openFiles`: the soft and hard descriptor limit (kaiwa raises soft to hard, so both are set).
 */
export async function spawnKaiwa(args, { openFiles = 0 } = {}) {
  const argv = ['serve', '--listen', '127.0.0.1:0', ...args];
  const proc = openFiles
    ? spawn('sh', ['-c', `ulimit -n ${openFiles} && exec "$0" "$@"`, BIN, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const k = { proc, log: '', logBytes: 0, exited: null };
  const keep = (chunk) => {
    k.logBytes += chunk.length;
    if (k.log.length < 1 << 20) k.log += chunk.toString();  // enough to read; the byte count goes on
    if (process.env.E2E_DEBUG === '1') process.stderr.write(`[kaiwa] ${chunk}`);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  k.exitPromise = new Promise((r) => proc.on('exit', (code, signal) => { k.exited = { code, signal }; r(k.exited); }));
  const deadline = Date.now() + 15_000;
  let m = null;
  while (!(m = k.log.match(/serving (https?):\/\/127\.0\.0\.1:(\d+)\//)) && !k.exited && Date.now() < deadline) {
    await sleep(20);
  }
  if (!m) {
    proc.kill('SIGKILL');
    throw new Error(`kaiwa did not start: ${JSON.stringify(k.exited)}\n${k.log.slice(-2000)}`);
  }
  k.port = Number(m[2]);
  k.url = `${m[1]}://127.0.0.1:${k.port}`;
  k.lines = () => k.log.split('\n').length - 1;
  /** Waits until the log has a line matching `re` (after `from` characters); resolves with the match. */
  k.logged = async (re, from = 0, ms = WAIT) => {
    for (const end = Date.now() + ms; Date.now() < end;) {
      const found = k.log.slice(from).match(re);
      if (found) return found;
      await sleep(20);
    }
    throw new Error(`no log line matching ${re}; last log:\n${k.log.slice(-1500)}`);
  };
  k.stop = async () => {
    if (k.exited) return;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await k.exitPromise;
    clearTimeout(killer);
  };
  return k;
}

/** The process's CPU time (user + system) so far, in seconds, from /proc/PID/stat. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');  // fields[0] is the state (field 3)
  const ticks = Number(fields[11]) + Number(fields[12]);             // utime (14) + stime (15)
  return ticks / clockTicks();
}
let ticksPerSecond = 0;
function clockTicks() {
  if (!ticksPerSecond) ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  return ticksPerSecond;
}

/**
 * A TCP (or TLS) connection to kaiwa from `localAddress` (any of 127/8: Linux routes them all on lo), with what it
 * read so far: `got`, `closed`, and `until(pred, ms)` (resolves true once pred() holds, false after ms or a close
 * with pred() still false).
 */
export async function openConnection(port, { localAddress = '127.0.0.1', tls = false } = {}) {
  const tcp = tls ? connect({ host: '127.0.0.1', port, localAddress }) : null;
  const wire = tls ? heldStream(tcp) : null;
  const sock = tls
    ? tlsConnect({ socket: wire, rejectUnauthorized: false })
    : connect({ host: '127.0.0.1', port, localAddress });
  const c = { sock, got: Buffer.alloc(0), closed: false, error: null };
  if (tls) {
    /** TLS: what is written from now on (records) waits until `release()`, which sends it in one TCP write. */
    c.hold = () => wire.hold();
    c.release = () => new Promise((r) => setImmediate(() => { wire.release(); r(); }));
  }
  sock.on('data', (d) => { c.got = Buffer.concat([c.got, d]); });
  sock.on('close', () => { c.closed = true; });
  sock.on('error', (e) => { c.error = e; });
  const ok = await new Promise((resolve) => {
    sock.once(tls ? 'secureConnect' : 'connect', () => resolve(true));
    sock.once('close', () => resolve(false));
  });
  c.connected = ok;
  c.text = () => c.got.toString('latin1');
  c.until = async (pred, ms = WAIT) => {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) {
      if (pred()) return true;
      if (c.closed) return pred();
    }
    return pred();
  };
  c.close = () => new Promise((resolve) => {
    if (c.closed) return resolve();
    sock.once('close', resolve);
    sock.destroy();
  });
  return c;
}

// A TCP socket as a stream for TLS to run over, whose writes can be held and then sent as one: several TLS records
// in one TCP segment, as a client that writes quickly sends them.
function heldStream(tcp) {
  let held = null;
  const d = new Duplex({
    write(chunk, _enc, cb) {
      if (held) held.push(chunk);
      else tcp.write(chunk);
      cb();
    },
    read() {},
    final(cb) {
      tcp.end();
      cb();
    },
    destroy(err, cb) {
      tcp.destroy();
      cb(err);
    },
  });
  tcp.on('data', (b) => d.push(b));
  tcp.on('end', () => d.push(null));
  tcp.on('close', () => d.destroy());
  tcp.on('error', (e) => d.destroy(e));
  d.hold = () => { held = []; };
  d.release = () => {
    if (held?.length) tcp.write(Buffer.concat(held));
    held = null;
  };
  return d;
}

/**
 * Sends a keep-alive `GET path` on connection `c` and resolves with the status of the answer (0 if the connection
 * closed, or nothing came within `ms`); the answer is consumed from `c.got`.
 */
export async function get(c, path = '/healthz', ms = WAIT) {
  const start = c.got.length;
  if (!c.closed) c.sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const whole = () => {
    const text = c.got.subarray(start).toString('latin1');
    const head = text.indexOf('\r\n\r\n');
    if (head < 0) return null;
    const length = Number((text.match(/content-length: *(\d+)/i) ?? [0, 0])[1]);
    return text.length >= head + 4 + length ? text : null;
  };
  await c.until(() => whole() !== null, ms);
  const text = whole() ?? c.got.subarray(start).toString('latin1');
  const status = text.match(/^HTTP\/1\.1 (\d{3})/);
  return status ? Number(status[1]) : 0;
}

/** A WebSocket upgrade request for `path` as raw bytes. */
export function upgradeRequest(path = '/ws') {
  const key = Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256))).toString('base64');
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/** Sends an upgrade on `c` and resolves with the status of the answer (101, 429, ...; 0 for none). */
export async function upgrade(c, path = '/ws', ms = WAIT) {
  c.sock.write(upgradeRequest(path));
  await c.until(() => /^HTTP\/1\.1 \d{3}/.test(c.text()), ms);
  const m = c.text().match(/^HTTP\/1\.1 (\d{3})/);
  return m ? Number(m[1]) : 0;
}

/** `GET path` on a fresh connection from `localAddress`; resolves with { status, body }. */
export async function fetchFrom(port, path, { localAddress = '127.0.0.1', tls = false } = {}) {
  const c = await openConnection(port, { localAddress, tls });
  const status = await get(c, path);
  const text = c.text();
  await c.close();
  return { status, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

/** The value of metric line `name` (with its labels) from /metrics, asked from `localAddress`. */
export async function metricFrom(port, name, opts = {}) {
  const { body } = await fetchFrom(port, '/metrics', opts);
  const line = body.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : NaN;
}

/**
 * Skip reason for tests that run the server out of file descriptors, when it is the sanitized build: the sanitizers'
 * runtime needs descriptors of its own (UBSan's vptr check probes memory through a pipe), so under EMFILE it reports
 * errors that are not there ("invalid vptr", "memory cannot be printed"); ThreadSanitizer opens its report file only
 * when it has something to report, so under EMFILE a report would be lost. scripts/test.sh sets KAIWA_SANITIZED=1 for
 * both sanitized servers.
 */
export const SANITIZED_SKIP = process.env.KAIWA_SANITIZED === '1'
  ? 'the sanitized server cannot run out of descriptors (its runtime needs some): release build only'
  : false;
