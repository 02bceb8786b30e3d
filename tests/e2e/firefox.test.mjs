// The web app in Firefox: two Firefox peers, and a Firefox peer with a Chromium peer, call each other (remote
// video plays, audio and video bytes flow) and chat. Firefox is Debian's firefox-esr driven over WebDriver BiDi
// (firefox.mjs); it must be installed — a missing Firefox fails the test, it is not skipped.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchFirefox } from './firefox.mjs';
import {
  WAIT, events, freeUdpTcpPort, launchBrowser, openPeer, recordEvents, startServer, uniqueRoom,
  waitForMediaFlow, waitForRemoteVideo,
} from './helpers.mjs';

let server;
let firefox;

before(async () => {
  server = await startServer();
  firefox = await launchFirefox();
});

after(async () => {
  await firefox?.close();
  await server?.stop();
});

/** Clicks "Join now" on the pre-join screen once camera and microphone are settled (Firefox page wrapper). */
async function firefoxJoin(page) {
  await page.waitForFunction(() => !!document.querySelector('[data-testid="prejoin"][data-ready="true"]'), null,
    { timeout: WAIT });
  await page.evaluate(() => document.querySelector('[data-testid="prejoin-join"]').click());
}

/** Opens the web app at /room/<room>?name=<name> in a new Firefox window, joins from the pre-join screen and waits
 * until it has joined. */
async function openFirefoxPeer(room, name, { on = server, query = '' } = {}) {
  const page = await firefox.newPage({ name });
  try {
    await page.goto(`${on.url}/room/${encodeURIComponent(room)}?name=${encodeURIComponent(name)}${query ? `&${query}` : ''}`);
    await firefoxJoin(page);
    await page.waitForFunction(() => !!document.querySelector('[data-testid="room"][data-joined="true"]'), null,
      { timeout: WAIT });
    const id = await page.evaluate(() => window.kaiwa.room.id);
    await recordEvents(page);
    return {
      page, id, name, errors: page.errors, browser: 'firefox',
      /** Types into the chat box with real key events; sends with Enter or the Send button. */
      async chat(text, { enter = false } = {}) {
        await page.evaluate(() => document.querySelector('[data-testid="chat-input"]').focus());
        await page.type(text);
        if (enter) await page.type('Enter');
        else await page.evaluate(() => document.querySelector('[data-testid="chat-send"]').click());
      },
      close: () => page.close(),
    };
  } catch (err) {
    await page.close();
    throw err;
  }
}

async function openChromiumPeer(browser, room, name) {
  const peer = await openPeer(browser, server, room, name);
  peer.browser = 'chromium';
  peer.chat = async (text, { enter = false } = {}) => {
    await peer.page.getByTestId('chat-input').fill(text);
    if (enter) await peer.page.getByTestId('chat-input').press('Enter');
    else await peer.page.getByTestId('chat-send').click();
  };
  return peer;
}

/** What `peer` shows of `other`: tile name, connection, remote video size, and the SDK's view. */
function remoteView(peer, other) {
  return peer.page.evaluate((id) => {
    const t = document.querySelector(`[data-testid="tile"][data-peer-id="${id}"]`);
    const v = t?.querySelector('video');
    return {
      tiles: document.querySelectorAll('[data-testid="tile"]').length,
      name: t?.querySelector('[data-testid="tile-name"]')?.textContent,
      connection: t?.dataset.connection,
      sdkConnection: window.kaiwa.room.peers.get(id)?.connectionState,
      size: v ? [v.videoWidth, v.videoHeight] : null,
    };
  }, other.id);
}

/** What `peer` receives from `other`: codecs and the selected candidate pair, for the test's diagnostics. */
function connectionInfo(peer, other) {
  return peer.page.evaluate(async (id) => {
    const report = await window.kaiwa.room.peerConnection(id).getStats();
    const out = { codecs: {}, pair: null };
    let selected;
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.codecId) out.codecs[r.kind] = report.get(r.codecId)?.mimeType ?? '?';
      if (r.type === 'transport' && r.selectedCandidatePairId) selected = report.get(r.selectedCandidatePairId);
      if (r.type === 'candidate-pair' && r.selected) selected = r; // Firefox
    });
    if (selected) {
      const end = (c) => (c ? `${c.address}:${c.port}/${c.protocol} ${c.candidateType}` : '?');
      out.pair = `${end(report.get(selected.localCandidateId))} <-> ${end(report.get(selected.remoteCandidateId))}`;
    }
    return out;
  }, other.id);
}

/** The whole check for a pair: both play each other's video, media flows both ways, chat arrives both ways. */
async function checkCallAndChat(t, a, b) {
  assert.notEqual(a.id, b.id);
  await Promise.all([waitForRemoteVideo(a.page, b.id), waitForRemoteVideo(b.page, a.id)]);
  await Promise.all([waitForMediaFlow(a.page, b.id), waitForMediaFlow(b.page, a.id)]);
  for (const [p, q] of [[a, b], [b, a]]) {
    const view = await remoteView(p, q);
    assert.equal(view.tiles, 2, `${p.name} (${p.browser}) shows its own tile and ${q.name}'s`);
    assert.equal(view.name, q.name);
    assert.equal(view.connection, 'connected');
    assert.equal(view.sdkConnection, 'connected');
    assert.ok(view.size[0] > 0 && view.size[1] > 0, `${p.name} sees ${q.name}'s video at ${view.size}`);
    // The connection-quality readout fills in from getStats (its shape differs between browsers).
    await p.page.waitForFunction((id) => {
      const el = document.querySelector(`[data-testid="tile"][data-peer-id="${id}"] [data-testid="quality"]`);
      return el && el.dataset.rttMs !== undefined && el.dataset.rttMs !== '' && Number(el.dataset.inboundBitrate) > 0;
    }, q.id, { timeout: WAIT });
    const info = await connectionInfo(p, q);
    t.diagnostic(`${p.name} (${p.browser}) receives ${info.codecs.video} ${view.size.join('x')} + ${info.codecs.audio} ` +
      `over ${info.pair}`);
  }

  await a.chat(`hello from ${a.name}`);
  await b.chat(`こんにちは from ${b.name} <b>not bold</b>`, { enter: true });
  const logs = [];
  for (const p of [a, b]) {
    await p.page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-message"]').length >= 2, null,
      { timeout: WAIT });
    logs.push(await p.page.evaluate(() => [...document.querySelectorAll('[data-testid="chat-message"]')].map((el) => ({
      from: el.dataset.from, self: el.dataset.self, text: el.querySelector('[data-testid="chat-text"]').textContent,
    }))));
  }
  const texts = (log) => log.map((m) => `${m.from}: ${m.text}`);
  assert.deepEqual(texts(logs[0]), texts(logs[1]), 'both see the same chat in the same order');
  assert.deepEqual(texts(logs[0]).sort(),
    [`${a.id}: hello from ${a.name}`, `${b.id}: こんにちは from ${b.name} <b>not bold</b>`].sort());
  assert.deepEqual(logs[0].filter((m) => m.self === 'true').map((m) => m.from), [a.id], 'own message marked as such');
  assert.equal(await b.page.evaluate(() => document.querySelectorAll('[data-testid="chat-text"] b').length), 0,
    'chat is text, not markup');

  // The call is still carrying media after the chat.
  await Promise.all([waitForMediaFlow(a.page, b.id), waitForMediaFlow(b.page, a.id)]);
  assert.deepEqual(a.errors, [], `${a.name} (${a.browser}) page errors`);
  assert.deepEqual(b.errors, [], `${b.name} (${b.browser}) page errors`);
}

test('two Firefox peers see and hear each other and chat', { timeout: 90_000 }, async (t) => {
  const room = uniqueRoom('firefox');
  const a = await openFirefoxPeer(room, 'Fiona');
  let b;
  try {
    b = await openFirefoxPeer(room, 'Felix');
    await checkCallAndChat(t, a, b);
  } finally {
    await b?.close();
    await a.close();
  }
});

test('a Firefox peer and a Chromium peer see and hear each other and chat', { timeout: 90_000 }, async (t) => {
  const room = uniqueRoom('cross');
  const chromium = await launchBrowser();
  let a;
  let b;
  try {
    a = await openFirefoxPeer(room, 'Fiona');
    b = await openChromiumPeer(chromium, room, 'Chris');
    await checkCallAndChat(t, a, b);
    // And the other way round: the Chromium peer is there first and the Firefox peer joins (and offers).
    const room2 = uniqueRoom('cross');
    const c = await openChromiumPeer(chromium, room2, 'Chloe');
    let d;
    try {
      d = await openFirefoxPeer(room2, 'Finn');
      await Promise.all([waitForRemoteVideo(c.page, d.id), waitForRemoteVideo(d.page, c.id)]);
      await Promise.all([waitForMediaFlow(c.page, d.id), waitForMediaFlow(d.page, c.id)]);
      assert.deepEqual(d.errors, []);
      assert.deepEqual(c.errors, []);
    } finally {
      await d?.close();
      await c.close();
    }
  } finally {
    await b?.close();
    await a?.close();
    await chromium.close();
  }
});

// Issue 14's four people in an SFU room, with both browsers: two Firefox and two Chromium pages of the web app in a
// `?media=sfu` room each see the three others' video (Chromium's camera goes out in three simulcast layers, Firefox's
// as the SDK asks it), and every page's peer connections are with kaiwa only.
test('two Firefox and two Chromium pages in an sfu room see each other through kaiwa', { timeout: 180_000 }, async () => {
  const sfu = await startServer({ extraArgs: ['--no-turn', '--sfu-listen', `127.0.0.1:${await freeUdpTcpPort()}`] });
  const chromium = await launchBrowser();
  const room = uniqueRoom('sfu4');
  const peers = [];
  try {
    peers.push(await openFirefoxPeer(room, 'Fiona', { on: sfu, query: 'media=sfu' }));
    peers.push(await openPeer(chromium, sfu, room, 'Chris', { query: 'media=sfu' }));
    peers.push(await openFirefoxPeer(room, 'Felix', { on: sfu, query: 'media=sfu' }));
    peers.push(await openPeer(chromium, sfu, room, 'Chloe', { query: 'media=sfu' }));
    for (const viewer of peers) {
      for (const other of peers) {
        if (other !== viewer) await waitForRemoteVideo(viewer.page, other.id, 60_000);
      }
    }
    for (const p of peers) {
      const others = peers.filter((o) => o !== p).map((o) => o.id);
      const conns = await p.page.evaluate((ids) => {
        const c = window.kaiwa.room.sfuConnections();
        return {
          sfu: [c?.publish, c?.subscribe].filter(Boolean).length,
          mode: window.kaiwa.room.mediaMode,
          // (in an SFU room a peer's connection is kaiwa's subscribe connection)
          direct: ids.filter((id) => window.kaiwa.room.peerConnection(id) !== c?.subscribe).length,
        };
      }, others);
      assert.equal(conns.mode, 'sfu', p.name);
      assert.ok(conns.sfu >= 1 && conns.sfu <= 2, `${p.name}: ${conns.sfu} connections to kaiwa`);
      assert.equal(conns.direct, 0, `${p.name} has a connection to another page`);
      assert.deepEqual(p.errors.filter((e) => !e.includes('favicon')), [], `${p.name}'s errors`);
    }
  } finally {
    for (const p of peers.reverse()) await p.close().catch(() => undefined);
    await chromium.close();
    await sfu.stop();
  }
});

// The SDK sends `leave` from its `pagehide` handler, but when a Firefox page navigates away (and sometimes when its
// window closes) Firefox stops that handler ("Script terminated by timeout at: … onPageHide"; firefox-esr 153:
// 8 of 8 navigations lost the `leave`). The browser still closes the WebSocket with 1001 (going away), and kaiwa
// takes that as leaving (docs/protocol.md): the others see `left` at once, not `disconnected` after the grace.
test('a Firefox page that navigates away is seen to leave at once', {
  timeout: 60_000,
}, async () => {
  const quick = await startServer({ resumeGrace: '2s' }); // a lost `leave` shows up after 2 s, not the default
  const room = uniqueRoom('ffleave');
  const pages = [];
  try {
    for (const name of ['Fay', 'Flo']) {
      const page = await firefox.newPage({ name });
      pages.push(page);
      await page.goto(`${quick.url}/room/${room}?name=${name}`);
      await firefoxJoin(page);
      await page.waitForFunction(() => !!document.querySelector('[data-testid="room"][data-joined="true"]'), null,
        { timeout: WAIT });
      await recordEvents(page);
    }
    const [a, b] = pages;
    const bId = await b.evaluate(() => window.kaiwa.room.id);
    await a.waitForFunction((id) => window.kaiwa.room.peers.get(id)?.connectionState === 'connected', bId,
      { timeout: WAIT });
    await b.goto('about:blank');
    await a.waitForFunction(() => window.__events.some((e) => e.type === 'peer-left'), null, { timeout: WAIT });
    assert.deepEqual(await events(a, 'peer-left'), [{ type: 'peer-left', peer: bId, reason: 'left' }]);
  } finally {
    for (const p of pages) await p.close();
    await quick.stop();
  }
});
