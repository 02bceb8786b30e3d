// ws::Connection with a fake clock and a fake socket: pings and the idle timeout, the deadline of a message begun,
// the close handshake from either side, protocol errors, the bounded linger, the slow-consumer limit, messages split
// at every byte, and onClose heard exactly once whichever way the connection ends.
#include "ws/connection.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace kaiwa::ws {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const TimePoint t0 = TimePoint{} + std::chrono::hours(1);

// A client frame: masked, as RFC 6455 requires of clients.
std::string clientFrame(uint8_t opcode, std::string_view payload, bool fin = true, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  uint8_t maskBit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(maskBit | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    f.push_back(static_cast<char>(maskBit | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    f.push_back(static_cast<char>(maskBit | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>(uint64_t(payload.size()) >> (8 * i)));
  }
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked) f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f.push_back(masked ? static_cast<char>(payload[i] ^ key[i & 3]) : payload[i]);
  return f;
}
std::string text(std::string_view p) { return clientFrame(0x1, p); }
std::string closeWith(uint16_t code, std::string_view reason = {}) {
  std::string body{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  body.append(reason);
  return clientFrame(0x8, body);
}

struct ServerFrame {
  uint8_t opcode;
  std::string payload;
};

// The server's frames in what it sent (unmasked, unfragmented); the 101 (anything before the first frame) skipped.
std::vector<ServerFrame> framesIn(std::string_view wire) {
  std::vector<ServerFrame> out;
  if (auto end = wire.find("\r\n\r\n"); wire.starts_with("HTTP/") && end != std::string_view::npos)
    wire.remove_prefix(end + 4);
  while (wire.size() >= 2) {
    uint8_t op = uint8_t(wire[0]) & 0x0F;
    uint64_t len = uint8_t(wire[1]) & 0x7F;
    std::size_t h = 2;
    if (len == 126) {
      len = (uint64_t(uint8_t(wire[2])) << 8) | uint8_t(wire[3]);
      h = 4;
    } else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | uint8_t(wire[2 + i]);
      h = 10;
    }
    if (wire.size() < h + len) break;
    out.push_back({op, std::string(wire.substr(h, len))});
    wire.remove_prefix(h + len);
  }
  return out;
}
uint16_t codeOf(const ServerFrame& f) {
  return f.payload.size() >= 2 ? uint16_t((uint8_t(f.payload[0]) << 8) | uint8_t(f.payload[1])) : 0;
}

// The socket and the application, faked: the socket takes up to `room` bytes, the rest is queued.
struct Harness : Link, Events {
  explicit Harness(ConnectionOptions o = {}) : options(o), conn(options, *this, *this) {}
  virtual ~Harness() = default;

  bool write(std::string_view a, std::string_view b) override {
    ++writes;
    if (failWrites) return false;
    if (socketClosed) return false;
    for (std::string_view part : {a, b}) {
      for (char c : part) {
        if (queue.empty() && room > 0) {
          sent.push_back(c);
          --room;
        } else {
          queue.push_back(c);
        }
      }
    }
    return true;
  }
  std::size_t queued() const override { return queue.size(); }
  void halfClose() override {
    EXPECT_TRUE(queue.empty()) << "half-closed with bytes queued";
    ++halfCloses;
  }
  void closeSocket() override {
    EXPECT_FALSE(socketClosed) << "closed twice";
    socketClosed = true;
  }
  void onMessage(std::string_view payload, bool binary) override {
    EXPECT_FALSE(closes) << "a message after onClose";
    messages.emplace_back(payload, binary);
  }
  void onClose() override { ++closes; }

  // The socket takes everything queued.
  void drain(TimePoint now) {
    sent += queue;
    queue.clear();
    room = std::size_t(-1);
    conn.sent(now);
  }
  void feed(std::string bytes, TimePoint now) { conn.receive(bytes.data(), bytes.size(), now); }
  std::vector<ServerFrame> frames() const { return framesIn(sent); }
  void opened() { ASSERT_TRUE(conn.open("HTTP/1.1 101 Switching Protocols\r\n\r\n", t0)); }

  ConnectionOptions options;
  Connection conn;
  std::string sent, queue;
  std::size_t room = std::size_t(-1);
  std::vector<std::pair<std::string, bool>> messages;
  int writes = 0, halfCloses = 0, closes = 0;
  bool socketClosed = false, failWrites = false;
};

TEST(WsConnection, PingsAtHalfThePingTimeoutAndClosesASilentPeer) {
  ConnectionOptions o;
  o.pingTimeout = seconds(10);
  o.messageTimeout = milliseconds(0);
  Harness h(o);
  h.opened();
  EXPECT_EQ(h.conn.nextDeadline(), t0 + seconds(5));
  h.conn.tick(t0 + milliseconds(4999));
  EXPECT_TRUE(h.frames().empty());
  h.conn.tick(t0 + seconds(5));
  ASSERT_EQ(h.frames().size(), 1u);
  EXPECT_EQ(h.frames()[0].opcode, 0x9);
  h.conn.tick(t0 + seconds(6));
  EXPECT_EQ(h.frames().size(), 1u);  // one ping per silence
  EXPECT_EQ(h.conn.nextDeadline(), t0 + seconds(10));

  h.feed(clientFrame(0xA, {}), t0 + seconds(7));  // the pong: the peer is alive
  h.conn.tick(t0 + seconds(11));
  EXPECT_FALSE(h.socketClosed);
  EXPECT_EQ(h.frames().size(), 1u);
  h.conn.tick(t0 + seconds(12));
  EXPECT_EQ(h.frames().size(), 2u);  // silent again for half the timeout
  h.conn.tick(t0 + milliseconds(16999));
  EXPECT_FALSE(h.socketClosed);
  h.conn.tick(t0 + seconds(17));
  EXPECT_TRUE(h.socketClosed);
  EXPECT_EQ(h.closes, 1);
  EXPECT_EQ(h.conn.state(), Connection::State::kDead);
  h.conn.finish();
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, AMessageSentAByteNowAndThenIsClosedAtItsDeadline) {
  ConnectionOptions o;
  o.pingTimeout = seconds(30);
  o.messageTimeout = seconds(2);
  Harness h(o);
  h.opened();
  std::string frame = text(std::string(100, 'x'));
  TimePoint now = t0;
  std::size_t i = 0;
  for (; i < 10; ++i) {  // a few bytes every 200 ms keep the peer alive, not the message
    now = t0 + milliseconds(200 * i);
    h.feed(frame.substr(3 * i, 3), now);
    h.conn.tick(now);
  }
  EXPECT_EQ(h.conn.state(), Connection::State::kOpen);
  EXPECT_EQ(h.conn.heldBytes(), 30u);
  EXPECT_EQ(h.conn.nextDeadline(), t0 + seconds(2));
  h.conn.tick(t0 + seconds(2));
  auto frames = h.frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(codeOf(frames[0]), kClosePolicy);
  EXPECT_EQ(frames[0].payload.substr(2), "message too slow");
  EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
  EXPECT_EQ(h.conn.heldBytes(), 0u);
  EXPECT_EQ(h.conn.heldCapacity(), std::string().capacity());  // released, not just cleared
  EXPECT_EQ(h.closes, 1);
  EXPECT_EQ(h.halfCloses, 1);
  EXPECT_TRUE(h.messages.empty());
  // The rest of the message now only counts towards the linger.
  h.feed(frame.substr(3 * i), t0 + seconds(2) + milliseconds(1));
  EXPECT_TRUE(h.messages.empty());
  h.conn.finish();
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, WholeMessagesSentSlowlyAreNoMessageTooSlow) {
  ConnectionOptions o;
  o.messageTimeout = seconds(2);
  Harness h(o);
  h.opened();
  for (int i = 0; i < 10; ++i) {
    TimePoint now = t0 + seconds(i);
    h.feed(text("hi"), now);
    h.conn.tick(now);
  }
  EXPECT_EQ(h.messages.size(), 10u);
  EXPECT_EQ(h.conn.state(), Connection::State::kOpen);
  // A message begun in the read that finished another gets its own deadline, from then.
  std::string next = text("later");
  h.feed(text("a") + next.substr(0, 3), t0 + seconds(20));
  h.conn.tick(t0 + seconds(21));
  EXPECT_EQ(h.conn.state(), Connection::State::kOpen);
  h.feed(next.substr(3), t0 + seconds(21) + milliseconds(500));
  EXPECT_EQ(h.messages.back().first, "later");
  h.conn.tick(t0 + seconds(30));
  EXPECT_EQ(h.conn.state(), Connection::State::kOpen);
}

TEST(WsConnection, TheDeadlineRestartsForAMessageBegunInTheReadThatFinishedTheLast) {
  ConnectionOptions o;
  o.messageTimeout = seconds(2);
  Harness h(o);
  h.opened();
  std::string m1 = text("first message"), m2 = text("second message");
  h.feed(m1.substr(0, 4), t0);
  h.feed(m1.substr(4) + m2.substr(0, 4), t0 + milliseconds(1500));
  ASSERT_EQ(h.messages.size(), 1u);
  h.conn.tick(t0 + milliseconds(2500));  // m2 began at 1.5 s
  EXPECT_EQ(h.conn.state(), Connection::State::kOpen);
  h.conn.tick(t0 + milliseconds(3500));
  EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
}

TEST(WsConnection, APartialTlsRecordStartsTheMessageDeadline) {
  ConnectionOptions o;
  o.messageTimeout = seconds(2);
  Harness h(o);
  h.opened();
  h.conn.receive(nullptr, 0, t0, true);  // ciphertext came, no plaintext yet
  h.conn.tick(t0 + seconds(2));
  EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, OurCloseAnsweredByThePeer) {
  Harness h;
  h.opened();
  h.conn.close(kCloseNormal, "bye", t0);
  EXPECT_EQ(h.conn.state(), Connection::State::kClosing);
  ASSERT_EQ(h.frames().size(), 1u);
  EXPECT_EQ(codeOf(h.frames()[0]), kCloseNormal);
  EXPECT_EQ(h.frames()[0].payload.substr(2), "bye");
  // Messages after our close are read and dropped; nothing more goes out, not even a pong.
  h.feed(text("late") + clientFrame(0x9, "ping?"), t0 + seconds(1));
  EXPECT_TRUE(h.messages.empty());
  EXPECT_EQ(h.conn.sendText("more"), Connection::SendResult::kClosed);
  EXPECT_EQ(h.frames().size(), 1u);
  EXPECT_EQ(h.closes, 0);

  h.feed(closeWith(kCloseNormal), t0 + seconds(2));
  EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
  EXPECT_EQ(h.frames().size(), 1u);  // no echo of an answer
  EXPECT_EQ(h.conn.peerCloseCode(), kCloseNormal);
  EXPECT_EQ(h.closes, 1);
  EXPECT_EQ(h.halfCloses, 1);
  h.conn.tick(t0 + seconds(4));
  EXPECT_FALSE(h.socketClosed);
  h.conn.tick(t0 + seconds(5));  // the linger (3 s) is over
  EXPECT_TRUE(h.socketClosed);
  h.conn.finish();
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, OurCloseNeverAnsweredDrainsAfterTheCloseTimeout) {
  Harness h;
  h.opened();
  h.conn.close(kCloseGoingAway, {}, t0);
  EXPECT_EQ(h.conn.nextDeadline(), t0 + seconds(5));
  h.conn.tick(t0 + milliseconds(4999));
  EXPECT_EQ(h.conn.state(), Connection::State::kClosing);
  EXPECT_EQ(h.closes, 0);
  h.conn.tick(t0 + seconds(5));
  EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
  EXPECT_EQ(h.closes, 1);
  EXPECT_EQ(h.halfCloses, 1);
  EXPECT_EQ(h.conn.peerCloseCode(), 0);
  h.conn.tick(t0 + seconds(8));
  EXPECT_TRUE(h.socketClosed);
}

TEST(WsConnection, ThePeersCloseIsEchoedWithItsCode) {
  Harness h;
  h.opened();
  h.feed(closeWith(4001, "done"), t0);
  ASSERT_EQ(h.frames().size(), 1u);
  EXPECT_EQ(h.frames()[0].opcode, 0x8);
  EXPECT_EQ(h.frames()[0].payload.size(), 2u);  // the code, no reason
  EXPECT_EQ(codeOf(h.frames()[0]), 4001);
  EXPECT_EQ(h.conn.peerCloseCode(), 4001);
  EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
  EXPECT_EQ(h.closes, 1);
  EXPECT_EQ(h.halfCloses, 1);
  EXPECT_EQ(h.conn.sendText("after"), Connection::SendResult::kClosed);
  EXPECT_EQ(h.frames().size(), 1u);
}

TEST(WsConnection, AnEmptyCloseIsEchoedEmpty) {
  Harness h;
  h.opened();
  h.feed(clientFrame(0x8, {}), t0);
  ASSERT_EQ(h.frames().size(), 1u);
  EXPECT_EQ(h.frames()[0].opcode, 0x8);
  EXPECT_TRUE(h.frames()[0].payload.empty());  // 1005 is never sent
  EXPECT_EQ(h.conn.peerCloseCode(), 0);
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, AProtocolErrorClosesWithItsCodeAndDrains) {
  struct Case {
    std::string bytes;
    uint16_t code;
  };
  ConnectionOptions o;
  o.maxMessageBytes = 100;
  std::vector<Case> cases = {
      {clientFrame(0x1, "unmasked", true, false), kCloseProtocolError},
      {clientFrame(0x3, "reserved opcode"), kCloseProtocolError},
      {text("\xff\xfe"), kCloseBadData},
      {text(std::string(101, 'x')), kCloseTooBig},
  };
  for (auto& c : cases) {
    Harness h(o);
    h.opened();
    h.feed(text("ok") + c.bytes + text("never"), t0);
    ASSERT_EQ(h.messages.size(), 1u);
    ASSERT_EQ(h.frames().size(), 1u);
    EXPECT_EQ(codeOf(h.frames()[0]), c.code);
    EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
    EXPECT_EQ(h.conn.heldBytes(), 0u);
    EXPECT_EQ(h.closes, 1);
    EXPECT_EQ(h.halfCloses, 1);
  }
}

TEST(WsConnection, TheLingerIsBoundedInBytes) {
  ConnectionOptions o;
  o.lingerBytes = 1000;
  Harness h(o);
  h.opened();
  h.feed(closeWith(kCloseNormal), t0);
  ASSERT_EQ(h.halfCloses, 1);
  std::string junk(600, 'j');
  h.feed(junk, t0 + milliseconds(10));
  EXPECT_FALSE(h.socketClosed);
  h.feed(junk, t0 + milliseconds(20));  // 1200 > 1000
  EXPECT_TRUE(h.socketClosed);
  EXPECT_TRUE(h.messages.empty());
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, TheHalfCloseWaitsForTheQueueAndTheQueueIsBounded) {
  Harness h;
  h.opened();
  h.room = 0;  // the socket takes nothing for now
  h.feed(closeWith(kCloseNormal), t0);
  EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
  EXPECT_EQ(h.halfCloses, 0);  // our echo is still queued
  h.drain(t0 + seconds(1));
  EXPECT_EQ(h.halfCloses, 1);
  EXPECT_EQ(codeOf(h.frames().back()), kCloseNormal);
  EXPECT_EQ(h.conn.nextDeadline(), t0 + seconds(4));  // the linger runs from the half-close

  Harness stuck;
  stuck.opened();
  stuck.room = 0;
  stuck.feed(closeWith(kCloseNormal), t0);
  stuck.conn.tick(t0 + seconds(5));  // a peer that never reads keeps no connection past the close timeout
  EXPECT_TRUE(stuck.socketClosed);
  EXPECT_EQ(stuck.halfCloses, 0);
  EXPECT_EQ(stuck.closes, 1);
}

TEST(WsConnection, ASlowConsumerIsClosedAndHearsOfItAfterItsSend) {
  ConnectionOptions o;
  o.maxQueuedBytes = 1000;
  Harness h(o);
  h.opened();
  h.room = 0;
  std::string payload(300, 'p');
  int queued = 0;
  while (h.conn.sendText(payload) == Connection::SendResult::kQueued) ++queued;
  EXPECT_EQ(queued, 3);  // 3 × 304 bytes fit, the fourth passes 1000
  EXPECT_TRUE(h.socketClosed);
  EXPECT_EQ(h.conn.state(), Connection::State::kDead);
  EXPECT_EQ(h.closes, 0);  // never from inside the application's own send
  EXPECT_EQ(h.conn.sendText(payload), Connection::SendResult::kClosed);
  h.conn.finish();
  EXPECT_EQ(h.closes, 1);
  h.conn.finish();
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, AFailedWriteClosesTheSocketAndTheApplicationHearsAtFinish) {
  Harness h;
  h.opened();
  h.failWrites = true;
  EXPECT_EQ(h.conn.sendBinary("x"), Connection::SendResult::kClosed);
  EXPECT_TRUE(h.socketClosed);
  EXPECT_EQ(h.closes, 0);
  h.conn.finish();
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, ThePeersEndClosesAtOnce) {
  Harness h;
  h.opened();
  h.conn.receiveEnd();
  EXPECT_TRUE(h.socketClosed);
  EXPECT_EQ(h.closes, 1);
  h.conn.tick(t0 + seconds(100));
  h.conn.finish();
  EXPECT_EQ(h.closes, 1);
}

TEST(WsConnection, MessagesSplitAtEveryByte) {
  std::string fragmented = clientFrame(0x1, "frag", false) + clientFrame(0x9, "p") + clientFrame(0x0, "men", false) +
                           clientFrame(0x0, "ted", true);
  std::string wire = text("hello") + clientFrame(0x2, std::string("\0\1\2", 3)) + fragmented +
                     text(std::string(300, 'm')) + clientFrame(0xA, {}) + text("");
  for (std::size_t split = 1; split <= wire.size(); ++split) {
    Harness h;
    h.opened();
    for (std::size_t at = 0; at < wire.size(); at += split) h.feed(wire.substr(at, split), t0);
    ASSERT_EQ(h.messages.size(), 5u) << split;
    EXPECT_EQ(h.messages[0], std::pair(std::string("hello"), false));
    EXPECT_EQ(h.messages[1], std::pair(std::string("\0\1\2", 3), true));
    EXPECT_EQ(h.messages[2], std::pair(std::string("fragmented"), false));
    EXPECT_EQ(h.messages[3].first, std::string(300, 'm'));
    EXPECT_EQ(h.messages[4].first, "");
    ASSERT_EQ(h.frames().size(), 1u);
    EXPECT_EQ(h.frames()[0].opcode, 0xA);  // the pong
    EXPECT_EQ(h.frames()[0].payload, "p");
    EXPECT_EQ(h.conn.heldBytes(), 0u);
    EXPECT_EQ(h.conn.state(), Connection::State::kOpen);
  }
}

TEST(WsConnection, WholeFramesAreParsedInPlaceAndNothingIsHeldWhileIdle) {
  Harness h;
  h.opened();
  h.feed(text("a") + text("b"), t0);
  EXPECT_EQ(h.messages.size(), 2u);
  EXPECT_EQ(h.conn.heldCapacity(), std::string().capacity());  // nothing was copied
  std::string big = text(std::string(10000, 'b'));
  h.feed(big.substr(0, 5000), t0);
  EXPECT_EQ(h.conn.heldBytes(), 5000u);
  h.feed(big.substr(5000), t0);
  EXPECT_EQ(h.conn.heldBytes(), 0u);
  EXPECT_EQ(h.conn.heldCapacity(), std::string().capacity());  // a large partial frame's buffer is freed once empty
}

TEST(WsConnection, PausedReadingKeepsWhatFollowsUntilResumed) {
  struct Pausing : Harness {
    void onMessage(std::string_view payload, bool binary) override {
      Harness::onMessage(payload, binary);
      if (payload == "move") conn.pause();
    }
  } h;
  h.opened();
  h.feed(text("one") + text("move") + text("two") + text("thr"), t0);
  ASSERT_EQ(h.messages.size(), 2u);
  EXPECT_TRUE(h.conn.paused());
  h.feed(text("four"), t0);  // read while moving: kept
  EXPECT_EQ(h.messages.size(), 2u);
  h.conn.resume(t0);
  ASSERT_EQ(h.messages.size(), 5u);
  EXPECT_EQ(h.messages[4].first, "four");
  EXPECT_EQ(h.conn.heldBytes(), 0u);
}

TEST(WsConnection, ARefusalIsWrittenAndDrainedWithoutEvents) {
  Harness h;
  h.conn.refuse("HTTP/1.1 404 Not Found\r\n\r\n", t0);
  EXPECT_EQ(h.sent, "HTTP/1.1 404 Not Found\r\n\r\n");
  EXPECT_EQ(h.conn.state(), Connection::State::kDraining);
  EXPECT_EQ(h.halfCloses, 1);
  EXPECT_EQ(h.conn.sendText("x"), Connection::SendResult::kClosed);
  h.conn.tick(t0 + seconds(3));
  EXPECT_TRUE(h.socketClosed);
  h.conn.finish();
  EXPECT_EQ(h.closes, 0);  // never opened: the application never heard of it
}

TEST(WsConnection, OnCloseOnceEvenWhenTheHandlerClosesFromOnClose) {
  struct Reentrant : Harness {
    void onClose() override {
      Harness::onClose();
      conn.close(kCloseNormal, "again", t0);
      EXPECT_EQ(conn.sendText("x"), Connection::SendResult::kClosed);
    }
  } h;
  h.opened();
  h.feed(closeWith(kCloseNormal), t0);
  h.conn.receiveEnd();
  h.conn.tick(t0 + seconds(60));
  h.conn.finish();
  EXPECT_EQ(h.closes, 1);
  EXPECT_EQ(h.frames().size(), 1u);
}

}  // namespace
}  // namespace kaiwa::ws
