// ws::Connection's hot path allocates nothing, once warm: whole frames read in place from the caller's buffer (text,
// binary, a ping answered), messages sent with header and payload handed to the link as two views, and the tick of
// an idle connection. (A partial frame's bytes and a fragmented message are kept, which may allocate; not counted.)
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "ws/connection.hpp"

#include "alloc_counter.hpp"

namespace kaiwa::ws {
namespace {

struct CountingLink final : Link, Events {
  bool write(std::string_view a, std::string_view b) override {
    bytes += a.size() + b.size();
    ++writes;
    return true;
  }
  std::size_t queued() const override { return 0; }
  void halfClose() override {}
  void closeSocket() override { closed = true; }
  void onMessage(std::string_view payload, bool) override { received += payload.size(); }
  void onClose() override { closed = true; }
  std::size_t bytes = 0, writes = 0, received = 0;
  bool closed = false;
};

// A masked client frame with a payload under 126 bytes.
std::string clientFrame(uint8_t opcode, std::string_view payload) {
  std::string f{static_cast<char>(0x80 | opcode), static_cast<char>(0x80 | payload.size()), 1, 2, 3, 4};
  for (std::size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ (1 + (i & 3))));
  return f;
}

TEST(WsConnectionHotPath, ReadingAndSendingMessagesAllocatesNothing) {
  allocations = 0;
  ConnectionOptions options;
  CountingLink link;
  Connection conn(options, link, link);
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  ASSERT_TRUE(conn.open("HTTP/1.1 101 Switching Protocols\r\n\r\n", now));
  const std::string wire = clientFrame(0x1, std::string(100, 't')) + clientFrame(0x2, std::string(120, 'b')) +
                           clientFrame(0x9, "ping") + clientFrame(0x1, "{\"type\":\"signal\"}");
  const std::string reply(300, 'r');  // as a front door hands its encoded frame over
  char buffer[1024];                  // the worker's read buffer
  for (int i = 0; i <= 1000; ++i) {
    std::memcpy(buffer, wire.data(), wire.size());
    counting = i > 0;
    conn.receive(buffer, wire.size(), now);
    EXPECT_EQ(conn.sendText(reply), Connection::SendResult::kQueued);
    EXPECT_EQ(conn.sendBinary(reply), Connection::SendResult::kQueued);
    conn.tick(now);
    counting = false;
  }
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_EQ(link.received, 1001u * (100 + 120 + 17));
  EXPECT_EQ(link.writes, 1 + 1001u * 3);  // the 101, then two messages and a pong per round
  EXPECT_FALSE(link.closed);
  EXPECT_EQ(conn.heldBytes(), 0u);
}

}  // namespace
}  // namespace kaiwa::ws
