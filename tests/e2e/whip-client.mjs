// WHIP and WHEP from a browser page, for the SFU's end-to-end tests: the page runs a plain RTCPeerConnection and
// fetch(), as any WHIP/WHEP client would. Works with a Playwright page and with firefox.mjs's page (same evaluate).

/**
 * A Chromium page of its own context with camera and microphone allowed, on kaiwa's origin (so that the page's
 * fetch() reaches /whip, /whep and /api/ice-servers). Close it with `page.context().close()`.
 */
export async function openMediaPage(browser, server) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  await page.goto(`${server.url}/healthz`);
  return page;
}

/**
 * Opens a peer connection on the page (kept as window.pc) and connects it through `path` (/whip/<room> publishes
 * the page's fake camera and microphone, /whep/<room> receives and plays into a <video>). Options: `relay` makes the
 * connection relay-only with the ICE servers from /api/ice-servers; `gather` waits for ICE gathering before the POST
 * (so the offer carries the page's candidates); `capture` makes a viewer capture its microphone first (Firefox gathers
 * only the default route's address, never loopback, for a page that captures nothing); `videoCodec` ('H264', 'VP9', …)
 * makes a publisher offer only that video codec (and RTX). Returns the session's Location.
 */
export async function connect(page, path, { relay = false, gather = relay, capture = false, videoCodec = null } = {}) {
  return page.evaluate(async ({ path, relay, gather, capture, videoCodec }) => {
    if (capture) window.captured = await navigator.mediaDevices.getUserMedia({ audio: true });
    const config = {};
    if (relay) {
      config.iceServers = (await (await fetch('/api/ice-servers')).json()).iceServers;
      config.iceTransportPolicy = 'relay';
    }
    const pc = new RTCPeerConnection(config);
    window.pc = pc;
    if (path.startsWith('/whip/')) {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      for (const track of stream.getTracks()) {
        const transceiver = pc.addTransceiver(track, { direction: 'sendonly' });
        if (track.kind === 'video' && videoCodec) {
          const wanted = [`video/${videoCodec}`.toLowerCase(), 'video/rtx'];
          transceiver.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs
            .filter((c) => wanted.includes(c.mimeType.toLowerCase())));
        }
      }
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      // Played in an element, as a viewer would: Chromium renders received audio (totalSamplesReceived) only then.
      const video = Object.assign(document.createElement('video'), { muted: true, autoplay: true, playsInline: true });
      document.body.append(video);
      const stream = new MediaStream();
      pc.ontrack = (e) => {
        stream.addTrack(e.track);
        video.srcObject = stream;
      };
    }
    await pc.setLocalDescription(await pc.createOffer());
    if (gather) {
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
        setTimeout(resolve, 5000);
      });
    }
    const res = await fetch(path, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(`${path} ${res.status}: ${await res.text()}`);
    window.answerSdp = await res.text();  // for tests that check what kaiwa answered
    await pc.setRemoteDescription({ type: 'answer', sdp: window.answerSdp });
    return res.headers.get('Location');
  }, { path, relay, gather, capture, videoCodec });
}

/** The page's connection state, its selected candidate pair's types, and what it has received and decoded. */
export async function mediaState(page) {
  return page.evaluate(async () => {
    const stats = await window.pc.getStats();
    const out = {
      connection: window.pc.connectionState, local: null, remote: null, framesDecoded: 0, frameWidth: 0,
      frameHeight: 0, totalSamplesReceived: 0, audioPackets: 0,
      servers: (window.pc.getConfiguration().iceServers ?? []).flatMap((s) => s.urls),
    };
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    // Firefox has no transport stats: its selected pair is the nominated, succeeded one.
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    out.local = stats.get(pair?.localCandidateId)?.candidateType ?? null;
    out.remote = stats.get(pair?.remoteCandidateId)?.candidateType ?? null;
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.framesDecoded = s.framesDecoded ?? 0;
        out.frameWidth = s.frameWidth ?? 0;
        out.frameHeight = s.frameHeight ?? 0;
      } else if (s.kind === 'audio') {
        out.totalSamplesReceived = s.totalSamplesReceived ?? 0;
        out.audioPackets = s.packetsReceived ?? 0;
      }
    });
    return out;
  });
}

/**
 * Waits until the viewer decodes video and receives audio, then until both have grown (10 more frames): media
 * flows, not just one keyframe. Returns the last state; throws with `what` and the state if it never does.
 */
export async function waitForPlayback(page, timeout, what = 'viewer') {
  const deadline = Date.now() + timeout;
  let first = null;
  let last;
  while (Date.now() < deadline) {
    last = await mediaState(page);
    if (last.framesDecoded > 0 && last.audioPackets > 0) {
      if (!first) first = last;
      else if (last.framesDecoded > first.framesDecoded + 10 && last.audioPackets > first.audioPackets) return last;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not play: ${JSON.stringify(last)}`);
}

/**
 * An ICE restart of the page's WHIP/WHEP session as RFC 9725 section 4.4.1 has it: `pc.restartIce()`, a new offer
 * whose first m-section's new credentials and candidates are PATCHed to `location` as a trickle-ice-sdpfrag with
 * `If-Match: *`, and kaiwa's new credentials from the 200 applied to the remote description. Returns the page's new
 * ufrag, kaiwa's, and the new ETag; throws unless the PATCH answered 200.
 */
export async function restartIce(page, location) {
  return page.evaluate(async (location) => {
    const pc = window.pc;
    pc.restartIce();
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 5000);
    });
    const sdp = pc.localDescription.sdp;
    const first = sdp.split('\r\nm=')[1].split('\r\n');
    const value = (lines, name) => lines.find((l) => l.startsWith(`a=${name}:`))?.slice(name.length + 3);
    const sessionLines = sdp.split('\r\nm=')[0].split('\r\n');
    const ufrag = value(first, 'ice-ufrag') ?? value(sessionLines, 'ice-ufrag');
    const pwd = value(first, 'ice-pwd') ?? value(sessionLines, 'ice-pwd');
    const fragment = [`a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, `m=${first[0]}`, `a=mid:${value(first, 'mid')}`,
      ...first.filter((l) => l.startsWith('a=candidate:')), 'a=end-of-candidates', ''].join('\r\n');
    const res = await fetch(location, {
      method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*' }, body: fragment,
    });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`PATCH ${location} ${res.status}: ${body}`);
    const lines = body.split('\r\n');
    const remoteUfrag = value(lines, 'ice-ufrag');
    const remotePwd = value(lines, 'ice-pwd');
    const answer = pc.currentRemoteDescription.sdp.replace(/a=ice-ufrag:\S+/g, `a=ice-ufrag:${remoteUfrag}`)
      .replace(/a=ice-pwd:\S+/g, `a=ice-pwd:${remotePwd}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    return { ufrag, remoteUfrag, etag: res.headers.get('ETag') };
  }, location);
}

/** The ufrag of the local candidate of the page's selected candidate pair (which ICE generation carries media). */
export async function selectedLocalUfrag(page) {
  return page.evaluate(async () => {
    const stats = await window.pc.getStats();
    let ufrag = null;
    stats.forEach((s) => {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
      const pair = stats.get(s.selectedCandidatePairId);
      if (pair?.state === 'succeeded') ufrag = stats.get(pair.localCandidateId)?.usernameFragment ?? null;
    });
    return ufrag;
  });
}
