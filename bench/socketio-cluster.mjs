// Socket.IO across nodes (docs/socketio.md, "Across nodes"): what forwarding costs. A redis-server of its own and
// three kaiwa nodes on loopback; two socket.io-client sockets in one room ping-pong `offer`/`answer` in a closed
// loop, (1) polling, straight to the node holding the sessions, (2) polling through a round-robin balancer (two of
// three requests land on a node that forwards them through Redis), (3) WebSocket through the balancer to a node
// that does not hold the sessions. Prints one JSON line per case: round trips, p50/p99 latency, Redis commands per
// round trip.
//   KAIWA_BIN=build/kaiwa node --experimental-websocket bench/socketio-cluster.mjs [--round-trips 300]
// Bounded: --round-trips (at most 5000) per case, 60 s per case, 5 s per round trip (else counted lost); loopback.
import { connect } from 'node:net';
import { cluster, roundRobin } from '../tests/integration/cluster.mjs';
import { SioPeer } from '../tests/integration/sio.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const roundTrips = Math.min(Number(args['round-trips'] ?? 300), 5000);
const cleanups = [];
const t = { after: (fn) => cleanups.push(fn) };

function redisCommands(port) {
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => c.write('INFO stats\r\n'));
    let got = '';
    c.on('data', (d) => {
      got += d;
      const m = /total_commands_processed:(\d+)/.exec(got);
      if (m) { c.destroy(); resolve(Number(m[1])); }
    });
    c.on('error', reject);
  });
}

async function pingPong(server, opts, redisPort) {
  const room = `bench-${Math.random().toString(36).slice(2)}`;
  const a = await SioPeer.connect(server, opts);
  const b = await SioPeer.connect(server, opts);
  for (const p of [a, b]) await p.emitWithAck('join-room', [room]);
  b.socket.on('offer', (m) => b.socket.emit('answer', { to: m.from, answer: m.offer }));
  const times = [];
  const lostAt = [];  // round trips with no answer within 5 s
  const before = await redisCommands(redisPort);
  const end = Date.now() + 60_000;
  for (let i = 0; i < roundTrips && Date.now() < end; ++i) {
    const start = process.hrtime.bigint();
    const answered = await new Promise((resolve) => {
      const timer = setTimeout(() => { a.socket.off('answer', done); resolve(false); }, 5000);
      function done() { clearTimeout(timer); resolve(true); }
      a.socket.once('answer', done);
      a.socket.emit('offer', { to: b.id, offer: { type: 'offer', sdp: `v=0 ${i}` } });
    });
    if (answered) times.push(Number(process.hrtime.bigint() - start) / 1e6);
    else lostAt.push(i);
  }
  const commands = (await redisCommands(redisPort)) - before;
  const disconnects = [...a.disconnects, ...b.disconnects];
  const refused = [...a.received('kaiwa:error'), ...b.received('kaiwa:error')].map((e) => e.args[0]?.error);
  a.close();
  b.close();
  times.sort((x, y) => x - y);
  const q = (f) => times[Math.min(times.length - 1, Math.floor(f * times.length))].toFixed(2);
  return { roundTrips: times.length, lostAt, refused, disconnects, p50ms: q(0.5), p99ms: q(0.99),
    redisCommandsPerRoundTrip: (commands / times.length).toFixed(2) };
}

try {
  const { nodes, port } = await cluster(t, 3, ['--address-connect-rate', '0']);
  const lb = await roundRobin(t, nodes);
  // The first handshake places Socket.IO's sessions on the node it reaches (through the balancer: n1).
  const probe = await SioPeer.connect(lb, { transports: ['polling'] });
  const holder = nodes.find((n) => n.id === probe.socket.io.engine.id.split('~')[0]);
  probe.close();
  const other = nodes.find((n) => n !== holder);
  const cases = [
    ['polling, straight to the holder', holder, { transports: ['polling'] }],
    ['polling through the round-robin balancer', lb, { transports: ['polling'] }],
    ['websocket on a node that forwards it', other, { transports: ['websocket'] }],
  ];
  for (const [name, server, opts] of cases) {
    console.log(JSON.stringify({ case: name, ...(await pingPong(server, opts, port)) }));
  }
} finally {
  SioPeer.closeAll();
  for (const fn of cleanups.reverse()) await fn();
}
