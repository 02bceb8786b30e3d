// Bad input on the signaling socket gets error replies and harms nobody else's call.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WAIT, launchBrowser, openPeer, startServer, uniqueRoom, waitForMediaFlow, waitForRemoteVideo } from './helpers.mjs';

let server;
let browser;
let a;
let b;
let raw; // a page with a hand-driven WebSocket

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const room = uniqueRoom('robust');
  a = await openPeer(browser, server, room, 'Alpha');
  b = await openPeer(browser, server, room, 'Beta');
  await Promise.all([waitForRemoteVideo(a.page, b.id), waitForRemoteVideo(b.page, a.id)]);
  const ctx = await browser.newContext();
  raw = await ctx.newPage();
  await raw.goto(`${server.url}/`);
  // A raw client: every frame it receives goes to window.__rx; __waitFor(pred) resolves with the first match.
  await raw.evaluate(() => new Promise((resolve, reject) => {
    window.__rx = [];
    const ws = new WebSocket(`ws://${location.host}/ws`);
    window.__ws = ws;
    const waiters = [];
    window.__waitFor = (pred, ms = 10000) => new Promise((res, rej) => {
      const hit = window.__rx.find(pred);
      if (hit) return res(hit);
      const timer = setTimeout(() => rej(new Error(`no matching frame; got ${JSON.stringify(window.__rx).slice(0, 2000)}`)), ms);
      waiters.push({ pred, res: (m) => { clearTimeout(timer); res(m); } });
    });
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { m = { unparsable: String(ev.data) }; }
      window.__rx.push(m);
      for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.res(m); }
    };
    ws.onclose = (ev) => window.__rx.push({ closed: ev.code });
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('raw socket failed'));
  }));
});

after(async () => {
  await a?.close();
  await b?.close();
  await browser?.close();
  await server?.stop();
});

test('malformed and oversized frames get error replies; the ongoing call is unaffected', { timeout: 60_000 }, async () => {
  const hello = await raw.evaluate(() => window.__waitFor((m) => m.type === 'hello'));
  assert.equal(hello.v, 1);
  assert.equal(typeof hello.heartbeat, 'number');
  const max = hello.limits.maxMessageBytes;
  assert.equal(max, 65536);

  const codeOf = (frame, match) => raw.evaluate(async ([f, m]) => {
    const before = window.__rx.length;
    window.__ws.send(f);
    const reply = await window.__waitFor((x) => window.__rx.indexOf(x) >= before && x.type === 'error' &&
      (m === undefined || x.re === m));
    return reply;
  }, [frame, match]);

  const notJson = await codeOf('not json');
  assert.equal(notJson.code, 'bad-message');
  assert.equal(typeof notJson.message, 'string');

  const big = await codeOf(JSON.stringify({ v: 1, type: 'chat', text: 'x'.repeat(max + 10) }));
  assert.equal(big.code, 'too-large');

  const bigPlain = await codeOf('y'.repeat(100 * 1024));
  assert.equal(bigPlain.code, 'too-large');

  const unknownType = await codeOf(JSON.stringify({ v: 1, type: 'no-such-type', id: 7 }), 7);
  assert.equal(unknownType.code, 'bad-message');
  const wrongVersion = await codeOf(JSON.stringify({ v: 99, type: 'ping', id: 8 }), 8);
  assert.equal(wrongVersion.code, 'bad-message');
  const notObject = await codeOf('[1,2,3]');
  assert.equal(notObject.code, 'bad-message');
  const notJoined = await codeOf(JSON.stringify({ v: 1, type: 'chat', text: 'hi', id: 9 }), 9);
  assert.equal(notJoined.code, 'not-joined');

  // The connection is still usable after the errors.
  await raw.evaluate(async () => {
    window.__ws.send(JSON.stringify({ v: 1, type: 'ping' }));
    await window.__waitFor((m) => m.type === 'pong');
  });
  assert.equal(await raw.evaluate(() => window.__ws.readyState), 1);

  // The call between the two others carries on, and so does their signaling.
  await Promise.all([waitForMediaFlow(a.page, b.id), waitForMediaFlow(b.page, a.id)]);
  await a.page.evaluate(() => window.kaiwa.room.sendChat('still here'));
  await b.page.locator('[data-testid="chat-text"]', { hasText: 'still here' }).waitFor({ timeout: WAIT });
  assert.deepEqual(await b.page.evaluate(() => window.__events.filter((e) => e.type === 'peer-left' || e.type === 'error')), []);
});

test('a raw client can join, is seen by the app, and a binary frame is refused', { timeout: 30_000 }, async () => {
  const reply = await raw.evaluate(async (room) => {
    window.__ws.send(JSON.stringify({ v: 1, type: 'join', id: 20, room, name: 'Raw client' }));
    return window.__waitFor((m) => m.re === 20);
  }, await a.page.evaluate(() => window.kaiwa.room.roomName));
  assert.equal(reply.type, 'ok');
  assert.deepEqual(reply.peers.map((p) => p.id).sort(), [a.id, b.id].sort());
  await a.page.locator(`[data-testid="tile"][data-peer-id="${reply.peer}"]`).waitFor({ timeout: WAIT });

  const bin = await raw.evaluate(async () => {
    const before = window.__rx.length;
    window.__ws.send(new Uint8Array([1, 2, 3]));
    return window.__waitFor((x) => window.__rx.indexOf(x) >= before && x.type === 'error');
  });
  assert.equal(bin.code, 'bad-message');

  // `leave` makes it disappear for the others at once.
  await raw.evaluate(() => window.__ws.send(JSON.stringify({ v: 1, type: 'leave' })));
  await a.page.locator(`[data-testid="tile"][data-peer-id="${reply.peer}"]`).waitFor({ state: 'detached', timeout: WAIT });
  await waitForMediaFlow(b.page, a.id);
});
