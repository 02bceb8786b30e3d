// What one client, or the machine, running short may cost the server: descriptors running out (the listener must
// not spin), the limits per client address (connections, handshakes; src/common/address_limits.hpp), and a
// WebSocket message begun and never finished (--ws-message-timeout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { uniqueRoom } from '../e2e/helpers.mjs';
import { Client, WAIT, clientFrame, sleep } from './client.mjs';
import {
  SANITIZED_SKIP, cpuSeconds, fetchFrom, get, metricFrom, openConnection, spawnKaiwa, upgrade, upgradeRequest,
} from './process.mjs';

// The self-signed certificate of the TLS servers below is trusted blindly by this process, on loopback only.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

/** Writes `data` on `c` and waits until it has left (over TLS: one write, one record). */
const write = (c, data) => new Promise((r) => c.sock.write(data, r));

/** Polls `check` (async) until it returns true, at most `ms`; returns its last answer. */
async function eventually(check, ms = WAIT, step = 50) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(step)) {
    if (await check()) return true;
  }
  return check();
}

test('out of descriptors: the listener pauses instead of spinning, logs once, and serves again once some are free', { skip: SANITIZED_SKIP }, async () => {
  const k = await spawnKaiwa(['--no-turn', '--workers', '2'], { openFiles: 64 });
  const held = [];
  try {
    assert.match(k.log, /open files: soft limit 64, hard limit 64/);
    // Keep-alive connections, each answered once, until one is not: from then on accept fails (EMFILE).
    let refused = null;
    for (let i = 0; i < 100 && !refused; i++) {
      const c = await openConnection(k.port);
      if (await get(c, '/healthz', 2000) === 200) held.push(c);
      else refused = c;
    }
    assert.ok(refused, `accepts did not fail with ${held.length} connections held`);
    assert.ok(held.length >= 20, `only ${held.length} connections before descriptors ran out`);
    // A few more clients knock meanwhile: each is taken and closed (plain HTTP: told 503), or waits in the backlog.
    const knocking = [];
    for (let i = 0; i < 5; i++) knocking.push(await openConnection(k.port));
    await sleep(200);
    const cpu0 = cpuSeconds(k.proc.pid);
    const lines0 = k.lines();
    const t0 = performance.now();
    await sleep(3000);
    const busy = (cpuSeconds(k.proc.pid) - cpu0) / ((performance.now() - t0) / 1000);
    // A bound on spinning (a retry loop takes both cores: ~2.0), not a timing.
    assert.ok(busy < 0.10, `kaiwa used ${(busy * 100).toFixed(0)}% of a core while out of descriptors`);
    assert.ok(k.lines() - lines0 <= 2, `the log grew by ${k.lines() - lines0} lines:\n${k.log.slice(-600)}`);
    const shed = knocking.filter((c) => c.closed || c.text().startsWith('HTTP/1.1 503'));
    assert.ok(shed.length + (refused.closed ? 1 : 0) >= 1, 'the waiting clients are told (closed), not left hanging');
    assert.match(k.log, /accept failed: .*(Too many open files|open files)/i);
    for (const c of [...held, ...knocking, refused]) await c.close();
    held.length = 0;
    assert.ok(await eventually(async () => (await fetchFrom(k.port, '/healthz')).status === 200),
      '/healthz answers once descriptors are free');
    assert.equal(k.exited, null);
  } finally {
    for (const c of held) c.sock.destroy();
    await k.stop();
  }
});

test('per address: the sixth concurrent connection is refused (429), another address still gets in', async () => {
  const k = await spawnKaiwa(['--no-turn', '--workers', '2', '--address-connections', '5']);
  const open = [];
  try {
    for (let i = 0; i < 5; i++) {
      const c = await openConnection(k.port);
      open.push(c);
      assert.equal(await get(c), 200, `connection ${i + 1} served`);
    }
    const sixth = await openConnection(k.port);
    await sixth.until(() => sixth.closed);
    assert.ok(sixth.closed, 'the sixth connection is closed at once');
    assert.ok(sixth.text() === '' || sixth.text().startsWith('HTTP/1.1 429 '), `got ${sixth.text()}`);
    const other = await openConnection(k.port, { localAddress: '127.0.0.2' });
    assert.equal(await get(other), 200, '127.0.0.2 is not limited by 127.0.0.1');
    assert.equal(await metricFrom(k.port, 'kaiwa_address_refused_total{limit="connections"}',
      { localAddress: '127.0.0.2' }), 1);
    await other.close();
    // One of the five goes: the address may open one again (once the server has seen it go).
    await open.shift().close();
    assert.ok(await eventually(async () => (await fetchFrom(k.port, '/healthz')).status === 200));
  } finally {
    for (const c of open) c.sock.destroy();
    await k.stop();
  }
});

test('per address: the fourth quick WebSocket upgrade gets 429 before the upgrade; other addresses go on', async () => {
  const k = await spawnKaiwa(['--no-turn', '--address-handshake-rate', '1', '--address-handshake-burst', '3']);
  const open = [];
  try {
    for (let i = 0; i < 3; i++) {
      const c = await openConnection(k.port);
      open.push(c);
      assert.equal(await upgrade(c), 101, `upgrade ${i + 1}`);
    }
    const fourth = await openConnection(k.port);
    open.push(fourth);
    assert.equal(await upgrade(fourth), 429);
    assert.ok(await fourth.until(() => fourth.closed), 'closed after the 429');
    const other = await openConnection(k.port, { localAddress: '127.0.0.2' });
    open.push(other);
    assert.equal(await upgrade(other), 101);
    // Plain HTTP is not a handshake: still served.
    assert.equal((await fetchFrom(k.port, '/healthz')).status, 200);
    assert.equal(await metricFrom(k.port, 'kaiwa_address_refused_total{limit="handshake_rate"}'), 1);
  } finally {
    for (const c of open) c.sock.destroy();
    await k.stop();
  }
});

test('per address: --address-exempt lifts the limits for that address only', async () => {
  const k = await spawnKaiwa(['--no-turn', '--address-connections', '2', '--address-handshake-rate', '1',
    '--address-handshake-burst', '1', '--address-exempt', '127.0.0.1']);
  const open = [];
  try {
    for (let i = 0; i < 6; i++) {
      const c = await openConnection(k.port);
      open.push(c);
      assert.equal(await upgrade(c), 101, `exempt upgrade ${i + 1}`);
    }
    // Another address is limited: two connections (an upgrade and a keep-alive request), not a third.
    const a = await openConnection(k.port, { localAddress: '127.0.0.3' });
    const b = await openConnection(k.port, { localAddress: '127.0.0.3' });
    open.push(a, b);
    assert.equal(await upgrade(a), 101);
    assert.equal(await get(b), 200);
    const third = await openConnection(k.port, { localAddress: '127.0.0.3' });
    open.push(third);
    assert.ok(await third.until(() => third.closed), 'the third connection of a limited address is refused');
    // ... and one upgrade at once (burst 1), not a second.
    const c = await openConnection(k.port, { localAddress: '127.0.0.4' });
    const d = await openConnection(k.port, { localAddress: '127.0.0.4' });
    open.push(c, d);
    assert.equal(await upgrade(c), 101);
    assert.equal(await upgrade(d), 429, 'the handshake burst of a limited address');
  } finally {
    for (const c of open) c.sock.destroy();
    await k.stop();
  }
});

// Waits until the server holds no connection but the one asking (from 127.0.0.2): those closed so far are gone.
async function settled(k, tls) {
  const quiet = await eventually(async () =>
    await metricFrom(k.port, 'kaiwa_connections', { tls, localAddress: '127.0.0.2' }) === 1);
  assert.ok(quiet, 'the connections closed are gone from the server');
}

// Every kind of connection gives its place back exactly once: after many of each, opened and closed by either side,
// the address may hold its limit's worth again, and not one more.
async function assertPlacesGiven(k, limit, tls) {
  const hold = [];
  try {
    const all = await eventually(async () => {
      for (const c of hold.splice(0)) await c.close();
      for (let i = 0; i < limit; i++) {
        const c = await openConnection(k.port, { tls });
        hold.push(c);
        if (await get(c, '/healthz', 2000) !== 200) return false;
      }
      return true;
    });
    assert.ok(all, `the address can hold ${limit} connections again`);
    const extra = await openConnection(k.port, { tls });
    hold.push(extra);
    assert.ok(await extra.until(() => extra.closed), `and not ${limit + 1}`);
  } finally {
    for (const c of hold) c.sock.destroy();
  }
}

/** A native client on a raw socket (TCP or TLS) at `path`; `join` then `leave` by closing. */
async function rawNative(k, path, { tls = false, join = null, closeFirst = 'client' } = {}) {
  const c = await openConnection(k.port, { tls });
  assert.equal(await upgrade(c, path), 101);
  assert.ok(await c.until(() => c.text().includes('"type":"hello"')), 'hello');
  if (join) {
    c.sock.write(clientFrame(1, Buffer.from(JSON.stringify({ v: 1, type: 'join', id: 1, room: join, name: 'N' }))));
    assert.ok(await c.until(() => c.text().includes('"re":1')), 'join reply');
  }
  if (closeFirst === 'client') {
    c.sock.write(clientFrame(8, Buffer.from([0x03, 0xe8])));
    await c.until(() => c.closed);
  }
  await c.close();
}

test('per address: no kind of connection keeps or loses its place (HTTP, upgrades, handovers, moves, refusals)', async () => {
  const limit = 3;
  const k = await spawnKaiwa(['--no-turn', '--workers', '4', '--address-connections', String(limit),
    '--ws-message-timeout', '500ms']);
  try {
    for (let round = 0; round < limit + 2; round++) {
      const room = uniqueRoom('places');
      // HTTP: closed by the server (Connection: close), and by the client.
      const h = await openConnection(k.port);
      h.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await h.until(() => h.closed);
      await h.close();
      const h2 = await openConnection(k.port);
      await get(h2);
      await h2.close();
      // WebSockets: plain; named room (handed over to its worker); joined later (moved); no such endpoint (404);
      // closed by the server (a message never finished).
      await rawNative(k, '/ws');
      await rawNative(k, `/ws?room=${room}`, { join: room });
      await rawNative(k, '/ws', { join: room });
      const nf = await openConnection(k.port);
      assert.equal(await upgrade(nf, '/nowhere'), 404);
      await nf.close();
      await settled(k, false);
      const slow = await openConnection(k.port);
      assert.equal(await upgrade(slow, '/ws'), 101);
      slow.sock.write(Buffer.from([0x81, 0xfe, 0x01, 0x00, 1, 2, 3, 4, 5]));  // 256 bytes announced, 1 sent
      assert.ok(await slow.until(() => slow.closed), 'closed by the server');
      // A client that goes before saying anything.
      const quiet = await openConnection(k.port);
      await quiet.close();
      // A direct WebSocket of a native client.
      const ws = await Client.open({ url: k.url });
      await ws.join(room, 'W');
      ws.close();
      await ws.waitClosed();
      await settled(k, false);
    }
    const moves = await metricFrom(k.port, 'kaiwa_ws_moves_total', { localAddress: '127.0.0.2' });
    const handovers = await metricFrom(k.port, 'kaiwa_ws_handovers_total', { localAddress: '127.0.0.2' });
    assert.ok(moves >= 1 && handovers >= 1, `moves ${moves}, handovers ${handovers}`);
    await assertPlacesGiven(k, limit, false);
  } finally {
    await k.stop();
  }
});

test('per address: TLS connections of every kind give their place back too', async () => {
  const limit = 3;
  const k = await spawnKaiwa(['--no-turn', '--workers', '4', '--tls-self-signed', '--address-connections',
    String(limit), '--ws-message-timeout', '500ms']);
  try {
    for (let round = 0; round < limit + 2; round++) {
      const room = uniqueRoom('tls-places');
      const h = await openConnection(k.port, { tls: true });
      assert.equal(await get(h), 200);
      await h.close();
      await rawNative(k, '/ws', { tls: true });
      await rawNative(k, `/ws?room=${room}`, { tls: true, join: room });
      await settled(k, true);
      await rawNative(k, '/ws', { tls: true, join: room });
      // The request and a frame as two TLS records in one TCP write: the second is still in Asio's stream at the
      // upgrade, and is read out of it when the WebSocket takes the TLS state over.
      const eager = await openConnection(k.port, { tls: true });
      eager.hold();
      await write(eager, upgradeRequest('/ws'));
      await write(eager, clientFrame(1, Buffer.from(JSON.stringify({ v: 1, type: 'join', id: 1, room, name: 'E' }))));
      await eager.release();
      assert.ok(await eager.until(() => eager.text().includes('"re":1')), 'eager join reply');
      await eager.close();
      await settled(k, true);
      // A TCP connection that never starts TLS, and one whose TLS handshake fails.
      const bare = await openConnection(k.port);
      await bare.close();
      const junk = await openConnection(k.port);
      junk.sock.write(randomBytes(64));
      await junk.until(() => junk.closed);
      await junk.close();
      const ws = await Client.open({ url: k.url });
      await ws.join(room, 'W');
      ws.close();
      await ws.waitClosed();
      await settled(k, true);
    }
    await assertPlacesGiven(k, limit, true);
  } finally {
    await k.stop();
  }
});

/** The close frame the server sent on `c` (its code), or 0 if none. */
function closeCode(c) {
  const i = c.got.lastIndexOf(Buffer.from([0x88]));
  return i >= 0 && c.got.length >= i + 4 ? c.got.readUInt16BE(i + 2) : 0;
}

/** A frame header announcing a masked text frame of `length` bytes (64-bit length form), with its mask. */
function bigFrameHeader(length) {
  const h = Buffer.alloc(14);
  h[0] = 0x81;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  randomBytes(4).copy(h, 10);
  return h;
}

for (const tls of [false, true]) {
  const kind = tls ? 'WSS' : 'WebSocket';
  test(`${kind}: a frame of 100 KB trickled a byte at a time is closed after --ws-message-timeout (1008)`, async () => {
    const k = await spawnKaiwa(['--no-turn', ...(tls ? ['--tls-self-signed'] : []), '--ws-message-timeout', '1s']);
    const open = [];
    try {
      const idle = await Client.open({ url: k.url });
      await idle.join(uniqueRoom('slow'), 'Idle');
      const c = await openConnection(k.port, { tls });
      open.push(c);
      assert.equal(await upgrade(c), 101);
      c.sock.write(bigFrameHeader(100_000));
      // A byte every 100 ms: far more often than any ping or idle timeout, and never a whole message.
      const trickle = setInterval(() => { if (!c.closed) c.sock.write(Buffer.from([0x20])); }, 100);
      try {
        assert.ok(await c.until(() => c.closed), 'the trickling connection is closed');
      } finally {
        clearInterval(trickle);
      }
      assert.equal(closeCode(c), 1008);
      // Fragments that never end, with pings between them, are a message begun too.
      const f = await openConnection(k.port, { tls });
      open.push(f);
      assert.equal(await upgrade(f), 101);
      f.sock.write(clientFrame(1, Buffer.from('{"v":1,'), { fin: false }));
      const pings = setInterval(() => { if (!f.closed) f.sock.write(clientFrame(9, Buffer.from('p'))); }, 100);
      try {
        assert.ok(await f.until(() => f.closed), 'the never-ending fragmented message is closed');
      } finally {
        clearInterval(pings);
      }
      assert.equal(closeCode(f), 1008);
      // A connection idle between whole messages is not affected: still there after twice the timeout.
      assert.equal(idle.closed, null);
      assert.equal((await idle.request({ type: 'chat', text: 'still here' })).type, 'ok');
      idle.close();
    } finally {
      for (const c of open) c.sock.destroy();
      await k.stop();
    }
  });
}

test('WSS with TLS data in flight at the upgrade: whole messages are served, an unfinished one is closed', async () => {
  const k = await spawnKaiwa(['--no-turn', '--tls-self-signed', '--ws-message-timeout', '1s']);
  const open = [];
  try {
    const idle = await openConnection(k.port, { tls: true });
    const c = await openConnection(k.port, { tls: true });
    open.push(idle, c);
    // The request and the start of a frame as two TLS records in one TCP write: the second is still inside Asio's
    // TLS stream when the request is read, and is taken out of it at the upgrade. An idle one beside it, a whole
    // message.
    for (const x of [idle, c]) {
      x.hold();
      await write(x, upgradeRequest('/ws'));
      await write(x, x === c ? bigFrameHeader(100_000)
        : clientFrame(1, Buffer.from(JSON.stringify({ v: 1, type: 'join', id: 1, room: uniqueRoom('b'), name: 'I' }))));
      await x.release();
      assert.ok(await x.until(() => x.text().includes('"type":"hello"')), 'hello');
    }
    const trickle = setInterval(() => { if (!c.closed) c.sock.write(Buffer.from([0x20])); }, 100);
    try {
      assert.ok(await c.until(() => c.closed), 'the trickling connection is closed');
    } finally {
      clearInterval(trickle);
    }
    assert.ok(idle.text().includes('"re":1'), 'the idle one was served');
    assert.equal(idle.closed, false, 'and stays');
  } finally {
    for (const c of open) c.sock.destroy();
    await k.stop();
  }
});
