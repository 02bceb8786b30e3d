// sfu-forward: what forwarding costs kaiwa with real browsers — one headless Chromium publishing its fake camera
// and microphone with WHIP, two playing with WHEP — measured from /proc/<pid>/stat (CPU) and kaiwa's own metrics
// (packets) over a window after a warm-up; with --syscalls (root), perf's syscall tracepoints over the same window.
//   node bench/sfu-forward.mjs [--seconds 20] [--syscalls]
// Chromium's own CPU is not counted; it shares the machine, so the figures are per packet, not a capacity.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freeUdpTcpPort, launchBrowser, sleep, startServer, uniqueRoom } from '../tests/e2e/helpers.mjs';

const args = process.argv.slice(2);
const seconds = Number(args[args.indexOf('--seconds') + 1]) || 20;
const syscalls = args.includes('--syscalls');

const server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${await freeUdpTcpPort()}`] });
const browser = await launchBrowser();
const room = uniqueRoom('bench');
const page = async () => {
  const p = await (await browser.newContext({ permissions: ['camera', 'microphone'] })).newPage();
  await p.goto(`${server.url}/healthz`);
  return p;
};
const negotiate = (p, kind) => p.evaluate(async ({ room, kind }) => {
  const pc = new RTCPeerConnection();
  if (kind === 'whip') {
    const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    for (const t of s.getTracks()) pc.addTransceiver(t, { direction: 'sendonly' });
  } else {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  }
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(`/${kind}/${room}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  window.pc = pc;
}, { room, kind });

await negotiate(await page(), 'whip');
for (let i = 0; i < 2; i++) await negotiate(await page(), 'whep');
await sleep(5000);

const pid = server.proc.pid;
const ticks = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
};
const metric = async (name) => {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1] ?? 0);
};
const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString());
let perf;
let perfOut = '';
if (syscalls) {
  perf = spawn('perf', ['stat', '-x,', '-e', 'syscalls:sys_enter_*', '-p', String(pid), '--', 'sleep', String(seconds)]);
  perf.stderr.on('data', (d) => { perfOut += d; });
}
const t0 = ticks();
const in0 = await metric('kaiwa_sfu_rtp_in_total');
const out0 = await metric('kaiwa_sfu_forwarded_total');
await sleep(seconds * 1000);
await sleep(1100); // the workers publish their counts once a second
const cpu = (ticks() - t0) / hz;
const packetsIn = (await metric('kaiwa_sfu_rtp_in_total')) - in0;
const forwarded = (await metric('kaiwa_sfu_forwarded_total')) - out0;
console.log(`window ${seconds} s: kaiwa CPU ${cpu.toFixed(2)} s (${(100 * cpu / seconds).toFixed(1)} % of a core); ` +
  `RTP in ${packetsIn} (${(packetsIn / seconds).toFixed(0)}/s), forwarded ${forwarded}; ` +
  `CPU per forwarded packet ${(1e6 * cpu / forwarded).toFixed(1)} µs (per packet in and its copies: ` +
  `${(1e6 * cpu / packetsIn).toFixed(1)} µs)`);
if (perf) {
  await new Promise((r) => perf.on('exit', r));
  const counts = perfOut.split('\n').map((l) => l.split(',')).filter((f) => f.length > 3 && Number(f[0]) > 0)
    .map((f) => [f[2].replace('syscalls:sys_enter_', ''), Number(f[0])]).sort((a, b) => b[1] - a[1]);
  const total = counts.reduce((s, [, n]) => s + n, 0);
  console.log(`syscalls: ${total} (${(total / forwarded).toFixed(2)} per forwarded packet); ` +
    counts.slice(0, 8).map(([n, c]) => `${n} ${(c / forwarded).toFixed(2)}`).join(', '));
}
await browser.close();
await server.stop();
