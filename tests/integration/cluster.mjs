// Helpers of the cluster tests (docs/cluster.md): a redis-server of the test's own on a free loopback port and up to
// three kaiwa nodes on this machine; and, for the doors whose clients need no sticky sessions (Socket.IO), a
// balancer that sends each HTTP request and each WebSocket upgrade to the next node in turn. Shared by
// tests/integration/cluster*.test.mjs, tests/e2e/cluster*.test.mjs and bench/socketio-cluster.mjs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request as httpRequest, createServer as createHttpServer } from 'node:http';
import { createServer, connect } from 'node:net';
import { freeUdpTcpPort } from '../e2e/helpers.mjs';
import { WAIT, metric, sleep } from './client.mjs';
import { spawnKaiwa } from './process.mjs';

const REDIS = '/usr/bin/redis-server';
/** The tests' `skip` option: a reason when redis-server is missing. */
export const skip = existsSync(REDIS) ? false : 'redis-server is not installed (apt install redis-server)';

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
    const n = await spawnKaiwa(nodeArgs(url, `n${i}`, more));
    n.id = `n${i}`;
    nodes.push(n);
  }
  // Every node sees every other before the test begins.
  for (const n of nodes) await until(async () => (await metric(n, 'kaiwa_cluster_nodes')) === count, 'the nodes');
  return { redis, nodes, port, url };
}

/**
 * A balancer without sticky sessions on a loopback port: each HTTP request, and each WebSocket upgrade, goes to the
 * next of `nodes` in turn (round robin). `hits` counts what each node got; `remove(node)` takes a node out of the
 * turn, as a balancer's health check would. { url, hits, remove, close() }.
 */
export async function roundRobin(t, nodes) {
  const live = [...nodes];
  const hits = new Map(nodes.map((n) => [n.id, { http: 0, upgrade: 0 }]));
  let next = 0;
  const pick = () => live[next++ % live.length];
  const sockets = new Set();
  const server = createHttpServer((req, res) => {
    const node = pick();
    hits.get(node.id).http++;
    const up = httpRequest({ host: '127.0.0.1', port: node.port, method: req.method, path: req.url,
      headers: { ...req.headers, connection: 'close' }, agent: false }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  server.on('upgrade', (req, socket, head) => {
    const node = pick();
    hits.get(node.id).upgrade++;
    const up = connect(node.port, '127.0.0.1', () => {
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${text}\r\n`);
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    sockets.add(socket).add(up);
    const end = () => { socket.destroy(); up.destroy(); };
    up.on('error', end);
    socket.on('error', end);
    up.on('close', end);
    socket.on('close', end);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  const close = () => new Promise((r) => {
    for (const s of sockets) s.destroy();
    server.close(r);
  });
  t.after(close);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hits,
    remove: (node) => { const i = live.indexOf(node); if (i >= 0) live.splice(i, 1); },
    close,
  };
}
