// The TURN TCP/TLS client connection without sockets: framing of STUN and ChannelData split at every byte, malformed
// streams, the output bound, the TcpTimeouts deadlines on a fake clock, the switch to a pipe after ConnectionBind, a
// move to another worker, TLS in memory; and the pipe's pause and linger decisions.
#include "turn/stream_connection.hpp"

#include <gtest/gtest.h>

#include "stun/message.hpp"
#include "tls/test_tls.hpp"
#include "turn/server.hpp"

namespace kaiwa::turn {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<uint8_t>;
using Kind = StreamConnection::Next::Kind;

Bytes binding(uint8_t tag) {
  std::array<uint8_t, 64> buf{};
  stun::TransactionId tx{};
  tx[0] = tag;
  stun::Builder b(buf, stun::Method::kBinding, stun::Class::kRequest, tx);
  auto bytes = b.bytes();
  return Bytes(bytes.begin(), bytes.end());
}

// ChannelData with `n` bytes, padded to 4 as over TCP.
Bytes channelData(size_t n, uint8_t fill = 0xab) {
  Bytes b{0x40, 0x00, uint8_t(n >> 8), uint8_t(n)};
  b.insert(b.end(), n, fill);
  b.insert(b.end(), (4 - n % 4) % 4, 0);
  return b;
}

std::vector<Bytes> frames(StreamConnection& c, TimePoint t) {
  std::vector<Bytes> out;
  for (;;) {
    auto n = c.next(t);
    if (n.kind != Kind::kFrame) break;
    out.emplace_back(n.frame.begin(), n.frame.end());
  }
  return out;
}

TEST(StreamConnection, FramesSplitAtEveryByte) {
  Bytes a = binding(1), d = channelData(5), e = binding(2);
  Bytes all = a;
  all.insert(all.end(), d.begin(), d.end());
  all.insert(all.end(), e.begin(), e.end());
  for (size_t cut = 0; cut <= all.size(); ++cut) {
    StreamConnection c(TimePoint{1s});
    c.received({all.data(), cut});
    auto got = frames(c, TimePoint{1s});
    c.received({all.data() + cut, all.size() - cut});
    auto more = frames(c, TimePoint{1s});
    got.insert(got.end(), more.begin(), more.end());
    ASSERT_EQ(got, (std::vector<Bytes>{a, d, e})) << cut;
  }
  // One byte at a time, into the connection's own buffer as the worker's recv does.
  StreamConnection c(TimePoint{1s});
  std::vector<Bytes> got;
  for (uint8_t b : all) {
    auto space = c.receiveSpace();
    ASSERT_FALSE(space.empty());
    space[0] = b;
    c.receivedInPlace(1);
    auto more = frames(c, TimePoint{1s});
    got.insert(got.end(), more.begin(), more.end());
  }
  EXPECT_EQ(got, (std::vector<Bytes>{a, d, e}));
}

TEST(StreamConnection, LargeFrameGetsRoomNotStreamIsMalformed) {
  StreamConnection c(TimePoint{1s});
  Bytes big = channelData(60000);
  for (size_t pos = 0; pos < big.size();) {
    auto space = c.receiveSpace();
    ASSERT_FALSE(space.empty()) << pos;
    size_t n = std::min(space.size(), big.size() - pos);
    std::copy_n(big.data() + pos, n, space.data());
    c.receivedInPlace(n);
    pos += n;
    if (pos < big.size()) {
      EXPECT_EQ(c.next(TimePoint{1s}).kind, Kind::kNone);
    }
  }
  auto n = c.next(TimePoint{1s});
  ASSERT_EQ(n.kind, Kind::kFrame);
  EXPECT_EQ(n.frame.size(), big.size());

  StreamConnection h(TimePoint{1s});
  h.received(Bytes{0x80, 0x60, 0x00, 0x01, 0, 0, 0, 0});  // RTP: neither STUN nor ChannelData
  EXPECT_EQ(h.next(TimePoint{1s}).kind, Kind::kMalformed);
}

TEST(StreamConnection, OutputIsBounded) {
  StreamConnection c(TimePoint{1s});
  Bytes scratch, payload(60000, 1);
  size_t queued = 0;
  for (;;) {
    auto r = c.send(payload, {}, 0, scratch);
    if (r != StreamConnection::SendResult::kQueued) {
      EXPECT_EQ(r, StreamConnection::SendResult::kOverflow);
      break;
    }
    queued += payload.size();
  }
  EXPECT_EQ(c.queued(), queued);
  EXPECT_LE(queued, kMaxTcpBuffered);
  EXPECT_GT(queued + payload.size(), kMaxTcpBuffered);
  c.output().clear();  // written
  EXPECT_EQ(c.send(binding(1), {}, 0, scratch), StreamConnection::SendResult::kQueued);
  Bytes head{0x40, 0x00, 0x00, 0x03}, body{1, 2, 3};
  c.output().clear();
  EXPECT_EQ(c.send(head, body, 1, scratch), StreamConnection::SendResult::kQueued);
  EXPECT_EQ(c.output(), (Bytes{0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0}));
}

TEST(StreamConnection, NoAllocationWithinItsTimeout) {
  TcpTimeouts limits;
  TimePoint t0{100s};
  StreamConnection c(t0);
  c.received(binding(1));  // Binding requests alone do not count
  EXPECT_EQ(frames(c, t0 + 5s).size(), 1u);
  EXPECT_EQ(c.expired(t0 + 29s, false, limits), std::nullopt);
  EXPECT_EQ(c.expired(t0 + 30s, false, limits), TcpTimeout::kNoAllocation);
  EXPECT_EQ(c.expired(t0 + 30s, true, limits), std::nullopt);  // an allocation: the allocation's lifetime governs
  limits.allocate = 0ms;
  EXPECT_EQ(c.expired(t0 + 1h, false, limits), std::nullopt);  // 0: off
}

TEST(StreamConnection, PartialFrameWithinItsTimeout) {
  TcpTimeouts limits;
  TimePoint t0{100s};
  StreamConnection c(t0);
  Bytes a = binding(1), b = binding(2);
  c.received({a.data(), 10});
  EXPECT_EQ(frames(c, t0).size(), 0u);
  EXPECT_EQ(c.expired(t0 + 9s, true, limits), std::nullopt);
  EXPECT_EQ(c.expired(t0 + 10s, true, limits), TcpTimeout::kPartialFrame);  // allocated or not
  // Completing it and starting the next one restarts the clock.
  c.received({a.data() + 10, a.size() - 10});
  c.received({b.data(), 5});
  EXPECT_EQ(frames(c, t0 + 8s).size(), 1u);
  EXPECT_EQ(c.expired(t0 + 12s, true, limits), std::nullopt);
  EXPECT_EQ(c.expired(t0 + 18s, true, limits), TcpTimeout::kPartialFrame);
  // More bytes of the same frame do not restart it.
  c.received({b.data() + 5, 5});
  EXPECT_EQ(frames(c, t0 + 17s).size(), 0u);
  EXPECT_EQ(c.expired(t0 + 18s, true, limits), TcpTimeout::kPartialFrame);
  c.received({b.data() + 10, b.size() - 10});
  EXPECT_EQ(frames(c, t0 + 17s).size(), 1u);
  EXPECT_EQ(c.expired(t0 + 25s, true, limits), std::nullopt);
}

TEST(StreamConnection, IdleOnceItsAllocationIsGone) {
  TcpTimeouts limits;
  TimePoint t0{100s};
  StreamConnection c(t0);
  c.received(binding(1));
  EXPECT_EQ(frames(c, t0 + 2s).size(), 1u);
  c.noteAllocation(true);
  EXPECT_EQ(c.expired(t0 + 1h, true, limits), std::nullopt);  // quiet, with an allocation: fine
  EXPECT_EQ(c.expired(t0 + 31s, false, limits), std::nullopt);
  EXPECT_EQ(c.expired(t0 + 32s, false, limits), TcpTimeout::kIdle);  // 30 s after the last message
}

TEST(StreamConnection, PipeAfterConnectionBindAndMoveToAnotherWorker) {
  TimePoint t0{100s};
  StreamConnection c(t0);
  Bytes bind = binding(7), raw{'r', 'a', 'w'};
  Bytes all = bind;
  all.insert(all.end(), raw.begin(), raw.end());
  c.received(all);
  auto n = c.next(t0);
  ASSERT_EQ(n.kind, Kind::kFrame);
  // Moved to another worker before the frame is handled: the frame and what follows go along.
  auto carried = c.fromLastFrame();
  EXPECT_EQ(Bytes(carried.begin(), carried.end()), all);
  StreamConnection moved(t0);
  moved.receivedPlaintext(carried);
  n = moved.next(t0);
  ASSERT_EQ(n.kind, Kind::kFrame);
  EXPECT_EQ(Bytes(n.frame.begin(), n.frame.end()), bind);
  // The bind succeeded: the bytes after it are the pipe's, and no more frames come.
  moved.startPipe();
  EXPECT_EQ(moved.next(t0).kind, Kind::kNone);
  bool failed = true;
  auto piped = moved.pipeBytes(failed);
  EXPECT_FALSE(failed);
  EXPECT_EQ(Bytes(piped.begin(), piped.end()), raw);
  EXPECT_TRUE(moved.pipeBytes(failed).empty());
  EXPECT_EQ(moved.expired(t0 + 1h, false, TcpTimeouts{}), std::nullopt);  // the pipe decides
  EXPECT_GE(moved.receiveSpace().size(), kPipeChunk);
}

TEST(StreamConnection, OverTls) {
  SSL_CTX* ctx = tls::tlstest::serverContext();
  tls::tlstest::Client client;
  TimePoint t0{100s};
  StreamConnection c(t0, tls::Session::accept(ctx));
  Bytes scratch;
  // Before the handshake, a reply is held (and sent as a record of its own once it is done).
  ASSERT_EQ(c.send(binding(9), {}, 0, scratch), StreamConnection::SendResult::kQueued);
  EXPECT_EQ(c.expired(t0 + 9s, false, TcpTimeouts{}), std::nullopt);
  EXPECT_EQ(c.expired(t0 + 10s, false, TcpTimeouts{}), TcpTimeout::kTlsHandshake);
  for (int i = 0; i < 6 && !SSL_is_init_finished(client.ssl); ++i) {
    client.handshake();
    c.received(client.take());
    EXPECT_EQ(c.next(t0).kind, Kind::kNone);
    client.give(c.output());
    c.output().clear();
  }
  ASSERT_TRUE(SSL_is_init_finished(client.ssl));
  client.handshake();
  c.received(client.take());
  EXPECT_EQ(c.next(t0).kind, Kind::kNone);
  EXPECT_TRUE(c.handshakeDone());
  // The client's frames, in records split anywhere.
  Bytes a = binding(1), d = channelData(33);
  ASSERT_EQ(SSL_write(client.ssl, a.data(), int(a.size())), int(a.size()));
  ASSERT_EQ(SSL_write(client.ssl, d.data(), 10), 10);
  ASSERT_EQ(SSL_write(client.ssl, d.data() + 10, int(d.size() - 10)), int(d.size() - 10));
  Bytes records = client.take();
  c.received({records.data(), 7});
  EXPECT_TRUE(frames(c, t0).empty());
  c.received({records.data() + 7, records.size() - 7});
  EXPECT_EQ(frames(c, t0), (std::vector<Bytes>{a, d}));
  // Replies: one record each (the held one first).
  ASSERT_EQ(c.send(binding(2), {}, 0, scratch), StreamConnection::SendResult::kQueued);
  client.give(c.output());
  c.output().clear();
  EXPECT_EQ(client.recordsRead(), 2);
  // A tampered record fails the connection.
  ASSERT_EQ(SSL_write(client.ssl, a.data(), int(a.size())), int(a.size()));
  Bytes bad = client.take();
  bad.back() ^= 1;
  c.received(bad);
  EXPECT_EQ(c.next(t0).kind, Kind::kTlsFailed);
  SSL_CTX_free(ctx);
}

TEST(PipeSide, PausesForTheOtherSideAndTheBudgetAndLingersOnce) {
  TimePoint t0{100s};
  PipeSide s;
  EXPECT_EQ(s.mayRead(0, t0), PipeSide::Read::kNow);
  EXPECT_EQ(s.mayRead(kPipeBuffered, t0), PipeSide::Read::kNow);
  EXPECT_EQ(s.mayRead(kPipeBuffered + 1, t0), PipeSide::Read::kWhenOtherDrains);
  s.pauseUntil(t0 + 250ms);
  EXPECT_EQ(s.mayRead(0, t0), PipeSide::Read::kAtDeadline);
  EXPECT_EQ(s.deadline(t0), t0 + 250ms);
  EXPECT_EQ(s.mayRead(0, t0 + 250ms), PipeSide::Read::kNow);
  EXPECT_EQ(s.deadline(t0 + 250ms), std::nullopt);

  s.otherClosed(t0 + 1s);
  EXPECT_EQ(s.mayRead(0, t0 + 1s), PipeSide::Read::kNever);
  EXPECT_FALSE(s.shouldClose(100, t0 + 1s));   // still writing what is queued
  EXPECT_TRUE(s.shouldClose(0, t0 + 2s));      // written
  EXPECT_FALSE(s.shouldClose(100, t0 + 10s));  // ...or the linger is over
  EXPECT_TRUE(s.shouldClose(100, t0 + 11s));
  s.otherClosed(t0 + 5s);  // once: the deadline stays
  EXPECT_EQ(s.deadline(t0 + 5s), t0 + 11s);
}

}  // namespace
}  // namespace kaiwa::turn
