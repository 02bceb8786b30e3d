// Codecs other than VP8 through the SFU: kaiwa forwards H.264 and VP9 untouched when the publisher and the viewer
// both negotiated them (issue 14). A Chromium page publishes with WHIP offering only one video codec (and RTX); a
// WHEP viewer must decode video in that codec — the codec of the viewer's inbound stream is checked, so an answer
// that fell back to VP8, or a forwarder that broke the codec's packetization, fails. A codec this Chromium cannot
// encode is skipped, and says so.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freeUdpTcpPort, launchBrowser, startServer, uniqueRoom, WAIT } from './helpers.mjs';
import { connect, openMediaPage, waitForPlayback } from './whip-client.mjs';

let server;
let browser;

before(async () => {
  const sfuPort = await freeUdpTcpPort();
  server = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${sfuPort}`] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const openPage = () => openMediaPage(browser, server);

/** The mime type of the page's video stream in `direction` ('inbound-rtp' or 'outbound-rtp'), or null. */
async function videoCodecOf(page, direction) {
  return page.evaluate(async (direction) => {
    const stats = await window.pc.getStats();
    let mime = null;
    stats.forEach((s) => {
      if (s.type === direction && s.kind === 'video' && s.codecId) mime = stats.get(s.codecId)?.mimeType ?? null;
    });
    return mime;
  }, direction);
}

for (const codec of ['H264', 'VP9']) {
  test(`${codec} from a WHIP publisher is forwarded to a WHEP viewer as ${codec}`, { timeout: 90_000 }, async (t) => {
    const publisher = await openPage();
    const canSend = await publisher.evaluate((codec) => RTCRtpSender.getCapabilities('video').codecs
      .some((c) => c.mimeType.toLowerCase() === `video/${codec}`.toLowerCase()), codec);
    if (!canSend) {
      t.skip(`this Chromium cannot send ${codec}`);
      return;
    }
    const room = uniqueRoom(codec.toLowerCase());
    const location = await connect(publisher, `/whip/${room}`, { videoCodec: codec });
    const viewer = await openPage();
    await connect(viewer, `/whep/${room}`);
    const state = await waitForPlayback(viewer, WAIT * 2, `${codec} viewer`).catch((e) => {
      throw new Error(`${e.message}\n${server.logs().slice(-2000)}`);
    });
    assert.ok(state.frameWidth > 0 && state.frameHeight > 0, JSON.stringify(state));
    assert.equal((await videoCodecOf(publisher, 'outbound-rtp'))?.toLowerCase(), `video/${codec}`.toLowerCase());
    assert.equal((await videoCodecOf(viewer, 'inbound-rtp'))?.toLowerCase(), `video/${codec}`.toLowerCase());
    assert.equal((await fetch(`${server.url}${location}`, { method: 'DELETE' })).status, 200);
  });
}
