// Idle WebSocket memory, over TLS too (kaiwa-loadgen speaks plain TCP only): opens N WebSockets to URL (each waits
// for the server's first message), holds them 2 s, prints the RSS growth of process PID per connection as JSON.
//
//   kaiwa serve --listen 127.0.0.1:8443 --tls-self-signed --no-turn &
//   NODE_TLS_REJECT_UNAUTHORIZED=0 node --experimental-websocket bench/wss-idle.mjs wss://127.0.0.1:8443/ws 2000 $!
//
// Loopback only; the self-signed certificate is trusted through NODE_TLS_REJECT_UNAUTHORIZED for this process.
import { readFileSync } from 'node:fs';
const [url, nArg, pid] = process.argv.slice(2);
const n = Number(nArg);
if (!/^wss?:\/\/(127\.|\[::1\]|localhost)/.test(url ?? '') || !(n > 0) || !pid) {
  console.error('usage: node bench/wss-idle.mjs ws[s]://127.0.0.1:PORT/ws N SERVER_PID');
  process.exit(2);
}
const rss = () => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const r0 = rss();
const socks = [];
for (let i = 0; i < n; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => new Promise((res, rej) => {
    const ws = new WebSocket(url);
    ws.onmessage = () => { res(); };
    ws.onerror = (e) => rej(new Error('ws error'));
    socks.push(ws);
  })));
}
await new Promise((r) => setTimeout(r, 2000));
const r1 = rss();
console.log(JSON.stringify({ n, rss0_kb: r0, rss1_kb: r1, per_conn_kb: (r1 - r0) / n }));
for (const s of socks) s.close();
await new Promise((r) => setTimeout(r, 500));
process.exit(0);
