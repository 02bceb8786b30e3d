// Cross-node relay against same-node relay (docs/cluster.md): a redis-server of its own and two kaiwa nodes on
// loopback. Pairs of native clients ping-pong `message`s in a closed loop, both members on node 1 (same node) or one
// on each node (cross node: every message goes through Redis twice, there and back). Prints one JSON line per case:
// round trips, their p50/p99 latency, the nodes' CPU per relayed message, and Redis commands per relayed message.
//   KAIWA_BIN=build/kaiwa node --experimental-websocket bench/cluster-relay.mjs [--pairs 8] [--round-trips 2000]
// Bounded: --round-trips per pair (at most 100000) and 60 s per case; loopback only.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { execFileSync } from 'node:child_process';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const BIN = process.env.KAIWA_BIN ?? 'build/kaiwa';
const pairs = Number(args.pairs ?? 8);
const roundTrips = Math.min(Number(args['round-trips'] ?? 2000), 100_000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(x[11]) + Number(x[12])) / ticks;
};

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
async function until(check, ms = 10_000) {
  for (const end = Date.now() + ms; Date.now() < end;) { if (await check()) return; await sleep(20); }
  throw new Error('timeout');
}
function redisCommands(port) {  // total_commands_processed, over a raw connection (INFO stats)
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => c.write('INFO stats\r\n'));
    let got = '';
    c.on('data', (d) => {
      got += d;
      const m = got.match(/total_commands_processed:(\d+)/);
      if (m) { c.destroy(); resolve(Number(m[1])); }
    });
    c.on('error', reject);
  });
}
async function startKaiwa(redisPort, id) {
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--redis', `redis://127.0.0.1:${redisPort}`, '--node-id',
    id, '--workers', '1', '--no-sfu', '--no-turn', '--rate', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const k = { proc };
  await until(() => { const m = log.match(/serving http:\/\/127\.0\.0\.1:(\d+)\//); if (m) k.port = Number(m[1]); return m; });
  return k;
}
function open(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const c = { ws, handlers: [] };
    ws.onmessage = (e) => { const m = JSON.parse(e.data); for (const h of c.handlers) h(m); };
    ws.onerror = reject;
    c.handlers.push((m) => { if (m.type === 'hello') resolve(c); });
  });
}
function join(c, room, name) {
  return new Promise((resolve) => {
    c.handlers.push((m) => { if (m.re === 1 && m.type === 'ok') resolve(m.peer); });
    c.ws.send(JSON.stringify({ v: 1, id: 1, type: 'join', room, name }));
  });
}

async function runCase(label, n1, n2, redisPort, cross) {
  const clients = [];
  for (let i = 0; i < pairs; ++i) {
    const room = `bench-${label}-${i}-${Date.now()}`;
    const a = await open(n1.port);
    const ap = await join(a, room, 'a');
    const b = await open(cross ? n2.port : n1.port);
    const bp = await join(b, room, 'b');
    clients.push({ a, ap, b, bp });
  }
  const latencies = [];
  const cpu0 = [cpu(n1.proc.pid), cpu(n2.proc.pid)];
  const redis0 = await redisCommands(redisPort);
  const started = Date.now();
  await Promise.all(clients.map(({ a, ap, b, bp }) => new Promise((resolve) => {
    let done = 0;
    let sentAt = 0;
    // a echoes what b sends; b measures the round trip and sends the next.
    a.handlers.push((m) => { if (m.type === 'message') a.ws.send(JSON.stringify({ v: 1, type: 'message', to: bp, data: m.data })); });
    const next = () => { sentAt = performance.now(); b.ws.send(JSON.stringify({ v: 1, type: 'message', to: ap, data: { n: done } })); };
    b.handlers.push((m) => {
      if (m.type !== 'message') return;
      latencies.push(performance.now() - sentAt);
      if (++done >= roundTrips || Date.now() - started > 60_000) return resolve();
      next();
    });
    next();
  })));
  const seconds = (Date.now() - started) / 1000;
  const cpu1 = [cpu(n1.proc.pid), cpu(n2.proc.pid)];
  const redis1 = await redisCommands(redisPort);
  for (const { a, b } of clients) { a.ws.close(); b.ws.close(); }
  latencies.sort((x, y) => x - y);
  const messages = latencies.length * 2;  // relayed messages: each round trip is two
  const q = (p) => Number(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(3));
  return {
    case: label, pairs, roundTrips: latencies.length, seconds, messagesPerSecond: Math.round(messages / seconds),
    p50ms: q(0.5), p99ms: q(0.99),
    cpuMicrosPerMessage: { node1: Math.round(((cpu1[0] - cpu0[0]) * 1e6) / messages), node2: Math.round(((cpu1[1] - cpu0[1]) * 1e6) / messages) },
    redisCommandsPerMessage: Number(((redis1 - redis0) / messages).toFixed(3)),
  };
}

const redisPort = await freePort();
const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
try {
  await until(() => new Promise((r) => { const c = connect(redisPort, '127.0.0.1', () => { c.destroy(); r(true); }); c.on('error', () => r(false)); }));
  const n1 = await startKaiwa(redisPort, 'bench-1');
  const n2 = await startKaiwa(redisPort, 'bench-2');
  await sleep(1500);  // both heartbeats: each node knows the other
  try {
    console.log(JSON.stringify(await runCase('same-node', n1, n2, redisPort, false)));
    console.log(JSON.stringify(await runCase('cross-node', n1, n2, redisPort, true)));
  } finally {
    n1.proc.kill('SIGTERM');
    n2.proc.kill('SIGTERM');
  }
} finally {
  redis.kill('SIGKILL');
}
