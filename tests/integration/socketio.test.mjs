// The Socket.IO front door (Engine.IO v4, Socket.IO v5 at /socket.io/) with the real `socket.io-client` over
// loopback: the guide's events (../shared/docs/protocols.md, "The guide's events") on every transport — polling then
// upgrade, WebSocket only, polling only — acks, binary attachments, reconnect after a restart, then what only kaiwa
// does: acks with results and errors, bad input, rate limits and metrics.
//
// SIO_TARGET=reference runs the same file against the guide's server on the `socket.io` npm package
// (bench/socketio-reference/server.mjs); the kaiwa-only tests are then skipped. Otherwise KAIWA_BIN (default
// build/kaiwa) is the server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { join } from 'node:path';
import WebSocketClient from 'ws';
import { ROOT, uniqueRoom } from '../e2e/helpers.mjs';
import { WAIT, metric, sleep } from './client.mjs';
import {
  RawEio, RawPolling, REFERENCE, SioPeer, TRANSPORTS, bytesOf, httpFrom, openTcpEio, pollingFrom, startTarget,
} from './sio.mjs';

// A failed test may leave sockets behind whose reconnect loop would keep the process alive: close them at the end.
after(() => {
  SioPeer.closeAll();
});

// How long to wait before concluding that something was NOT delivered (only for negative checks).
const QUIET = 300;
const T = { timeout: 60_000 };

function kaiwaOnly(t) {
  if (REFERENCE) {
    t.skip('kaiwa only');
    return true;
  }
  return false;
}

const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' };
const ANSWER = { type: 'answer', sdp: 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' };
const CANDIDATE = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };

/** Connects `n` sockets with the given transport options. */
function connectAll(server, opts, n) {
  return Promise.all(Array.from({ length: n }, (_, i) => SioPeer.connect(server, opts, `connect #${i}`)));
}

/**
 * Joins `peers` to `room` one after the other and waits until each join is known to have been handled. The guide's
 * server sends nothing back to the joiner, so the first two joins may be handled in either order (they come on two
 * connections): then exactly one of the two sees the other's user-joined. Every later joiner is seen by all earlier.
 */
async function joinInOrder(room, peers) {
  assert.ok(peers.length >= 2, 'a join is only observable by another member');
  const [first, second] = peers;
  first.emit('join-room', room);
  second.emit('join-room', room);
  await first.until(() => first.received('user-joined', (id) => id === second.id).length ||
    second.received('user-joined', (id) => id === first.id).length, WAIT, `user-joined between ${first.id} and ${second.id}`);
  for (let i = 2; i < peers.length; i++) {
    peers[i].emit('join-room', room);
    for (const earlier of peers.slice(0, i)) {
      await earlier.waitFor('user-joined', (id) => id === peers[i].id, `user-joined ${peers[i].id}`);
    }
  }
}

function closeAll(peers) {
  for (const p of peers) p?.close();
}

// ------------------------------------------------------------------------------------------------ per transport
for (const [transportName, opts] of Object.entries(TRANSPORTS)) {
  describe(`Socket.IO over ${transportName}`, () => {
    let server;
    before(async () => {
      server = await startTarget();
    });
    after(async () => {
      SioPeer.closeAll();
      await server?.stop();
    });

    test('connect: a socket id, and the transport asked for', T, async () => {
      const [a, b] = await connectAll(server, opts, 2);
      try {
        assert.equal(typeof a.id, 'string');
        assert.ok(a.id.length > 0);
        assert.notEqual(a.id, b.id);
        if (opts.transports?.[0] === 'websocket') assert.equal(a.transportName(), 'websocket');
        else if (opts.transports?.[0] === 'polling') {
          await sleep(QUIET);
          assert.equal(a.transportName(), 'polling', 'polling only never upgrades');
        } else {
          // Default: starts on polling, upgrades to WebSocket (2probe/3probe/5).
          await a.until(() => a.transportName() === 'websocket', WAIT, 'upgrade to websocket');
          await b.until(() => b.transportName() === 'websocket', WAIT, 'upgrade to websocket');
        }
      } finally {
        closeAll([a, b]);
      }
    });

    test('join-room: user-joined reaches the others in the room, not the sender nor other rooms', T, async () => {
      const room = uniqueRoom('sio');
      const [a, b, c, outsider] = await connectAll(server, opts, 4);
      try {
        outsider.emit('join-room', uniqueRoom('other'));
        await joinInOrder(room, [a, b, c]);
        b.emit('offer', { to: c.id, offer: OFFER }); // a barrier: C's own join was handled before this
        await c.waitFor('offer');
        await sleep(QUIET);
        const seen = (p) => p.received('user-joined').map((e) => {
          assert.equal(e.args.length, 1, 'user-joined carries one argument, the socket id');
          return e.args[0];
        });
        // A and B joined first (in an order the test cannot fix): exactly one of them was told about the other.
        assert.equal(seen(a).filter((id) => id === b.id).length + seen(b).filter((id) => id === a.id).length, 1);
        // Both were told about C; C, the last, was told about nobody (nor about itself).
        assert.deepEqual(seen(a).filter((id) => id === c.id), [c.id]);
        assert.deepEqual(seen(b).filter((id) => id === c.id), [c.id]);
        assert.deepEqual(seen(c), []);
        for (const p of [a, b]) assert.ok(!seen(p).includes(p.id), 'nobody is told about itself');
        assert.equal(seen(a).length + seen(b).length, 3);
        assert.deepEqual(outsider.received('user-joined'), []);
      } finally {
        closeAll([a, b, c, outsider]);
      }
    });

    test('offer, answer, ice-candidate: {to,…} arrives as {from,…} only at the target', T, async () => {
      const room = uniqueRoom('sio');
      const [a, b, c] = await connectAll(server, opts, 3);
      try {
        await joinInOrder(room, [a, b, c]);
        // A spoofed `from` is replaced by the sender's id.
        a.emit('offer', { to: b.id, offer: OFFER, from: 'spoofed' });
        const [offer] = await b.waitFor('offer');
        assert.equal(offer.from, a.id);
        assert.deepEqual(offer.offer, OFFER);

        b.emit('answer', { to: a.id, answer: ANSWER });
        const [answer] = await a.waitFor('answer');
        assert.equal(answer.from, b.id);
        assert.deepEqual(answer.answer, ANSWER);

        a.emit('ice-candidate', { to: b.id, candidate: CANDIDATE });
        b.emit('ice-candidate', { to: a.id, candidate: { ...CANDIDATE, sdpMLineIndex: 1 } });
        const [candB] = await b.waitFor('ice-candidate');
        const [candA] = await a.waitFor('ice-candidate');
        assert.deepEqual({ from: candB.from, candidate: candB.candidate }, { from: a.id, candidate: CANDIDATE });
        assert.equal(candA.from, b.id);
        assert.equal(candA.candidate.sdpMLineIndex, 1);

        // Unicode and an SDP-sized payload go through unchanged.
        const big = { type: 'offer', sdp: `v=0\r\n${'a=x-こんにちは\r\n'.repeat(500)}` };
        c.emit('offer', { to: a.id, offer: big });
        const [bigOffer] = await a.waitFor('offer', (d) => d.from === c.id);
        assert.deepEqual(bigOffer.offer, big);

        await sleep(QUIET);
        // Only the target got each message.
        assert.equal(c.received('offer').length + c.received('answer').length + c.received('ice-candidate').length, 0);
        assert.equal(a.received('offer').length, 1);
        assert.equal(b.received('offer').length, 1);
        assert.equal(b.received('answer').length, 0);
      } finally {
        closeAll([a, b, c]);
      }
    });

    test('toggle-audio and toggle-video reach the others in roomId with from', T, async () => {
      const room = uniqueRoom('sio');
      const [a, b, c] = await connectAll(server, opts, 3);
      try {
        await joinInOrder(room, [a, b, c]);
        a.emit('toggle-audio', { roomId: room, isMuted: true, from: 'spoofed' });
        b.emit('toggle-video', { roomId: room, isVideoOff: true });
        for (const p of [b, c]) {
          const [d] = await p.waitFor('toggle-audio');
          assert.equal(d.from, a.id);
          assert.equal(d.isMuted, true);
          if ('roomId' in d) assert.equal(d.roomId, room);
        }
        for (const p of [a, c]) {
          const [d] = await p.waitFor('toggle-video');
          assert.equal(d.from, b.id);
          assert.equal(d.isVideoOff, true);
        }
        a.emit('toggle-audio', { roomId: room, isMuted: false });
        assert.equal((await c.waitFor('toggle-audio', (d) => d.isMuted === false))[0].from, a.id);
        await sleep(QUIET);
        assert.equal(a.received('toggle-audio').length, 0, 'not echoed to the sender');
        assert.equal(b.received('toggle-video').length, 0, 'not echoed to the sender');
      } finally {
        closeAll([a, b, c]);
      }
    });

    test('leave-room: the others get user-left; the leaver gets nothing more from the room', T, async () => {
      const room = uniqueRoom('sio');
      const [a, b, c] = await connectAll(server, opts, 3);
      try {
        await joinInOrder(room, [a, b, c]);
        c.emit('leave-room', room);
        for (const p of [a, b]) assert.deepEqual(await p.waitFor('user-left'), [c.id]);
        a.emit('toggle-audio', { roomId: room, isMuted: true });
        await b.waitFor('toggle-audio');
        await sleep(QUIET);
        assert.equal(c.received('toggle-audio').length, 0);
        assert.equal(c.received('user-left').length, 0);
        assert.ok(c.socket.connected, 'leaving a room keeps the connection');
      } finally {
        closeAll([a, b, c]);
      }
    });

    test('disconnect: the others in the room get user-left', T, async () => {
      const room = uniqueRoom('sio');
      const [a, b, c] = await connectAll(server, opts, 3);
      try {
        await joinInOrder(room, [a, b, c]);
        const bId = b.id;
        const cId = c.id;
        b.close(); // a clean disconnect (41, then the transport closes)
        assert.deepEqual(await a.waitFor('user-left'), [bId]);
        assert.deepEqual(await c.waitFor('user-left'), [bId]);
        c.socket.io.engine.close(); // the transport closes without a namespace DISCONNECT
        assert.deepEqual(await a.waitFor('user-left', (id) => id === cId), [cId]);
      } finally {
        closeAll([a, b, c]);
      }
    });

    test('call-user → call-made and answer-call → call-answered between two sockets in no room', T, async () => {
      const [x, y] = await connectAll(server, opts, 2);
      try {
        const offerSignal = { type: 'offer', sdp: OFFER.sdp };
        x.emit('call-user', { signal: offerSignal });
        const [made] = await y.waitFor('call-made');
        assert.deepEqual(made.signal, offerSignal);
        if ('from' in made) assert.equal(made.from, x.id);
        y.emit('answer-call', { signal: { type: 'answer', sdp: ANSWER.sdp } });
        const [answered] = await x.waitFor('call-answered');
        assert.deepEqual(answered.signal, { type: 'answer', sdp: ANSWER.sdp });
        if ('from' in answered) assert.equal(answered.from, y.id);
        await sleep(QUIET);
        assert.equal(x.received('call-made').length, 0, 'not echoed to the caller');
        assert.equal(y.received('call-answered').length, 0, 'not echoed to the callee');
      } finally {
        closeAll([x, y]);
      }
    });

    test('acks: an event emitted with a callback is still delivered; kaiwa acks it', T, async () => {
      const room = uniqueRoom('sio');
      const [a, b, c] = await connectAll(server, opts, 3);
      try {
        await joinInOrder(room, [a, c]);
        const joined = b.emitWithAck('join-room', [room], REFERENCE ? 1000 : WAIT);
        assert.deepEqual(await a.waitFor('user-joined', (id) => id === b.id), [b.id]);
        assert.deepEqual(await c.waitFor('user-joined', (id) => id === b.id), [b.id]);
        const offered = b.emitWithAck('offer', [{ to: a.id, offer: OFFER }], REFERENCE ? 1000 : WAIT);
        for (const p of [joined, offered]) p.catch(() => undefined); // checked below
        assert.equal((await a.waitFor('offer'))[0].from, b.id);
        if (REFERENCE) {
          // The guide's handlers take no callback: socket.io sends no ACK and the client's timeout fires.
          await assert.rejects(joined, /timed out/);
          await assert.rejects(offered, /timed out/);
        } else {
          const [joinAck] = await joined;
          assert.equal(joinAck.ok, true, JSON.stringify(joinAck));
          const [offerAck] = await offered;
          assert.equal(offerAck.ok, true, JSON.stringify(offerAck));
        }
        // The connection is fine afterwards.
        a.emit('answer', { to: b.id, answer: ANSWER });
        assert.equal((await b.waitFor('answer'))[0].from, a.id);
      } finally {
        closeAll([a, b, c]);
      }
    });

    test('binary: a Buffer inside signal is relayed intact (attachments)', T, async () => {
      const room = uniqueRoom('sio');
      const [a, b, c] = await connectAll(server, opts, 3);
      try {
        await joinInOrder(room, [a, b, c]);
        const small = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x1e, 0x34, 0x32]); // NULs, 0xff, the record separator, "42"
        const large = randomBytes(30_000);
        a.emit('signal', { signal: small, meta: { n: 1, large } });
        for (const p of [b, c]) {
          const [d] = await p.waitFor('signal');
          assert.ok(bytesOf(d.signal).equals(small), 'first attachment intact');
          assert.ok(bytesOf(d.meta.large).equals(large), 'second attachment intact');
          assert.equal(d.meta.n, 1);
          if ('from' in d) assert.equal(d.from, a.id);
        }
        // Binary the other way, then text again: the parser is back in its normal state.
        b.emit('signal', { signal: Buffer.from('reply') });
        assert.equal(bytesOf((await a.waitFor('signal'))[0].signal).toString(), 'reply');
        a.emit('offer', { to: b.id, offer: OFFER });
        assert.deepEqual((await b.waitFor('offer'))[0].offer, OFFER);
        await sleep(QUIET);
        assert.equal(a.received('signal').length, 1, 'not echoed to the sender');
      } finally {
        closeAll([a, b, c]);
      }
    });

    test('kaiwa: an unknown event with an ack gets {error:"unknown-event"}', T, async (t) => {
      if (kaiwaOnly(t)) return;
      const [a] = await connectAll(server, opts, 1);
      try {
        const [ack] = await a.emitWithAck('no-such-event', [{ x: 1 }]);
        assert.equal(typeof ack, 'object', JSON.stringify(ack));
        assert.equal(ack.error, 'unknown-event', JSON.stringify(ack));
        assert.equal(typeof ack.message, 'string');
        assert.ok(ack.message.length > 0);
        // The connection stays.
        const [again] = await a.emitWithAck('another-unknown', []);
        assert.equal(again.error, 'unknown-event');
        assert.ok(a.socket.connected);
      } finally {
        closeAll([a]);
      }
    });

    test('kaiwa: join-room with an ack gets {ok:true, peers:[ids already in the room]}', T, async (t) => {
      if (kaiwaOnly(t)) return;
      const room = uniqueRoom('sio');
      const [a, b, c] = await connectAll(server, opts, 3);
      try {
        const [ackA] = await a.emitWithAck('join-room', [room]);
        assert.deepEqual(ackA, { ...ackA, ok: true, peers: [] });
        const [ackB] = await b.emitWithAck('join-room', [room]);
        assert.deepEqual(ackB.peers, [a.id]);
        assert.equal(ackB.ok, true);
        const [ackC] = await c.emitWithAck('join-room', [room]);
        assert.equal(ackC.ok, true);
        assert.deepEqual([...ackC.peers].sort(), [a.id, b.id].sort());
        await a.waitFor('user-joined', (id) => id === c.id);
      } finally {
        closeAll([a, b, c]);
      }
    });

    test('kaiwa: a directed event goes through the room it shares with its target; none shared: unknown-peer', T,
      async (t) => {
        if (kaiwaOnly(t)) return;
        const [r1, r2] = [uniqueRoom('sio'), uniqueRoom('sio')];
        const [a, b, c] = await connectAll(server, opts, 3);
        try {
          await a.emitWithAck('join-room', [r1]);
          await a.emitWithAck('join-room', [r2]);
          await b.emitWithAck('join-room', [r1]);
          await c.emitWithAck('join-room', [r2]);
          // c shares only the second of a's rooms with it.
          const [ok] = await a.emitWithAck('offer', [{ to: c.id, offer: OFFER }]);
          assert.deepEqual(ok, { ok: true });
          const [offer] = await c.waitFor('offer');
          assert.equal(offer.from, a.id);
          // b and c share no room: an error in the ack, or a kaiwa:error naming the event when there is none.
          const [err] = await b.emitWithAck('offer', [{ to: c.id, offer: OFFER }]);
          assert.equal(err.error, 'unknown-peer', JSON.stringify(err));
          b.emit('answer', { to: 'nobody', answer: ANSWER });
          const [event] = await b.waitFor('kaiwa:error');
          assert.equal(event.error, 'unknown-peer', JSON.stringify(event));
          assert.equal(event.event, 'answer');
          // Nor is a socket its own peer.
          const [self] = await a.emitWithAck('ice-candidate', [{ to: a.id, candidate: CANDIDATE }]);
          assert.equal(self.error, 'unknown-peer', JSON.stringify(self));
          // join-room again: acked with the room as it is now.
          const cId = c.id;
          c.close();
          await a.waitFor('user-left', (id) => id === cId);
          const [again] = await a.emitWithAck('join-room', [r1]);
          assert.deepEqual(again, { ok: true, peers: [b.id] });
          const [empty] = await a.emitWithAck('join-room', [r2]);
          assert.deepEqual(empty, { ok: true, peers: [] });
          await sleep(QUIET);
          assert.equal(a.received('offer').length + a.received('answer').length + b.received('offer').length, 0);
          assert.equal(c.received('offer').length, 1);
        } finally {
          closeAll([a, b, c]);
        }
      });

    test('kaiwa: /metrics counts messages in and out', T, async (t) => {
      if (kaiwaOnly(t)) return;
      const room = uniqueRoom('sio');
      const [a, b] = await connectAll(server, opts, 2);
      try {
        await joinInOrder(room, [a, b]);
        const inBefore = await metric(server, 'kaiwa_messages_in_total');
        const outBefore = await metric(server, 'kaiwa_messages_out_total');
        assert.ok(Number.isFinite(inBefore) && Number.isFinite(outBefore));
        for (let i = 0; i < 3; i++) a.emit('offer', { to: b.id, offer: { ...OFFER, i } });
        await b.until(() => b.received('offer').length === 3, WAIT, '3 offers');
        assert.ok((await metric(server, 'kaiwa_messages_in_total')) >= inBefore + 3);
        assert.ok((await metric(server, 'kaiwa_messages_out_total')) >= outBefore + 3);
      } finally {
        closeAll([a, b]);
      }
    });

    test('kaiwa: a flood far beyond the rate limit is refused; another pair keeps relaying', T, async (t) => {
      if (kaiwaOnly(t)) return;
      const room = uniqueRoom('sio');
      const [flooder, victim, c, d] = await connectAll(server, opts, 4);
      try {
        await joinInOrder(room, [flooder, victim]);
        await joinInOrder(uniqueRoom('calm'), [c, d]);
        // Default limit: 50 messages/s with a burst of 100 (src/signal/limits.hpp); send 1000 at once.
        const acks = [];
        const errors = [];
        for (let i = 0; i < 1000; i++) {
          flooder.socket.timeout(WAIT).emit('toggle-audio', { roomId: room, isMuted: i % 2 === 0 }, (err, ack) => {
            if (err) errors.push(err.message);
            else acks.push(ack);
          });
        }
        await flooder.until(() => acks.some((a) => a?.error === 'rate-limited') || flooder.disconnects.length > 0,
          WAIT, 'a rate-limited ack or a disconnect');
        // The other pair is not affected.
        c.emit('offer', { to: d.id, offer: OFFER });
        assert.equal((await d.waitFor('offer'))[0].from, c.id);
        d.emit('answer', { to: c.id, answer: ANSWER });
        assert.equal((await c.waitFor('answer'))[0].from, d.id);
        const relayed = victim.received('toggle-audio').length;
        assert.ok(relayed <= 200, `only about the burst passes, got ${relayed}`);
        assert.ok((await metric(server, 'kaiwa_dropped_total{reason="rate_limited"}')) > 0);
      } finally {
        closeAll([flooder, victim, c, d]);
      }
    });
  });
}

// ------------------------------------------------------------------------------------------------ mixed transports
describe('Socket.IO with mixed transports', () => {
  let server;
  before(async () => {
    server = await startTarget();
  });
  after(async () => {
    SioPeer.closeAll();
    await server?.stop();
  });

  test('a room named like the default room is a room like any other', T, async () => {
    // In kaiwa a socket that joined no room sits in a quiet implicit room named by --socketio-default-room
    // ("default"); a room of that name joined with join-room must still announce its members.
    const [idle, a, b] = await connectAll(server, {}, 3);
    try {
      await joinInOrder('default', [a, b]);
      b.emit('offer', { to: a.id, offer: OFFER });
      await a.waitFor('offer');
      await sleep(QUIET);
      assert.deepEqual(idle.received('user-joined'), [], 'a socket in no room hears no joins');
    } finally {
      closeAll([idle, a, b]);
    }
  });

  test('polling-only, websocket-only and upgraded sockets relay to each other', T, async () => {
    const room = uniqueRoom('mixed');
    const peers = [];
    try {
      for (const opts of Object.values(TRANSPORTS)) peers.push(await SioPeer.connect(server, opts));
      await joinInOrder(room, peers);
      for (const from of peers) {
        for (const to of peers) {
          if (from === to) continue;
          from.emit('ice-candidate', { to: to.id, candidate: { ...CANDIDATE, sdpMid: from.id } });
          const [c] = await to.waitFor('ice-candidate', (d) => d.from === from.id);
          assert.equal(c.candidate.sdpMid, from.id);
        }
      }
      peers[0].emit('signal', { signal: Buffer.from([9, 8, 7]) });
      for (const p of peers.slice(1)) assert.deepEqual([...bytesOf((await p.waitFor('signal'))[0].signal)], [9, 8, 7]);
    } finally {
      closeAll(peers);
    }
  });
});

// ------------------------------------------------------------------------------------------------ restart
for (const [transportName, opts] of Object.entries(TRANSPORTS)) {
  test(`reconnect over ${transportName}: the client comes back by itself after a server restart`, T, async () => {
    let server = await startTarget();
    const port = server.port;
    const room = uniqueRoom('restart');
    const [a, b] = await connectAll(server, opts, 2);
    try {
      await joinInOrder(room, [a, b]);
      const [oldA, oldB] = [a.id, b.id];
      await server.stop();
      await a.until(() => !a.socket.connected, WAIT, 'disconnect of A');
      await b.until(() => !b.socket.connected, WAIT, 'disconnect of B');
      // A server going away is not a namespace DISCONNECT: the client must try again.
      for (const p of [a, b]) assert.notEqual(p.disconnects.at(-1), 'io server disconnect');
      server = await startTarget({ port });
      await a.until(() => a.socket.connected, 20_000, 'A reconnected');
      await b.until(() => b.socket.connected, 20_000, 'B reconnected');
      assert.notEqual(a.id, oldA, 'a new socket id');
      assert.notEqual(b.id, oldB, 'a new socket id');
      // Rooms are gone with the old server: join again and relay.
      await joinInOrder(room, [a, b]);
      b.emit('offer', { to: a.id, offer: OFFER });
      const [offer] = await a.waitFor('offer', (d) => d.from === b.id);
      assert.deepEqual(offer.offer, OFFER);
    } finally {
      closeAll([a, b]);
      await server.stop();
    }
  });
}

// ------------------------------------------------------------------------------------------------ wire level
describe('Engine.IO wire level', () => {
  let server;
  before(async () => {
    server = await startTarget();
  });
  after(async () => {
    SioPeer.closeAll();
    await server?.stop();
  });

  const base = () => `${server.url}/socket.io/?EIO=4`;

  test('handshake over polling and over a direct WebSocket; HTTP errors as {code,message}', T, async () => {
    const res = await fetch(`${base()}&transport=polling`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.equal(text[0], '0', text);
    const open = JSON.parse(text.slice(1));
    assert.equal(typeof open.sid, 'string');
    assert.deepEqual(open.upgrades, ['websocket']);
    for (const k of ['pingInterval', 'pingTimeout', 'maxPayload']) assert.ok(open[k] > 0, `${k} in ${text}`);

    const raw = await RawEio.open(server);
    try {
      assert.deepEqual(raw.handshake.upgrades, []);
      assert.equal(typeof raw.handshake.sid, 'string');
      const sid = await raw.connectNamespace();
      assert.equal(typeof sid, 'string');
      assert.notEqual(sid, raw.handshake.sid, 'the socket id is not the Engine.IO sid');
    } finally {
      raw.close();
    }

    const errors = [
      [`${base()}&transport=polling&sid=nope`, 1],
      [`${server.url}/socket.io/?EIO=3&transport=polling`, 5],
      [`${base()}&transport=carrier-pigeon`, 0],
    ];
    for (const [url, code] of errors) {
      const r = await fetch(url);
      assert.equal(r.status, 400, url);
      const body = await r.json();
      assert.equal(body.code, code, `${url}: ${JSON.stringify(body)}`);
      assert.equal(typeof body.message, 'string');
    }
  });

  /** Two socket.io-client sockets in `room` that can relay to each other. */
  async function pair(room) {
    const [a, b] = await connectAll(server, {}, 2);
    try {
      await joinInOrder(room, [a, b]);
    } catch (e) {
      closeAll([a, b]);
      throw e;
    }
    return [a, b];
  }

  async function stillRelays(a, b, tag) {
    a.emit('offer', { to: b.id, offer: { ...OFFER, tag } });
    assert.equal((await b.waitFor('offer', (d) => d.offer.tag === tag))[0].from, a.id);
  }

  test('a malformed packet on a raw WebSocket closes that connection only', T, async (t) => {
    const room = uniqueRoom('bad');
    const [a, b] = await pair(room);
    try {
      // The last three are binary events whose placeholder names no attachment (the one attachment sent is num 0):
      // socket.io-parser throws "illegal attachments" for them.
      const malformed = ['9zzz', '42{not json', '42["join-room"', '450-["signal",{}]',
        '451-["signal",{"_placeholder":true,"num":9}]', '451-["signal",{"signal":{"_placeholder":true,"num":"0"}}]',
        '451-["signal",{"signal":{"_placeholder":true,"num":-1}}]'];
      for (const bad of malformed) {
        const raw = await RawEio.open(server);
        await raw.connectNamespace();
        raw.send(`42${JSON.stringify(['join-room', room])}`);
        await a.waitFor('user-joined', (id) => id === raw.sid, 'the raw socket joined');
        raw.send(bad);
        if (bad.startsWith('451-')) raw.send(new Uint8Array([1, 2, 3])); // its one attachment
        const closed = await raw.waitClosed().catch((e) => e);
        // Nothing of it may reach the others: a relayed malformed packet makes their parser fail and drop them.
        for (const p of [a, b]) {
          assert.deepEqual(p.disconnects, [], `after ${JSON.stringify(bad)} a bystander was disconnected ` +
            `(${p.disconnects}); it received ${JSON.stringify(p.events.slice(-3))}`);
        }
        if (closed instanceof Error) throw new Error(`${JSON.stringify(bad)} did not close the connection: ${closed.message}`);
        assert.deepEqual(await a.waitFor('user-left', (id) => id === raw.sid), [raw.sid]);
        await stillRelays(a, b, bad);
      }
      assert.ok(a.socket.connected && b.socket.connected);
      t.diagnostic(`closed on each malformed packet; ${a.received('user-left').length} user-left seen`);
    } finally {
      closeAll([a, b]);
    }
  });

  test('a frame above maxPayload closes that connection only', T, async () => {
    const room = uniqueRoom('big');
    const [a, b] = await pair(room);
    try {
      const raw = await RawEio.open(server);
      await raw.connectNamespace();
      raw.send(`42${JSON.stringify(['join-room', room])}`);
      await a.waitFor('user-joined', (id) => id === raw.sid);
      const size = Math.max(1_000_000, raw.handshake.maxPayload) + 1000;
      raw.send(`42${JSON.stringify(['signal', { signal: 'x'.repeat(size) }])}`);
      await raw.waitClosed();
      await a.waitFor('user-left', (id) => id === raw.sid);
      await stillRelays(a, b, 'after-big');
      assert.equal(a.received('signal').length + b.received('signal').length, 0, 'the oversized event was not relayed');
    } finally {
      closeAll([a, b]);
    }
  });

  test('polling: a binary attachment may come in a later POST than its packet', T, async () => {
    const room = uniqueRoom('split');
    const [a, b] = await pair(room);
    const raw = await RawPolling.open(server);
    try {
      await raw.connectNamespace();
      assert.equal((await raw.post(`42${JSON.stringify(['join-room', room])}`)).status, 200);
      await a.waitFor('user-joined', (id) => id === raw.sid);
      assert.equal((await raw.post('451-["signal",{"signal":{"_placeholder":true,"num":0},"n":1}]')).status, 200);
      assert.equal((await raw.post(`b${Buffer.from([0, 1, 2, 0xff]).toString('base64')}`)).status, 200);
      for (const p of [a, b]) {
        const [d] = await p.waitFor('signal', (x) => x.n === 1);
        assert.deepEqual([...bytesOf(d.signal)], [0, 1, 2, 0xff]);
      }
      // Two attachments, in one POST with the header this time.
      const two = ['452-["signal",{"signal":{"_placeholder":true,"num":1},"n":2,"x":{"_placeholder":true,"num":0}}]',
        `b${Buffer.from('first').toString('base64')}`, `b${Buffer.from('second').toString('base64')}`].join('\x1e');
      assert.equal((await raw.post(two)).status, 200);
      const [d2] = await b.waitFor('signal', (x) => x.n === 2);
      assert.equal(bytesOf(d2.signal).toString(), 'second');
      assert.equal(bytesOf(d2.x).toString(), 'first');
    } finally {
      closeAll([a, b]);
      await raw.post('1').catch(() => undefined);
    }
  });

  test('polling: a second concurrent GET for one session is refused and ends the session', T, async () => {
    const raw = await RawPolling.open(server);
    await raw.connectNamespace();
    const first = raw.get(); // held: nothing to send
    await sleep(200);
    const second = await raw.get();
    assert.equal(second.status, 400, `second GET: ${second.status} ${second.text}`);
    const firstDone = await first.catch((e) => ({ status: 'error', text: e.message }));
    assert.ok(firstDone.status === 200 || firstDone.status === 400, `the held GET ends: ${JSON.stringify(firstDone)}`);
    const after = await raw.get(5000).catch((e) => ({ status: 'error', text: e.message }));
    assert.equal(after.status, 400, `the session is gone: ${JSON.stringify(after)}`);
    assert.equal(JSON.parse(after.text).code, 1);
  });

  test('an unknown namespace is refused with CONNECT_ERROR; the default one still works', T, async () => {
    const { io } = await import('socket.io-client');
    const s = io(`${server.url}/admin`, { forceNew: true, reconnection: false, timeout: 5000 });
    try {
      const err = await new Promise((resolvePromise, reject) => {
        const t = setTimeout(() => reject(new Error('no connect_error for /admin')), WAIT);
        s.on('connect_error', (e) => { clearTimeout(t); resolvePromise(e); });
        s.on('connect', () => { clearTimeout(t); reject(new Error('/admin connected')); });
      });
      assert.equal(err.message, 'Invalid namespace');
    } finally {
      s.disconnect();
    }
    const raw = await RawEio.open(server);
    try {
      raw.send('40/admin,');
      const refused = await raw.until(() => raw.frames.find((f) => typeof f === 'string' && f.startsWith('44/admin,')),
        'CONNECT_ERROR for /admin');
      assert.deepEqual(JSON.parse(refused.slice('44/admin,'.length)), { message: 'Invalid namespace' });
      assert.equal(typeof (await raw.connectNamespace()), 'string');
    } finally {
      raw.close();
    }
  });

  test('a CONNECT to an unknown namespace without the trailing comma is refused alike; the connection stays', T,
    async () => {
      const raw = await RawEio.open(server);
      try {
        raw.send('40/random'); // the namespace ends at ',' or at the end of the packet
        const refused = await raw.until(() => raw.frames.find((f) => typeof f === 'string' &&
          f.startsWith('44/random,')), 'CONNECT_ERROR for /random');
        assert.deepEqual(JSON.parse(refused.slice('44/random,'.length)), { message: 'Invalid namespace' });
        assert.equal(typeof (await raw.connectNamespace()), 'string');
        assert.equal(raw.closed, null, 'the connection stays');
      } finally {
        raw.close();
      }
    });

  test('a connection that vanishes (TCP gone, no close frame) gives user-left at once: no resume for Socket.IO', T,
    async () => {
      const room = uniqueRoom('vanish');
      const [a, b] = await pair(room);
      try {
        const tcp = await openTcpEio(server);
        tcp.sendText(`42${JSON.stringify(['join-room', room])}`);
        await a.waitFor('user-joined', (id) => id === tcp.sid);
        tcp.destroy();
        // Socket.IO clients have no way to resume a socket id, so holding the place (kaiwa's native resume grace)
        // would only delay user-left; socket.io announces it as soon as the TCP connection is gone.
        for (const p of [a, b]) assert.deepEqual(await p.waitFor('user-left', (id) => id === tcp.sid), [tcp.sid]);
        await stillRelays(a, b, 'after-vanish');
      } finally {
        closeAll([a, b]);
      }
    });

  test('a polling POST above maxPayload gets 413', T, async () => {
    const raw = await RawPolling.open(server);
    await raw.connectNamespace();
    const big = `42${JSON.stringify(['signal', { x: 'y'.repeat(Math.max(1_000_000, raw.handshake.maxPayload) + 1000) }])}`;
    assert.equal((await raw.post(big)).status, 413);
    await raw.post('1').catch(() => undefined);
  });

  test('kaiwa: a polling POST with a malformed payload gets 400', T, async (t) => {
    if (kaiwaOnly(t)) return; // socket.io answers 200 "ok" and closes the session
    const room = uniqueRoom('post');
    const [a, b] = await pair(room);
    try {
      for (const bad of ['9zzz', 'bnot base64!!', '']) {
        const open = await (await fetch(`${base()}&transport=polling`)).text();
        const { sid } = JSON.parse(open.slice(1));
        const res = await fetch(`${base()}&transport=polling&sid=${encodeURIComponent(sid)}`, {
          method: 'POST',
          headers: { 'content-type': 'text/plain;charset=UTF-8' },
          body: bad,
        });
        assert.equal(res.status, 400, `POST ${JSON.stringify(bad)}: ${res.status} ${await res.clone().text()}`);
        await res.text();
      }
      await stillRelays(a, b, 'after-post');
    } finally {
      closeAll([a, b]);
    }
  });
});

// --------------------------------------------------------------------------------- connection placement (kaiwa)
describe('kaiwa: a direct WebSocket moves to the worker of the room it joins', () => {
  let server;
  before(async () => {
    // Four workers: a socket's connection lands on the room's worker by chance only one time in four. Pings every
    // 300 ms, so that a moved session is seen to be pinged (and answered) from its new worker.
    if (!REFERENCE) {
      server = await startTarget({ kaiwaArgs: ['--workers', '4', '--socketio-ping-interval', '300ms',
        '--socketio-ping-timeout', '1s'] });
    }
  });
  after(async () => {
    SioPeer.closeAll();
    await server?.stop();
  });

  test('what a client writes behind join-room in the same segment arrives, in order, after the move', T, async (t) => {
    if (kaiwaOnly(t)) return;
    const movesBefore = await metric(server, 'kaiwa_ws_moves_total');
    const sockets = [];
    try {
      for (let i = 0; i < 8; i++) {
        const room = uniqueRoom(`move${i}`);
        const b = await SioPeer.connect(server, { transports: ['websocket'] });
        sockets.push(b);
        await b.emitWithAck('join-room', [room]);
        const a = await openTcpEio(server);
        sockets.push(a);
        // join-room with an ack, then an offer and three candidates to b, all in one write.
        a.sendTexts([`421${JSON.stringify(['join-room', room])}`,
          `42${JSON.stringify(['offer', { to: b.id, n: 0 }])}`,
          ...[1, 2, 3].map((n) => `42${JSON.stringify(['ice-candidate', { to: b.id, n }])}`)]);
        await a.waitText('431[');
        await b.waitFor('user-joined', (id) => id === a.sid);
        await b.waitFor('ice-candidate', (d) => d.from === a.sid && d.n === 3);
        const fromA = b.events.filter((e) => e.args[0]?.from === a.sid).map((e) => `${e.event}:${e.args[0].n}`);
        assert.deepEqual(fromA, ['offer:0', 'ice-candidate:1', 'ice-candidate:2', 'ice-candidate:3']);
        // And back: b's answer reaches a where it lives now.
        b.emit('answer', { to: a.sid, n: 9 });
        await a.waitText('"answer",{"from"');
      }
      const moves = (await metric(server, 'kaiwa_ws_moves_total')) - movesBefore;
      // 16 sockets joined; each moved unless it was accepted on its room's worker (one chance in four).
      assert.ok(moves >= 1 && moves <= 16, `kaiwa_ws_moves_total grew by ${moves}`);
      // Moved sessions are pinged from their new worker: the server would close one whose pongs it missed, and a
      // raw socket that answers no ping is closed after pingInterval + pingTimeout.
      await sleep(1000);
      for (const b of sockets.filter((s) => s instanceof SioPeer)) assert.ok(b.socket.connected, 'still connected');
      for (const raw of sockets.filter((s) => !(s instanceof SioPeer))) await raw.waitText('\x81\x012');  // a ping frame
      // A moved socket that vanishes is announced to its room from its new worker.
      const [b0, a0] = sockets;
      a0.destroy();
      assert.deepEqual(await b0.waitFor('user-left', (id) => id === a0.sid), [a0.sid]);
    } finally {
      for (const s of sockets) (s instanceof SioPeer ? s.close() : s.destroy());
    }
  });
});

// ------------------------------------------------------------------------------------- access control (kaiwa)
describe('kaiwa: Socket.IO with --auth-secret', () => {
  const secret = 'sio-test-secret';
  const BIN = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');
  const token = (room, user) => execFileSync(BIN, ['token', '--secret', secret, '--room', room, '--user', user])
    .toString().trim();
  const ws = { transports: ['websocket'] };
  let server;
  before(async () => {
    if (!REFERENCE) server = await startTarget({ kaiwaArgs: ['--auth-secret', secret] });
  });
  after(async () => {
    SioPeer.closeAll();
    await server?.stop();
  });

  test('a socket without a token reaches nobody: call-user, offer and signal to a token holder are refused', T,
    async (t) => {
      if (kaiwaOnly(t)) return;
      const room = uniqueRoom('idle');
      const holder = await SioPeer.connect(server, { ...ws, query: { room }, auth: { token: token(room, 'holder') } });
      const peer = await SioPeer.connect(server, { ...ws, query: { room }, auth: { token: token(room, 'peer') } });
      const intruder = await SioPeer.connect(server, { ...ws, query: { room } });
      const garbage = await SioPeer.connect(server, { ...ws, query: { room, token: 'not.a.token' } });
      try {
        for (const p of [intruder, garbage]) {
          for (const [event, arg] of [['call-user', { offer: OFFER }], ['offer', { to: holder.id, offer: OFFER }],
            ['signal', { signal: 'x' }], ['answer-call', { answer: ANSWER }], ['join-room', room]]) {
            const [res] = await p.emitWithAck(event, [arg]);
            assert.equal(res?.error, 'unauthorized', `${event} from a socket without a valid token: ${JSON.stringify(res)}`);
          }
          p.emit('call-user', { n: 'no-ack' }); // refused without an ack: a kaiwa:error event says why
          const [err] = await p.waitFor('kaiwa:error', (e) => e.event === 'call-user');
          assert.equal(err.error, 'unauthorized');
        }
        // The holders reach each other through the implicit room their tokens grant, and nobody else.
        const [ok] = await peer.emitWithAck('call-user', [{ offer: OFFER, n: 1 }]);
        assert.deepEqual(ok, { ok: true });
        await holder.waitFor('call-made', (d) => d.n === 1 && d.from === peer.id);
        holder.emit('answer-call', { answer: ANSWER, candidates: [CANDIDATE], n: 2 });
        await peer.waitFor('call-answered', (d) => d.n === 2);
        await sleep(QUIET);
        for (const p of [intruder, garbage]) {
          assert.deepEqual(p.received('call-answered'), [], "the holder's answer-call reached no tokenless socket");
          for (const e of ['call-made', 'offer', 'signal']) {
            assert.deepEqual(holder.received(e, (d) => d?.from === p.id), [], `${e} from a tokenless socket`);
          }
        }
      } finally {
        closeAll([holder, peer, intruder, garbage]);
      }
    });

  test('a token names the implicit room: its own room when the handshake names none, no room it does not grant', T,
    async (t) => {
      if (kaiwaOnly(t)) return;
      const room = uniqueRoom('granted');
      const other = uniqueRoom('other');
      const a = await SioPeer.connect(server, { ...ws, auth: { token: token(room, 'a') } });
      const b = await SioPeer.connect(server, { ...ws, auth: { token: token(room, 'b') } });
      const c = await SioPeer.connect(server, { ...ws, auth: { token: token(other, 'c') } });
      const d = await SioPeer.connect(server, { ...ws, query: { room }, auth: { token: token(other, 'd') } });
      const e = await SioPeer.connect(server, { ...ws, query: { room }, auth: { token: token('*', 'e') } });
      try {
        // The CONNECT is acknowledged before the implicit room's owner has taken the join (a known race, to be
        // closed by holding the acknowledgement): a directed event to itself is refused by the room, on its owner,
        // after the join, so once it is answered b and e are in.
        for (const p of [b, e]) {
          assert.equal((await p.emitWithAck('ice-candidate', [{ to: p.id, candidate: CANDIDATE }]))[0]?.error,
            'unknown-peer');
        }
        // a and b: in `room` without naming it (their tokens do); so is e, whose token grants any room.
        assert.deepEqual((await a.emitWithAck('call-user', [{ n: 1 }]))[0], { ok: true });
        await b.waitFor('call-made', (x) => x.n === 1 && x.from === a.id);
        await e.waitFor('call-made', (x) => x.n === 1 && x.from === a.id);
        // c: in its own room `other`, where nobody else is.
        assert.deepEqual((await c.emitWithAck('call-user', [{ n: 2 }]))[0], { ok: true });
        // d names `room`, which its token does not grant: in no room until it joins the one it may.
        assert.equal((await d.emitWithAck('call-user', [{ n: 3 }]))[0]?.error, 'unauthorized');
        assert.equal((await d.emitWithAck('join-room', [room]))[0]?.error, 'unauthorized');
        assert.equal((await d.emitWithAck('join-room', [other]))[0]?.ok, true);
        await sleep(QUIET);
        for (const p of [a, b, e]) assert.deepEqual(p.received('call-made', (x) => x.n !== 1), [], "only a's call");
      } finally {
        closeAll([a, b, c, d, e]);
      }
    });
});

// --------------------------------------------------------------------------- per-address limits (kaiwa)
// Every 127.0.0.x is a client address of its own (loopback), so a test floods from one and checks from another.
describe('kaiwa: Engine.IO handshakes, polling sessions and rooms per client address', () => {
  let server;
  before(async () => {
    if (!REFERENCE) {
      server = await startTarget({ kaiwaArgs: ['--address-handshake-rate', '0.01', '--address-handshake-burst', '12',
        '--address-polling-sessions', '3', '--max-polling-sessions', '8', '--address-room-rate', '0.01',
        '--address-room-burst', '4', '--max-rooms', '20'] });
    }
  });
  after(async () => {
    SioPeer.closeAll();
    await server?.stop();
  });
  const url = () => `${server.url}/socket.io/?EIO=4&transport=polling`;
  const refusal = (r, status) => {
    assert.equal(r.status, status, JSON.stringify(r));
    const body = JSON.parse(r.text);
    assert.equal(typeof body.code, 'number', r.text);
    assert.equal(typeof body.message, 'string', r.text);
  };

  /** A raw Engine.IO WebSocket from `localAddress`: resolves once it got its open packet or was closed. */
  async function rawWsFrom(localAddress, query = '') {
    const sock = new WebSocketClient(`${server.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket${query}`,
      { localAddress });
    sock.binaryType = 'arraybuffer';
    const raw = new RawEio(sock);
    await raw.until(() => raw.closed || raw.frames.find((f) => typeof f === 'string' && f.startsWith('0')), 'open or close');
    return raw;
  }

  test('handshakes are refused past the burst: 429 for polling (over one keep-alive connection) and for a WebSocket upgrade',
    T, async (t) => {
      if (kaiwaOnly(t)) return;
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const localAddress = '127.0.0.2';
      try {
        const statuses = [];
        for (let i = 0; i < 15; i++) {
          const r = await httpFrom(`${url()}&room=h${i}`, { localAddress, agent });
          statuses.push(r.status);
          if (r.status === 200) { // closed at once: only the handshake rate is tested here, not the sessions held
            const { sid } = JSON.parse(r.text.slice(1));
            assert.equal((await httpFrom(`${url()}&sid=${sid}`, { method: 'POST', body: '1', localAddress, agent }))
              .status, 200);
          } else {
            refusal(r, 429);
          }
        }
        assert.deepEqual(statuses, [...Array(12).fill(200), 429, 429, 429]);
        // A WebSocket past the burst is refused before its upgrade (HTTP 429 from the server's one handshake rule for
        // every upgrade): the client sees the upgrade fail (1006) and no session was opened.
        const raw = await rawWsFrom(localAddress);
        await raw.waitClosed();
        assert.equal(raw.closed.code, 1006, JSON.stringify(raw.closed));
        assert.deepEqual(raw.frames, [], 'no session was opened');
        // Another address is not affected.
        const fine = await pollingFrom(server, { localAddress: '127.0.0.3' });
        assert.ok(fine.sid, JSON.stringify(fine.refused));
        await fine.post('1');
        const other = await rawWsFrom('127.0.0.3');
        assert.equal(typeof (await other.connectNamespace()), 'string');
        other.close();
      } finally {
        agent.destroy();
      }
    });

  test('polling sessions are bounded per address (429) and on the server (503); each one ended frees its place', T,
    async (t) => {
      if (kaiwaOnly(t)) return;
      const held = [];
      try {
        for (let i = 0; i < 3; i++) held.push(await pollingFrom(server, { localAddress: '127.0.0.4' }));
        assert.ok(held.every((s) => s.sid), 'three sessions from one address');
        refusal((await pollingFrom(server, { localAddress: '127.0.0.4' })).refused, 429);
        // One ends (the client closes it): its place is free once, not twice.
        const [first] = held.splice(0, 1);
        assert.equal((await first.post('1')).status, 200);
        assert.equal((await first.post('1')).status, 400, 'closed already');
        held.push(await pollingFrom(server, { localAddress: '127.0.0.4' }));
        assert.ok(held.at(-1).sid, 'the freed place is taken again');
        refusal((await pollingFrom(server, { localAddress: '127.0.0.4' })).refused, 429);
        // A session the server ends (a malformed POST) frees its place too.
        const [bad] = held.splice(0, 1);
        assert.equal((await bad.post('9zzz')).status, 400);
        held.push(await pollingFrom(server, { localAddress: '127.0.0.4' }));
        assert.ok(held.at(-1).sid);
        // The server's total (8): three more addresses, the last refused with 503.
        for (const a of ['127.0.0.5', '127.0.0.6']) {
          for (let i = 0; i < 2; i++) held.push(await pollingFrom(server, { localAddress: a }));
        }
        held.push(await pollingFrom(server, { localAddress: '127.0.0.7' }));
        assert.ok(held.every((s) => s.sid), `${held.length} sessions held`);
        refusal((await pollingFrom(server, { localAddress: '127.0.0.7' })).refused, 503);
        // A session that upgraded to WebSocket is a WebSocket connection: it no longer holds a polling place.
        const [up] = held.splice(0, 1);
        const probe = new WebSocketClient(`${server.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid=${
          encodeURIComponent(up.sid)}`, { localAddress: '127.0.0.4' });
        const upgraded = new RawEio(probe);
        await new Promise((resolvePromise, reject) => {
          probe.once('open', resolvePromise);
          probe.once('error', reject);
        });
        upgraded.send('2probe');
        await upgraded.until(() => upgraded.frames.includes('3probe'), '3probe');
        upgraded.send('5');
        upgraded.send('2'); // nothing answers the upgrade packet; a ping behind it is answered once it was handled
        await upgraded.until(() => upgraded.frames.includes('3'), 'the pong behind the upgrade');
        const next = await pollingFrom(server, { localAddress: '127.0.0.7' });
        assert.ok(next.sid, `the upgraded session's place is free: ${JSON.stringify(next.refused)}`);
        held.push(next);
        upgraded.close();
      } finally {
        for (const s of held) await s.post?.('1').catch(() => undefined);
      }
    });

  test('rooms made by connecting sockets (the implicit room of ?room=) are bounded per address; others still get one',
    T, async (t) => {
      if (kaiwaOnly(t)) return;
      const raws = [];
      const victim = await SioPeer.connect(server, { transports: ['websocket'] });
      try {
        // Two addresses, each connecting 12 sockets with a room of their own: 24 rooms asked, --max-rooms 20.
        for (const a of ['127.0.0.8', '127.0.0.9']) {
          for (let i = 0; i < 12; i++) {
            const raw = await rawWsFrom(a, `&room=${uniqueRoom(`flood${i}`)}`);
            raws.push(raw);
            await raw.connectNamespace();
          }
        }
        // A join-room of a new room from a flooding address: refused as rate-limited.
        const flooder = raws.at(-1);
        flooder.send(`421${JSON.stringify(['join-room', uniqueRoom('more')])}`);
        const ack = await flooder.until(() => flooder.frames.find((f) => typeof f === 'string' && f.startsWith('431[')),
          'the join-room ack');
        assert.equal(JSON.parse(ack.slice(3))[0].error, 'rate-limited', ack);
        const rooms = await metric(server, 'kaiwa_rooms');
        assert.ok(rooms <= 2 * 4 + 2, `kaiwa_rooms ${rooms}: at most the two addresses' bursts (and the victim's)`);
        // Everyone else still gets rooms.
        const [joined] = await victim.emitWithAck('join-room', [uniqueRoom('victim')]);
        assert.equal(joined?.ok, true, JSON.stringify(joined));
      } finally {
        for (const r of raws) r.close();
        victim.close();
      }
    });
});

// ---------------------------------------------------------------------------- session lifetimes (kaiwa)
describe('kaiwa: how long an Engine.IO session lives without its client', () => {
  let fast;
  let slow;
  before(async () => {
    if (!REFERENCE) {
      fast = await startTarget({ kaiwaArgs: ['--socketio-ping-interval', '300ms', '--socketio-ping-timeout', '200ms'] });
      slow = await startTarget({ kaiwaArgs: ['--socketio-connect-timeout', '300ms'] });
    }
  });
  after(async () => {
    SioPeer.closeAll();
    await fast?.stop();
    await slow?.stop();
  });

  test('a polling session whose client went silent is gone after pingInterval + pingTimeout', T, async (t) => {
    if (kaiwaOnly(t)) return;
    const s = await pollingFrom(fast);
    assert.equal((await s.post('40')).status, 200);
    assert.ok((await s.get()).text.includes('40{"sid"'));
    await sleep(1200); // 300 ms + 200 ms, and no poll, no pong
    const r = await s.post('6');
    assert.equal(r.status, 400, `the session should be gone: ${r.status} ${r.text}`);
    assert.equal(JSON.parse(r.text).code, 1);
  });

  test('an Engine.IO session that never connects a socket (no CONNECT) is closed after the connect timeout', T,
    async (t) => {
      if (kaiwaOnly(t)) return;
      const idle = await pollingFrom(slow);
      const connected = await pollingFrom(slow);
      assert.equal((await connected.post('40')).status, 200);
      const raw = await RawEio.open(slow);
      await sleep(1200);
      const r = await idle.post('6');
      assert.equal(r.status, 400, `the unconnected session should be gone: ${r.status} ${r.text}`);
      assert.equal(JSON.parse(r.text).code, 1);
      await raw.waitClosed();
      assert.equal((await connected.post('6')).status, 200, 'a connected session stays');
      await connected.post('1');
    });
});

// ------------------------------------------------------------------------------------ max payload (kaiwa)
describe('kaiwa: --socketio-max-payload above the HTTP default (4 MB)', () => {
  let server;
  before(async () => {
    if (!REFERENCE) server = await startTarget({ kaiwaArgs: ['--socketio-max-payload', '4000000'] });
  });
  after(async () => {
    SioPeer.closeAll();
    await server?.stop();
  });

  test('what the handshake advertises is accepted; a POST above it gets 413 and ends the session', T, async (t) => {
    if (kaiwaOnly(t)) return;
    const s = await pollingFrom(server);
    assert.equal(s.handshake.maxPayload, 4000000);
    assert.equal((await s.post('40')).status, 200);
    const packet = (n) => `421${JSON.stringify(['nope', { x: 'y'.repeat(n) }])}`;
    const two = await s.post(packet(2_000_000));
    assert.equal(two.status, 200, `2 MB in a 4 MB session: ${two.status} ${two.text.slice(0, 200)}`);
    assert.equal((await s.post('6')).status, 200, 'the session goes on');
    const big = await s.post(packet(4_000_100));
    assert.equal(big.status, 413);
    const after = await s.post('6');
    assert.equal(after.status, 400, `the session is closed: ${after.status} ${after.text}`);

    // The same over a WebSocket: 2 MB is taken (and answered: an unknown event), the connection stays.
    const raw = await RawEio.open(server);
    try {
      await raw.connectNamespace();
      raw.send(packet(2_000_000));
      const ack = await raw.until(() => raw.frames.find((f) => typeof f === 'string' && f.startsWith('431[')), 'ack');
      assert.equal(JSON.parse(ack.slice(3))[0].error, 'unknown-event');
      assert.equal(raw.closed, null);
    } finally {
      raw.close();
    }
  });
});
