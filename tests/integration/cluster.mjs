// A cluster on this machine for the tests (docs/cluster.md): a redis-server of the test's own on a free loopback port
// and kaiwa nodes on it. Shared by tests/integration/cluster*.test.mjs and tests/e2e/cluster.test.mjs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { freeUdpTcpPort } from '../e2e/helpers.mjs';
import { WAIT, metric, sleep } from './client.mjs';
import { spawnKaiwa } from './process.mjs';

const REDIS = '/usr/bin/redis-server';
/** For a test's `skip` option: false when redis-server is there. */
export const skipWithoutRedis = existsSync(REDIS) ? false : 'redis-server is not installed (apt install redis-server)';

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function listening(port) {
  for (const end = Date.now() + WAIT; Date.now() < end;) {
    const ok = await new Promise((r) => {
      const c = connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await sleep(20);
  }
  throw new Error(`redis-server is not listening on ${port}`);
}

export async function startRedis(port) {
  const proc = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  const exited = new Promise((r) => proc.on('exit', r));
  await listening(port);
  return { proc, stop: async () => { proc.kill('SIGKILL'); await exited; } };
}

/** A node's arguments: without the SFU unless `extra` gives it a media port (sfuArgs). */
export const nodeArgs = (url, id, extra = []) =>
  ['--redis', url, '--node-id', id, '--workers', '2', '--no-turn',
    ...(extra.includes('--sfu-listen') ? [] : ['--no-sfu']), ...extra];

/** The SFU on a media port of its own on loopback (each node of a cluster on this machine needs one). */
export async function sfuArgs() {
  return ['--sfu-listen', `127.0.0.1:${await freeUdpTcpPort()}`];
}

export async function health(node) {
  const r = await fetch(`${node.url}/healthz`);
  return { status: r.status, text: await r.text() };
}

export async function until(check, what, ms = WAIT) {
  for (const end = Date.now() + ms; Date.now() < end;) {
    const v = await check();
    if (v) return v;
    await sleep(50);
  }
  throw new Error(`timeout waiting for ${what}`);
}

/**
 * Redis and `count` nodes n1..nN, stopped when the test ends; resolves once every node sees every other.
 * `extra`: more arguments for every node, or a function (i) => arguments (may be async) for node i (from 1).
 */
export async function cluster(t, count, extra = []) {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}`;
  const nodes = [];
  t.after(async () => {
    for (const n of nodes) await n.stop();
    await redis.stop();
  });
  for (let i = 1; i <= count; ++i) {
    const more = typeof extra === 'function' ? await extra(i) : extra;
    nodes.push(await spawnKaiwa(nodeArgs(url, `n${i}`, more)));
  }
  for (const n of nodes) await until(async () => (await metric(n, 'kaiwa_cluster_nodes')) === count, 'the nodes');
  return { redis, nodes, port, url };
}
