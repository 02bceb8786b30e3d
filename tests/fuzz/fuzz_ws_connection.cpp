// fuzz_ws_connection: ws::Connection (the RFC 6455 connection state machine) driven by a script of steps read from
// the input — peer bytes (raw, or well-formed masked frames), the application's sends and closes (also from inside
// its message handler), timer ticks, a socket that takes only so much, the peer's end, a failed socket, pauses — over
// a fake socket and a fake clock.
// Invariants: nothing throws or crashes; onClose is heard at most once, and exactly once after finish() by a
// connection that was opened; no message after it; the bytes written are well-formed server frames after the 101,
// and nothing follows our close frame; nothing is written after the socket is closed or half-closed; the half-close
// comes only with nothing queued, at most once; a send reported queued only while open; what is queued stays within
// the limit (else the socket is closed).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "ws/connection.hpp"

using namespace kaiwa;
using namespace kaiwa::ws;

namespace {

constexpr std::string_view kUpgrade = "HTTP/1.1 101 Switching Protocols\r\n\r\n";

struct Input {
  const uint8_t* p;
  const uint8_t* end;
  bool empty() const { return p == end; }
  uint8_t byte() { return p < end ? *p++ : 0; }
  std::string bytes(std::size_t n) {
    n = std::min<std::size_t>(n, std::size_t(end - p));
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
};

struct Harness final : Link, Events {
  explicit Harness(const ConnectionOptions& o) : conn(o, *this, *this), maxQueued(o.maxQueuedBytes) {}

  bool write(std::string_view a, std::string_view b) override {
    FUZZ_CHECK(!socketClosed);
    FUZZ_CHECK(!halfClosed);
    wire.append(a).append(b);
    std::size_t n = a.size() + b.size();
    std::size_t taken = queue == 0 ? std::min(room, n) : 0;
    room -= taken;
    queue += n - taken;
    return !failWrites;
  }
  std::size_t queued() const override { return queue; }
  void halfClose() override {
    FUZZ_CHECK(queue == 0);
    FUZZ_CHECK(!halfClosed);
    FUZZ_CHECK(!socketClosed);
    halfClosed = true;
  }
  void closeSocket() override {
    FUZZ_CHECK(!socketClosed);
    socketClosed = true;
  }
  void onMessage(std::string_view payload, bool) override {
    FUZZ_CHECK(closes == 0);
    FUZZ_CHECK(conn.state() == Connection::State::kOpen);
    // The application answers from inside its handler, as front doors do.
    if (payload.starts_with("s")) checkSend(conn.sendText(payload));
    if (payload.starts_with("c")) conn.close(kCloseNormal, payload, now);
    if (payload.starts_with("p")) conn.pause();
  }
  void onClose() override {
    FUZZ_CHECK(closes == 0);
    FUZZ_CHECK(conn.opened());
    ++closes;
    checkSend(conn.sendBinary("after"));
  }

  void checkSend(Connection::SendResult r) {
    if (r == Connection::SendResult::kQueued) {
      FUZZ_CHECK(conn.state() == Connection::State::kOpen);
      FUZZ_CHECK(queue <= maxQueued);
    }
  }

  Connection conn;
  std::size_t maxQueued;
  std::string wire;  // everything written, taken or queued
  std::size_t room = SIZE_MAX, queue = 0;
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  int closes = 0;
  bool socketClosed = false, halfClosed = false, failWrites = false;
};

std::string maskedFrame(uint8_t first, std::string_view payload) {
  std::string f(1, static_cast<char>(first));
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(0x80 | payload.size()));
  } else {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xFF));
  }
  const char key[4] = {0x11, 0x22, 0x33, 0x44};
  f.append(key, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ key[i & 3]));
  return f;
}

// The server frames in `wire` after the 101: each well-formed; nothing after a close frame.
void checkWire(std::string_view wire) {
  FUZZ_CHECK(wire.starts_with(kUpgrade));
  wire.remove_prefix(kUpgrade.size());
  bool closed = false;
  while (!wire.empty()) {
    FUZZ_CHECK(!closed, wire);
    FUZZ_CHECK(wire.size() >= 2, wire);
    auto b0 = uint8_t(wire[0]), b1 = uint8_t(wire[1]);
    FUZZ_CHECK((b0 & 0xF0) == 0x80, wire);  // FIN, no RSV bits
    FUZZ_CHECK((b1 & 0x80) == 0, wire);     // unmasked
    uint8_t op = b0 & 0x0F;
    FUZZ_CHECK(op == 0x1 || op == 0x2 || op == 0x8 || op == 0x9 || op == 0xA, wire);
    uint64_t len = b1 & 0x7F;
    std::size_t h = 2;
    if (len == 126) {
      FUZZ_CHECK(wire.size() >= 4);
      len = (uint64_t(uint8_t(wire[2])) << 8) | uint8_t(wire[3]);
      h = 4;
    } else if (len == 127) {
      FUZZ_CHECK(wire.size() >= 10);
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | uint8_t(wire[2 + i]);
      h = 10;
    }
    FUZZ_CHECK(wire.size() >= h + len, wire);
    if (op == 0x8) {
      closed = true;
      FUZZ_CHECK(len != 1 && len <= 125, wire);
      if (len >= 2) {
        uint16_t code = uint16_t((uint8_t(wire[h]) << 8) | uint8_t(wire[h + 1]));
        FUZZ_CHECK(code >= 1000 && code != 1005 && code != 1006, wire);
      }
    }
    wire.remove_prefix(h + len);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, data + size};
  ConnectionOptions o;
  o.maxMessageBytes = std::size_t(in.byte()) * 8 + 1;
  o.maxQueuedBytes = std::size_t(in.byte()) * 16 + 1;
  o.lingerBytes = std::size_t(in.byte()) * 64;
  o.messageTimeout = std::chrono::milliseconds((in.byte() % 4) * 1000);
  Harness h(o);
  if (!h.conn.open(kUpgrade, h.now)) return 0;
  using std::chrono::milliseconds;

  while (!in.empty()) {
    uint8_t op = in.byte();
    switch (op % 10) {
      case 0: {  // raw peer bytes
        std::string b = in.bytes(in.byte() % 64 + 1);
        h.conn.receive(b.data(), b.size(), h.now, op & 0x80);
        break;
      }
      case 1: {  // a masked frame: first byte (FIN, RSV, opcode) and payload from the input
        uint8_t first = in.byte();
        std::string payload = in.bytes(in.byte() % 200);
        std::string f = maskedFrame(first, payload);
        std::size_t split = f.size() ? in.byte() % f.size() : 0;  // sometimes in two reads
        h.conn.receive(f.data(), split, h.now);
        h.conn.receive(f.data() + split, f.size() - split, h.now);
        break;
      }
      case 2:
        h.checkSend((op & 0x10) ? h.conn.sendBinary(in.bytes(in.byte())) : h.conn.sendText(in.bytes(in.byte())));
        break;
      case 3: {
        uint16_t code = uint16_t(1000 + in.byte() % 16);
        if (code == 1005 || code == 1006) code = 1000;
        h.conn.close(code, in.bytes(in.byte() % 140), h.now);
        break;
      }
      case 4:
        h.now += milliseconds(std::size_t(in.byte()) * 97);
        h.conn.tick(h.now);
        FUZZ_CHECK(h.conn.state() == Connection::State::kDead || h.conn.nextDeadline() > h.now ||
                   h.conn.state() == Connection::State::kClosing || h.conn.state() == Connection::State::kDraining ||
                   !h.conn.opened());
        break;
      case 5:  // the socket takes only so much from now on
        h.room = std::size_t(in.byte()) * 4;
        break;
      case 6:  // the socket took everything queued
        if (!h.socketClosed) {
          h.queue = 0;
          h.room = SIZE_MAX;
          h.conn.sent(h.now);
        }
        break;
      case 7:
        if (op & 0x80) {
          h.conn.receiveEnd();
        } else if (op & 0x40) {
          h.failWrites = true;
        } else {
          h.conn.fail();
        }
        break;
      case 8:
        if (h.conn.paused()) {
          h.conn.resume(h.now);
        } else {
          h.conn.pause();
        }
        break;
      case 9:
        h.conn.receive(nullptr, 0, h.now, true);  // ciphertext without plaintext
        break;
    }
    FUZZ_CHECK(!(h.conn.state() == Connection::State::kDead) || h.socketClosed);
    FUZZ_CHECK(h.conn.state() == Connection::State::kDead || h.queue <= o.maxQueuedBytes);
  }
  h.conn.finish();
  FUZZ_CHECK(h.closes == 1);
  h.conn.finish();
  FUZZ_CHECK(h.closes == 1);
  checkWire(h.wire);
  return 0;
}
