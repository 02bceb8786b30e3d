// The guide's WebRTCRoom component (shared/seed/webrtc-guide.md, "Socket.io + WebRTC", client side) in headless
// Chromium, as plain JS: the real socket.io-client browser build, `io(serverUrl)` with its default transports
// (polling, then the upgrade to WebSocket), join-room, and offer / answer / ice-candidate with {to} exactly as the
// component sends them. Three pages in one room make a full mesh; every page must show two remote videos playing
// with audio and video bytes flowing.
//
// SIO_TARGET=reference runs it against the guide's server on the `socket.io` npm package
// (bench/socketio-reference/server.mjs); otherwise against kaiwa (KAIWA_BIN, default build/kaiwa).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT, WAIT, launchBrowser, uniqueRoom } from './helpers.mjs';
import { TARGET, startTarget } from '../integration/sio.mjs';

const BUNDLE = join(ROOT, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');
const DEBUG = process.env.E2E_DEBUG === '1';

let server;
let browser;
const contexts = [];

before(async () => {
  server = await startTarget();
  browser = await launchBrowser();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await server?.stop();
});

/**
 * The component, without React: state lives in a Map instead of useState. (The guide's own `peers.get()` inside its
 * effect reads the Map captured when the effect ran, which is still empty when the answer comes; a plain Map is what
 * the component means.) iceServers is empty: the guide's public STUN server is not reachable from the test machine
 * and host candidates are all a loopback call needs.
 */
function webrtcRoom([serverUrl, roomId]) {
  window.log = [];
  const peers = new Map();
  window.peers = peers;
  let localStream = null;

  const socket = io(serverUrl);
  window.socket = socket;
  socket.on('connect', () => window.log.push(`connect ${socket.id}`));
  socket.on('connect_error', (e) => window.log.push(`connect_error ${e.message}`));
  socket.on('disconnect', (r) => window.log.push(`disconnect ${r}`));

  const createPeerConnection = (userId) => {
    const peer = new RTCPeerConnection({ iceServers: [] });
    localStream?.getTracks().forEach((track) => {
      peer.addTrack(track, localStream);
    });
    // The component renders a <video id="video-<userId>"> for every entry of `peers`.
    const video = document.createElement('video');
    video.id = `video-${userId}`;
    video.autoplay = true;
    video.playsInline = true;
    document.body.append(video);
    peer.ontrack = (event) => {
      const videoElement = document.getElementById(`video-${userId}`);
      if (videoElement) {
        videoElement.srcObject = event.streams[0];
      }
    };
    peer.onicecandidate = (event) => {
      if (event.candidate && socket) {
        socket.emit('ice-candidate', {
          to: userId,
          candidate: event.candidate,
        });
      }
    };
    return peer;
  };

  return navigator.mediaDevices.getUserMedia({ video: true, audio: true }).then((stream) => {
    localStream = stream;
    const local = document.createElement('video');
    local.id = 'local';
    local.muted = true;
    local.autoplay = true;
    local.srcObject = stream;
    document.body.append(local);

    socket.emit('join-room', roomId);

    socket.on('user-joined', async (userId) => {
      window.log.push(`user-joined ${userId}`);
      const peer = createPeerConnection(userId);
      peers.set(userId, peer);
      const offer = await peer.createOffer();
      await peer.setLocalDescription(offer);
      socket.emit('offer', { to: userId, offer });
    });

    socket.on('offer', async (data) => {
      window.log.push(`offer from ${data.from}`);
      const peer = createPeerConnection(data.from);
      peers.set(data.from, peer);
      await peer.setRemoteDescription(new RTCSessionDescription(data.offer));
      const answer = await peer.createAnswer();
      await peer.setLocalDescription(answer);
      socket.emit('answer', { to: data.from, answer });
    });

    socket.on('answer', async (data) => {
      window.log.push(`answer from ${data.from}`);
      const peer = peers.get(data.from);
      if (peer) {
        await peer.setRemoteDescription(new RTCSessionDescription(data.answer));
      }
    });

    socket.on('ice-candidate', async (data) => {
      const peer = peers.get(data.from);
      if (peer) {
        await peer.addIceCandidate(new RTCIceCandidate(data.candidate));
      }
    });

    socket.on('user-left', (userId) => {
      window.log.push(`user-left ${userId}`);
      const peer = peers.get(userId);
      if (peer) {
        peer.close();
        peers.delete(userId);
        document.getElementById(`video-${userId}`)?.remove();
      }
    });
  });
}

async function openRoomPage(name, room) {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (msg) => {
    if (DEBUG) process.stderr.write(`[${name}] ${msg.type()}: ${msg.text()}\n`);
  });
  // A document on the server's own origin (kaiwa: /healthz; the reference answers it too): Chromium's
  // local-network-access checks block a page from elsewhere from reaching 127.0.0.1.
  await page.goto(`${server.url}/healthz`);
  await page.evaluate(() => {
    document.body.textContent = '';
  });
  await page.addScriptTag({ path: BUNDLE });
  await page.evaluate(webrtcRoom, [server.url, room]);
  await page.waitForFunction(() => window.socket.connected, null, { timeout: WAIT, polling: 100 });
  const id = await page.evaluate(() => window.socket.id);
  return { page, name, id, errors };
}

async function remoteVideoPlays(p, peerId) {
  const sel = `[id="video-${peerId}"]`;
  await p.page.waitForFunction((s) => {
    const v = document.querySelector(s);
    return v && v.videoWidth > 0 && v.readyState >= 2 && !v.paused && v.currentTime > 0;
  }, sel, { timeout: WAIT, polling: 100 });
  const t0 = await p.page.$eval(sel, (v) => v.currentTime);
  await p.page.waitForFunction(([s, t]) => document.querySelector(s)?.currentTime > t + 0.2, [sel, t0],
    { timeout: WAIT, polling: 100 });
}

/** Inbound RTP bytes per kind on the connection to `peerId`. */
function inbound(p, peerId) {
  return p.page.evaluate(async (id) => {
    const pc = window.peers.get(id);
    const out = { audio: 0, video: 0 };
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') out[s.kind] += s.bytesReceived;
    });
    return out;
  }, peerId);
}

async function mediaFlows(p, peerId) {
  const before = await inbound(p, peerId);
  const deadline = Date.now() + WAIT;
  let now = before;
  while (Date.now() < deadline) {
    now = await inbound(p, peerId);
    if (now.audio > before.audio + 1000 && now.video > before.video + 5000) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`${p.name}: media from ${peerId} is not flowing: ${JSON.stringify(before)} -> ${JSON.stringify(now)}`);
}

test(`the guide's WebRTCRoom: three pages make a mesh with media flowing (${TARGET})`, { timeout: 180_000 }, async () => {
  const room = uniqueRoom('sio-mesh');
  const pages = [];
  for (const name of ['A', 'B', 'C']) {
    pages.push(await openRoomPage(name, room));
    // Each new page is offered a connection by every page already there.
    const newest = pages.at(-1);
    for (const p of pages.slice(0, -1)) {
      await p.page.waitForFunction((id) => window.peers.has(id), newest.id, { timeout: WAIT, polling: 100 })
        .catch(async (e) => {
          throw new Error(`${p.name} never saw ${newest.name}: ${e.message}\n${JSON.stringify(await p.page.evaluate(() => window.log))}`);
        });
    }
  }
  for (const p of pages) {
    const others = pages.filter((q) => q !== p);
    const keys = await p.page.evaluate(() => [...window.peers.keys()]);
    assert.deepEqual(keys.sort(), others.map((q) => q.id).sort(), `${p.name}'s peers`);
    for (const q of others) {
      await remoteVideoPlays(p, q.id).catch(async (e) => {
        const state = await p.page.evaluate((id) => {
          const pc = window.peers.get(id);
          return { ice: pc?.iceConnectionState, signaling: pc?.signalingState, log: window.log };
        }, q.id);
        throw new Error(`${p.name}: video of ${q.name} does not play (${e.message}): ${JSON.stringify(state)}`);
      });
      await mediaFlows(p, q.id);
    }
    assert.equal(await p.page.evaluate(() => document.querySelectorAll('video[id^="video-"]').length), 2);
    // io(url)'s default: started on polling, upgraded to WebSocket.
    await p.page.waitForFunction(() => window.socket.io.engine.transport.name === 'websocket', null,
      { timeout: WAIT, polling: 100 });
  }

  // One leaves: the others get user-left and drop its video; the remaining pair keeps its media.
  const [a, b, c] = pages;
  await c.page.evaluate(() => window.socket.disconnect());
  for (const p of [a, b]) {
    await p.page.waitForFunction((id) => !window.peers.has(id) && !document.getElementById(`video-${id}`), c.id,
      { timeout: WAIT, polling: 100 });
  }
  await mediaFlows(a, b.id);
  await mediaFlows(b, a.id);
  for (const p of pages) assert.deepEqual(p.errors, [], `${p.name}: page errors`);
});
