// Checks that real browsers accept what src/sdp writes: for each scenario of capture.mjs a page makes a fresh offer,
// build/sdp_tool answers it as the SFU would, and the page's setRemoteDescription() must succeed; then the SFU's own
// offer to a subscriber (sdp_tool offer) must be accepted and answered. Run by hand (not in CI):
//
//   node tests/unit/sdp/accept.mjs [--no-firefox] [--save]
//
// SDP_TOOL names the tool (default build/sdp_tool). --save writes Chromium's answer to the server's offer to
// vectors/chromium<version>_answer_to_kaiwa_offer.sdp. Prints one line per check and "N passed, N failed".
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, blankPageServer } from './capture.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_TOOL = process.env.SDP_TOOL || resolve(HERE, '..', '..', '..', 'build', 'sdp_tool');
let TOOL = DEFAULT_TOOL;

function tool(args, input) {
  const r = spawnSync(TOOL, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sdp_tool ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout;
}

// In the page: makes the connection for a scenario, keeps it in window.pcs, returns its offer (after gathering).
async function makeOffer(name) {
  window.pcs ??= {};
  const gathered = (pc) => new Promise((res) => {
    if (pc.iceGatheringState === 'complete') return res();
    const t = setTimeout(res, 3000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); res(); }
    });
  });
  const cam = () => navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  let pc = window.pcs[name];
  if (name === 'ice_restart') {
    pc = window.pcs.audio_video;
    await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
    await gathered(pc);
    return pc.localDescription.sdp;
  }
  pc = new RTCPeerConnection();
  window.pcs[name] = pc;
  if (name === 'audio_video' || name === 'screenshare' || name === 'refuse_video') {
    const s = await cam();
    for (const t of s.getTracks()) pc.addTrack(t, s);
    if (name === 'screenshare') {
      const screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
      pc.addTrack(screen.getVideoTracks()[0], screen);
    }
  } else if (name === 'simulcast') {
    const s = await cam();
    pc.addTransceiver(s.getAudioTracks()[0], { direction: 'sendonly', streams: [s] });
    pc.addTransceiver(s.getVideoTracks()[0], { direction: 'sendonly', streams: [s],
      sendEncodings: [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }] });
  } else if (name === 'datachannel') {
    pc.createDataChannel('chat');
  } else if (name === 'recvonly') {
    pc.streamIds = [];
    pc.ontrack = (e) => pc.streamIds.push(`${e.track.kind}:${e.streams.map((s) => s.id).join('+')}`);
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  }
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  return pc.localDescription.sdp;
}

// In the page: applies the SFU's answer; returns 'ok' or the browser's error.
async function applyAnswer([name, sdp]) {
  const pc = window.pcs[name === 'ice_restart' ? 'audio_video' : name];
  try {
    await pc.setRemoteDescription({ type: 'answer', sdp });
    const t = pc.getTransceivers().map((x) => x.currentDirection).join(',');
    // Simulcast kept: the video sender still has its three encodings after the answer.
    const enc = pc.getSenders().filter((x) => x.track?.kind === 'video').map((x) => x.getParameters().encodings.length);
    const streams = pc.streamIds ? ` tracks ${pc.streamIds.join(',')}` : '';
    return `ok ${pc.signalingState} ${t} video encodings ${enc.join(',') || '-'}${streams}`;
  } catch (err) {
    return `error: ${err}`;
  }
}

// In the page: takes the SFU's offer and answers it; returns the answer or the error.
async function answerServerOffer(sdp) {
  const pc = new RTCPeerConnection();
  try {
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    return { ok: true, sdp: pc.localDescription.sdp, tracks: pc.getReceivers().map((r) => r.track.kind).join(',') };
  } catch (err) {
    return { ok: false, error: String(err) };
  } finally {
    pc.close();
  }
}

const SCENARIOS = [
  ['audio_video', []], ['ice_restart', []], ['simulcast', []], ['screenshare', []], ['datachannel', []],
  ['recvonly', ['--send', '--no-receive']], ['refuse_video', ['--no-video']],
];

async function check(label, page, skip, log) {
  let passed = 0;
  let failed = 0;
  const report = (ok, what) => {
    log(`${label} ${what}`);
    if (ok) passed++; else failed++;
  };
  for (const [name, args] of SCENARIOS) {
    if (skip.includes(name)) continue;
    try {
      const offer = await page.evaluate(makeOffer, name);
      const answer = tool(['answer', ...args], offer);
      const result = await page.evaluate(applyAnswer, [name, answer]);
      report(result.startsWith('ok'), `${name}: ${result}`);
    } catch (err) {
      report(false, `${name}: ${err.message}`);
    }
  }
  const offer = tool(['offer'], '');
  const res = await page.evaluate(answerServerOffer, offer);
  if (res.ok) tool(['write'], res.sdp);  // the browser's answer parses
  report(res.ok, `server offer: ${res.ok ? `answered, receivers ${res.tracks}` : res.error}`);
  return { passed, failed, answer: res.sdp };
}

/**
 * Runs the checks in Chromium and, unless `firefox` is false, Firefox. Returns { passed, failed }; `log` gets one
 * line per check. `save` writes Chromium's answer to the server's offer into vectors/.
 */
export async function acceptChecks({ firefox = true, save = false, toolPath = DEFAULT_TOOL, log = console.log } = {}) {
  TOOL = toolPath;
  const server = await blankPageServer();
  let passed = 0;
  let failed = 0;
  try {
    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
      headless: true, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      await page.goto(server.url);
      const label = `chromium${browser.version().split('.')[0]}`;
      const r = await check(label, page, [], log);
      passed += r.passed;
      failed += r.failed;
      if (save && r.answer) {
        const file = join(HERE, 'vectors', `${label}_answer_to_kaiwa_offer.sdp`);
        writeFileSync(file, r.answer);
        log(`wrote ${file}`);
      }
    } finally {
      await browser.close();
    }
    if (firefox) {
      const { launchFirefox } = await import('../../e2e/firefox.mjs');
      const ff = await launchFirefox();
      try {
        const page = await ff.newPage();
        await page.goto(server.url);
        // Headless Firefox refuses getDisplayMedia without a user gesture.
        const r = await check('firefox', { evaluate: (fn, arg) => page.evaluate(fn, arg, 30_000) }, ['screenshare'], log);
        passed += r.passed;
        failed += r.failed;
      } finally {
        await ff.close();
      }
    }
  } finally {
    server.close();
  }
  return { passed, failed };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { passed, failed } = await acceptChecks({ firefox: !process.argv.includes('--no-firefox'),
    save: process.argv.includes('--save') });
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}
