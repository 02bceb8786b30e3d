// The Socket.IO socket layer with a fake clock: CONNECT and its refusals, DISCONNECT, events by the fast path and
// the DOM path, attachments, the rate limit, and what a client may not send.
#include "signal/socketio/socket.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace kaiwa;
using namespace kaiwa::signal::socketio;

namespace {

struct Recorder final : Socket::Listener {
  std::vector<std::string> sent;
  std::vector<std::string> errors;
  std::vector<std::string> connected;  // the auth tokens
  std::vector<std::string> answers;    // the CONNECT answers handed up to be sent
  int disconnected = 0;
  std::vector<SioPacket> events;
  std::vector<RelayEvent> relayed;
  std::vector<std::pair<std::optional<uint64_t>, std::string>> limited;

  void sendPacket(std::string text) override { sent.push_back(std::move(text)); }
  void protocolError(std::string_view why) override { errors.emplace_back(why); }
  void onConnected(std::string_view token, std::string answer, TimePoint) override {
    connected.emplace_back(token);
    answers.push_back(std::move(answer));
  }
  void onDisconnected() override { ++disconnected; }
  void onEvent(SioPacket p, TimePoint) override { events.push_back(std::move(p)); }
  void onRelayEvent(RelayEvent& e, TimePoint) override { relayed.push_back(std::move(e)); }
  void onRateLimited(std::optional<uint64_t> ack, std::string_view event, TimePoint) override {
    limited.emplace_back(ack, std::string(event));
  }
};

class SocketTest : public ::testing::Test {
 protected:
  void connect(std::string_view packet = "0") {
    socket.onMessage(packet, false, t0);
    ASSERT_TRUE(socket.connected());
    sent0 = rec.sent.size();
  }

  TimePoint t0 = TimePoint{} + std::chrono::hours(1);
  Socket::Config config;
  Recorder rec;
  Socket socket{rec, config, t0};
  std::size_t sent0 = 0;
};

TEST_F(SocketTest, ConnectAnswersWithANewSocketId) {
  socket.onMessage("0", false, t0);
  ASSERT_TRUE(socket.connected());
  EXPECT_EQ(socket.id().size(), 20u);
  EXPECT_TRUE(rec.sent.empty());  // the answer is the listener's to send, when the socket is in its room
  ASSERT_EQ(rec.answers.size(), 1u);
  EXPECT_EQ(rec.answers[0], R"(0{"sid":")" + std::string(socket.id()) + R"("})");
  ASSERT_EQ(rec.connected.size(), 1u);
  EXPECT_EQ(rec.connected[0], "");
  socket.onMessage("0", false, t0);  // connected already: nothing
  EXPECT_TRUE(rec.sent.empty());
  EXPECT_EQ(rec.connected.size(), 1u);
}

TEST_F(SocketTest, AnotherNamespaceIsRefusedAndTheConnectionStays) {
  socket.onMessage("0/admin,", false, t0);
  EXPECT_FALSE(socket.connected());
  ASSERT_EQ(rec.sent.size(), 1u);
  EXPECT_EQ(rec.sent[0], R"(4/admin,{"message":"Invalid namespace"})");
  EXPECT_TRUE(rec.errors.empty());
  socket.onMessage("0", false, t0);
  EXPECT_TRUE(socket.connected());
}

TEST_F(SocketTest, TheAuthTokenIsKeptOnlyWhereItIsChecked) {
  socket.onMessage(R"(0{"token":"abc"})", false, t0);
  ASSERT_EQ(rec.connected.size(), 1u);
  EXPECT_EQ(rec.connected[0], "");  // keepAuthToken off

  Socket::Config keep;
  keep.keepAuthToken = true;
  Recorder rec2;
  Socket s2(rec2, keep, t0);
  s2.onMessage(R"(0{"token":"abc"})", false, t0);
  ASSERT_EQ(rec2.connected.size(), 1u);
  EXPECT_EQ(rec2.connected[0], "abc");
  s2.onMessage("1", false, t0);
  s2.onMessage(R"(0{"token":")" + std::string(kMaxTokenBytes + 1, 'x') + "\"}", false, t0);  // too long: no token
  ASSERT_EQ(rec2.connected.size(), 2u);
  EXPECT_EQ(rec2.connected[1], "");
}

TEST_F(SocketTest, DisconnectEndsTheSocketAndAReconnectGetsANewId) {
  connect();
  std::string first(socket.id());
  socket.onMessage("1", false, t0);
  EXPECT_FALSE(socket.connected());
  EXPECT_EQ(rec.disconnected, 1);
  socket.disconnect();  // once
  EXPECT_EQ(rec.disconnected, 1);
  socket.onMessage("0", false, t0);
  EXPECT_NE(socket.id(), first);
}

TEST_F(SocketTest, RelayedEventsTakeTheFastPath) {
  connect();
  socket.onMessage(R"(27["offer",{"to":"abcdefghijklmnopqrst","sdp":"x"}])", false, t0);
  ASSERT_EQ(rec.relayed.size(), 1u);
  EXPECT_TRUE(rec.events.empty());
  const RelayEvent& e = rec.relayed[0];
  EXPECT_EQ(e.route, EventRoute::kDirected);
  EXPECT_EQ(e.target, "abcdefghijklmnopqrst");
  EXPECT_EQ(e.ackId, 7u);
  EXPECT_EQ(e.frame, R"(42["offer",{"from":")" + std::string(socket.id()) + R"(","sdp":"x"}])");
}

TEST_F(SocketTest, OtherEventsGoUpParsed) {
  connect();
  socket.onMessage(R"(23["join-room","r"])", false, t0);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0].ackId, 3u);
  EXPECT_EQ(rec.events[0].data->as_array()[1].as_string(), "r");
}

TEST_F(SocketTest, EventsBeforeConnectOrOfAnotherNamespaceAreDropped) {
  socket.onMessage(R"(2["offer",{"to":"abcdefghijklmnopqrst"}])", false, t0);
  socket.onMessage(R"(2["join-room","r"])", false, t0);
  connect();
  socket.onMessage(R"(2/admin,["join-room","r"])", false, t0);
  EXPECT_TRUE(rec.events.empty());
  EXPECT_TRUE(rec.relayed.empty());
  EXPECT_TRUE(rec.errors.empty());
}

TEST_F(SocketTest, AMalformedPacketIsAProtocolError) {
  connect();
  socket.onMessage("2[1,2", false, t0);
  ASSERT_EQ(rec.errors.size(), 1u);
  EXPECT_EQ(rec.errors[0], "parse error");
}

TEST_F(SocketTest, AcksFromClientsAreDropped) {
  connect();
  socket.onMessage("31[]", false, t0);
  EXPECT_TRUE(rec.events.empty());
  EXPECT_TRUE(rec.errors.empty());
  EXPECT_EQ(rec.sent.size(), sent0);
}

TEST_F(SocketTest, BinaryEventsWaitForTheirAttachments) {
  connect();
  socket.onMessage(R"(51-["signal",{"_placeholder":true,"num":0}])", false, t0);
  EXPECT_TRUE(rec.events.empty());
  socket.onMessage("\x01\x02", true, t0);
  ASSERT_EQ(rec.events.size(), 1u);
  ASSERT_EQ(rec.events[0].buffers.size(), 1u);
  EXPECT_EQ(rec.events[0].buffers[0], "\x01\x02");
}

TEST_F(SocketTest, AttachmentsOutOfPlaceAreProtocolErrors) {
  connect();
  socket.onMessage("\x01", true, t0);  // nobody announced it
  ASSERT_EQ(rec.errors.size(), 1u);
  EXPECT_EQ(rec.errors[0], "bad attachment");

  socket.onMessage(R"(51-["signal",{"_placeholder":true,"num":0}])", false, t0);
  socket.onMessage(R"(2["signal",{}])", false, t0);  // a text packet while the attachment is due
  ASSERT_EQ(rec.errors.size(), 2u);
  EXPECT_EQ(rec.errors[1], "attachments missing");

  Recorder rec2;
  Socket s2(rec2, config, t0);
  s2.onMessage("0", false, t0);
  s2.onMessage(R"(51-["signal",{"_placeholder":true,"num":3}])", false, t0);  // names an attachment that is not there
  s2.onMessage("\x01", true, t0);
  ASSERT_EQ(rec2.errors.size(), 1u);
  EXPECT_EQ(rec2.errors[0], "illegal attachments");
}

TEST_F(SocketTest, AttachmentsOverMaxPayloadAreAProtocolError) {
  Socket::Config small;
  small.maxPayload = 4;
  Recorder rec2;
  Socket s2(rec2, small, t0);
  s2.onMessage("0", false, t0);
  s2.onMessage(R"(51-["signal",{"_placeholder":true,"num":0}])", false, t0);
  s2.onMessage("12345", true, t0);
  ASSERT_EQ(rec2.errors.size(), 1u);
  EXPECT_TRUE(rec2.events.empty());
}

TEST_F(SocketTest, TheRateLimitCountsConnectAndEventsAndRefillsWithTime) {
  Socket::Config limited;
  limited.messagesPerSecond = 1;
  limited.burst = 2;
  Recorder rec2;
  Socket s2(rec2, limited, t0);
  s2.onMessage("0", false, t0);                                             // 1
  s2.onMessage(R"(2["offer",{"to":"abcdefghijklmnopqrst"}])", false, t0);   // 2
  s2.onMessage(R"(21["offer",{"to":"abcdefghijklmnopqrst"}])", false, t0);  // over: fast path
  s2.onMessage(R"(22["join-room","r"])", false, t0);                        // over: DOM path
  EXPECT_EQ(rec2.relayed.size(), 1u);
  EXPECT_TRUE(rec2.events.empty());
  ASSERT_EQ(rec2.limited.size(), 2u);
  EXPECT_EQ(rec2.limited[0].first, 1u);
  EXPECT_EQ(rec2.limited[0].second, "offer");
  EXPECT_EQ(rec2.limited[1].first, 2u);
  EXPECT_EQ(rec2.limited[1].second, "join-room");
  s2.onMessage(R"(2["join-room","r"])", false, t0 + Millis(1000));  // one token back a second later
  EXPECT_EQ(rec2.events.size(), 1u);
  // A CONNECT over the rate is refused with CONNECT_ERROR.
  s2.onMessage("1", false, t0 + Millis(1000));
  s2.onMessage("0", false, t0 + Millis(1000));
  EXPECT_FALSE(s2.connected());
  EXPECT_EQ(rec2.sent.back(), R"(4{"message":"rate-limited: too many messages, slow down"})");
}

}  // namespace
