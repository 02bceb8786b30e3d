// The web app over HTTPS with the certificate kaiwa makes at start-up (--tls-self-signed), as a phone on the LAN
// opens it: the page, the SDK's WebSocket (WSS, on kaiwa's bare-descriptor layer) and a call.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, openPeer, startServer, uniqueRoom, waitForRemoteVideo } from './helpers.mjs';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';  // this file's own fetches trust the self-signed certificate
let server;
let browser;

before(async () => {
  server = await startServer({ tls: true });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('over HTTPS: two peers join through WSS, see each other and chat', { timeout: 60_000 }, async () => {
  assert.ok(server.url.startsWith('https://'));
  const room = uniqueRoom('tls');
  const a = await openPeer(browser, server, room, 'Alice');
  const b = await openPeer(browser, server, room, 'Bob');
  try {
    assert.equal(await a.page.evaluate(() => window.isSecureContext), true);
    await Promise.all([waitForRemoteVideo(a.page, b.id), waitForRemoteVideo(b.page, a.id)]);
    await a.page.getByTestId('chat-input').fill('secure hello');
    await a.page.getByTestId('chat-send').click();
    await b.page.getByText('secure hello').waitFor();
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^kaiwa_websocket_connections 2$/m);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  } finally {
    await a.close();
    await b.close();
  }
});
