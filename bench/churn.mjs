// Join/leave churn for the soak (bench/soak.sh): clients join running rooms and leave again, over kaiwa's native
// protocol, and every message a joiner sends must reach the room's anchor (a member that stays all along).
//   node --experimental-websocket bench/churn.mjs --url ws://127.0.0.1:8080/ws --duration 600 [--rooms 8]
//        [--loops 4] [--rate 20] [--max-cycles 100000]
// --rate: join/leave cycles per second in all (0: as fast as the loops go). Each cycle is one new connection from
// 127.0.0.1, so keep it under the per-address connect rate (docs/configuration.md) unless that is what you test.
// Prints one JSON line at the end: cycles done and failed, messages sent, received and lost, errors by kind.
// Bounded in time (--duration, plus 30 s to finish) and in count (--max-cycles); loopback only.

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const url = args.url ?? 'ws://127.0.0.1:8080/ws';
if (!/^wss?:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)[:/]/.test(url)) {
  console.error('churn: loopback URLs only');
  process.exit(2);
}
const durationMs = Number(args.duration ?? 60) * 1000;
const roomCount = Number(args.rooms ?? 8);
const loops = Number(args.loops ?? 4);
const maxCycles = Number(args['max-cycles'] ?? 100000);
const cycleRate = Number(args.rate ?? 20);
const WAIT = 10_000;

const stats = { cycles: 0, failed: 0, sent: 0, received: 0, errors: {} };
const fail = (why) => {
  stats.failed += 1;
  stats.errors[why] = (stats.errors[why] ?? 0) + 1;
};

// A native-protocol client: requests with ids, replies matched by `re`, everything else to `onEvent`.
function open(room, name, onEvent = () => {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?room=${room}`);
    const pending = new Map();
    let nextId = 1;
    const timer = setTimeout(() => reject(new Error('open timeout')), WAIT);
    const client = {
      ws,
      request(type, body = {}) {
        const id = nextId++;
        ws.send(JSON.stringify({ v: 1, type, id, ...body }));
        return new Promise((res, rej) => {
          const t = setTimeout(() => {
            pending.delete(id);
            rej(new Error(`no reply to ${type}`));
          }, WAIT);
          pending.set(id, (m) => {
            clearTimeout(t);
            res(m);
          });
        });
      },
      close() {
        try { ws.close(1000); } catch { /* closed already */ }
      },
    };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'hello') {
        clearTimeout(timer);
        client.request('join', { room, name }).then((r) => (r.type === 'ok' ? resolve({ ...client, joined: r })
          : reject(new Error(`join: ${r.code}`))), reject);
        return;
      }
      if (m.re !== undefined && pending.has(m.re)) {
        const f = pending.get(m.re);
        pending.delete(m.re);
        f(m);
        return;
      }
      onEvent(m);
    };
    ws.onerror = () => reject(new Error('socket error'));
  });
}

const deadline = Date.now() + durationMs;
const anchors = [];
const seen = new Set();
for (let r = 0; r < roomCount; r++) {
  const room = `churn-${process.pid}-${r}`;
  const anchor = await open(room, `anchor ${r}`, (m) => {
    if (m.type === 'message' && typeof m.data === 'string' && seen.has(m.data)) {
      seen.delete(m.data);
      stats.received += 1;
    }
  });
  anchors.push({ room, anchor });
}

async function loop(l) {
  let i = 0;
  const started = Date.now();
  while (Date.now() < deadline && stats.cycles + stats.failed < maxCycles) {
    if (cycleRate > 0) {  // this loop's share of the rate: cycle i starts no earlier than i / (rate / loops) s in
      const due = started + (i * loops * 1000) / cycleRate;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    }
    const { room, anchor } = anchors[(l + i++) % anchors.length];
    let c;
    try {
      c = await open(room, `churner ${l}`);
      if (!c.joined.peers.some((p) => p.id === anchor.joined.peer)) throw new Error('anchor missing from peers');
      const tag = `${l}-${i}-${Math.random()}`;
      seen.add(tag);
      stats.sent += 1;
      const ok = await c.request('message', { to: anchor.joined.peer, data: tag });
      if (ok.type !== 'ok') throw new Error(`message: ${ok.code}`);
      const left = await c.request('leave');
      if (left.type !== 'ok') throw new Error(`leave: ${left.code}`);
      stats.cycles += 1;
    } catch (e) {
      fail(String(e.message ?? e));
    } finally {
      c?.close();
    }
  }
}

await Promise.all(Array.from({ length: loops }, (_, l) => loop(l)));
await new Promise((r) => setTimeout(r, 1000));  // the last messages on their way to the anchors
stats.lost = stats.sent - stats.received;
for (const { anchor } of anchors) anchor.close();
console.log(JSON.stringify(stats));
process.exit(0);
