// Captures the SDP test vectors in tests/unit/sdp/vectors/ from real browsers: Debian's headless Chromium (through
// playwright-core) and, where installed, Debian's firefox-esr (through tests/e2e/firefox.mjs). Run by hand, not in CI:
//
//   node tests/unit/sdp/capture.mjs [--no-firefox]
//
// Each scenario builds one RTCPeerConnection in a page served from 127.0.0.1 (a secure context, so getUserMedia
// exists) with the fake camera, microphone and screen, creates an offer, sets it as the local description and waits
// (bounded) for ICE gathering to finish, so the saved text has the candidates a WHIP client would send. The ICE
// restart offer and the browser's own answer come from a second connection in the same page. Files are written as
// the browser wrote them (CRLF). A scenario the browser cannot do is reported and skipped.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, 'vectors');
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection'];

/** Serves one empty page on 127.0.0.1 (loopback origins are secure contexts). */
export async function blankPageServer() {
  const srv = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>sdp</title>');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}/`, close: () => srv.close() };
}

// Runs in the page: returns { sdps: { name: text }, errors: { name: message } }. Gathering is bounded at 3 s.
async function pageScenarios() {
  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(resolve, 3000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
    });
  });
  const offerOf = async (pc, opts) => {
    await pc.setLocalDescription(await pc.createOffer(opts));
    await gathered(pc);
    return pc.localDescription.sdp;
  };
  const cam = () => navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  const sdps = {};
  const errors = {};
  const scenario = async (name, fn) => {
    try {
      await fn();
    } catch (err) {
      errors[name] = String(err);
    }
  };

  // Camera and microphone, as a web-app participant publishes them; then the browser's own answer (a second
  // connection) and an ICE restart offer from the first once the answer is applied.
  await scenario('audio_video', async () => {
    const pc = new RTCPeerConnection();
    const s = await cam();
    for (const t of s.getTracks()) pc.addTrack(t, s);
    sdps.audio_video = await offerOf(pc);
    const pc2 = new RTCPeerConnection();
    await pc2.setRemoteDescription(pc.localDescription);
    const s2 = await cam();
    // Send on the transceivers the offer made (an answer cannot add m-lines).
    for (const t of s2.getTracks()) {
      const tr = pc2.getTransceivers().find((x) => x.receiver.track.kind === t.kind);
      await tr.sender.replaceTrack(t);
      tr.sender.setStreams?.(s2);
      tr.direction = 'sendrecv';
    }
    await pc2.setLocalDescription(await pc2.createAnswer());
    await gathered(pc2);
    sdps.answer_audio_video = pc2.localDescription.sdp;
    await pc.setRemoteDescription(pc2.localDescription);
    sdps.ice_restart = await offerOf(pc, { iceRestart: true });
    pc.close();
    pc2.close();
  });
  // Simulcast: three RIDs through sendEncodings, plus audio.
  await scenario('simulcast', async () => {
    const pc = new RTCPeerConnection();
    const s = await cam();
    pc.addTransceiver(s.getAudioTracks()[0], { direction: 'sendonly', streams: [s] });
    pc.addTransceiver(s.getVideoTracks()[0], {
      direction: 'sendonly', streams: [s],
      sendEncodings: [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }],
    });
    sdps.simulcast = await offerOf(pc);
    pc.close();
  });
  // A camera and a screen share: two video m-lines from two streams.
  await scenario('screenshare', async () => {
    const pc = new RTCPeerConnection();
    const s = await cam();
    for (const t of s.getTracks()) pc.addTrack(t, s);
    const screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
    pc.addTrack(screen.getVideoTracks()[0], screen);
    sdps.screenshare = await offerOf(pc);
    pc.close();
  });
  // Data channel only.
  await scenario('datachannel', async () => {
    const pc = new RTCPeerConnection();
    pc.createDataChannel('chat');
    sdps.datachannel = await offerOf(pc);
    pc.close();
  });
  // A viewer (WHEP-like): receive-only transceivers.
  await scenario('recvonly', async () => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    sdps.recvonly = await offerOf(pc);
    pc.close();
  });
  return { sdps, errors };
}

async function captureChromium(url) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    return { prefix: `chromium${browser.version().split('.')[0]}`, ...(await page.evaluate(pageScenarios)) };
  } finally {
    await browser.close();
  }
}

async function captureFirefox(url) {
  const { launchFirefox } = await import('../../e2e/firefox.mjs');
  const ff = await launchFirefox();
  try {
    const page = await ff.newPage();
    await page.goto(url);
    return { prefix: 'firefox', ...(await page.evaluate(pageScenarios, null, 60_000)) };
  } finally {
    await ff.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(OUT, { recursive: true });
  const server = await blankPageServer();
  const runs = [captureChromium];
  if (!process.argv.includes('--no-firefox')) runs.push(captureFirefox);
  for (const run of runs) {
    try {
      const { prefix, sdps, errors } = await run(server.url);
      for (const [name, sdp] of Object.entries(sdps)) {
        const file = join(OUT, `${prefix}_${name}.sdp`);
        writeFileSync(file, sdp);
        console.log(`wrote ${file} (${sdp.length} bytes)`);
      }
      for (const [name, msg] of Object.entries(errors)) console.log(`${prefix} ${name}: not captured: ${msg}`);
    } catch (err) {
      console.error(`${run.name}: ${err.stack || err}`);
      process.exitCode = 1;
    }
  }
  server.close();
}
