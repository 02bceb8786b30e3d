// engineio::Session with a fake clock: what it sends on which transport, what it answers a long poll with, and when.
#include "signal/socketio/engineio.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace kaiwa;
using namespace kaiwa::signal::socketio;
using engineio::LinkId;
using engineio::Session;

namespace {

constexpr LinkId kWs = 1, kProbe = 2, kOther = 3;

struct Recorder final : Session::Listener {
  struct Frame {
    LinkId link;
    std::string data;
    bool binary;
  };
  struct Closed {
    LinkId link;
    uint16_t code;
    std::string reason;
  };
  std::vector<Frame> frames;
  std::vector<Closed> linksClosed;
  std::vector<std::string> polls;     // answers to held long polls
  std::vector<std::string> messages;  // up to the Socket.IO layer ("b:" before a binary one)
  int upgraded = 0;
  std::vector<std::string> closed;

  void sendFrame(LinkId link, std::string frame, bool binary) override {
    frames.push_back({link, std::move(frame), binary});
  }
  void closeLink(LinkId link, uint16_t code, std::string_view reason) override {
    linksClosed.push_back({link, code, std::string(reason)});
  }
  void answerPoll(std::string body) override { polls.push_back(std::move(body)); }
  void onMessage(std::string_view data, bool binary, TimePoint) override {
    messages.push_back((binary ? "b:" : "") + std::string(data));
  }
  void onUpgraded() override { ++upgraded; }
  void onClosed(std::string_view why) override { closed.emplace_back(why); }
};

class EngineIoTest : public ::testing::Test {
 protected:
  EngineIoTest() {
    config.pingInterval = Millis(25000);
    config.pingTimeout = Millis(20000);
    config.upgradeTimeout = Millis(10000);
    config.connectTimeout = Millis(10000);
    config.maxPayload = 100;
    config.maxQueuedBytes = 64;
  }

  // A session on a direct WebSocket whose socket connected (no connect timeout).
  void openWebSocket() {
    session.openWebSocket(kWs, t0);
    session.socketConnected();
  }
  void openPolling() {
    open = session.openPolling(t0);
    session.socketConnected();
  }

  engineio::Config config;
  Recorder rec;
  Session session{rec, config, "0.abcdefghijklmnopqrst"};
  TimePoint t0 = TimePoint{} + std::chrono::hours(1);
  std::string open;
};

TEST_F(EngineIoTest, ADirectWebSocketGetsTheOpenPacketWithoutUpgrades) {
  session.openWebSocket(kWs, t0);
  ASSERT_EQ(rec.frames.size(), 1u);
  EXPECT_EQ(rec.frames[0].link, kWs);
  EXPECT_EQ(
      rec.frames[0].data,
      R"(0{"sid":"0.abcdefghijklmnopqrst","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100})");
  EXPECT_EQ(session.webSocket(), kWs);
  EXPECT_FALSE(session.polling());
}

TEST_F(EngineIoTest, APollingHandshakeOffersTheUpgrade) {
  openPolling();
  EXPECT_EQ(
      open,
      R"(0{"sid":"0.abcdefghijklmnopqrst","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100})");
  EXPECT_TRUE(session.polling());
  EXPECT_TRUE(rec.frames.empty());
}

TEST_F(EngineIoTest, PingsOnScheduleAndClosesWhenThePongIsLate) {
  openWebSocket();
  rec.frames.clear();
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(25000));
  session.tick(t0 + Millis(24999));
  EXPECT_TRUE(rec.frames.empty());
  session.tick(t0 + Millis(25000));
  ASSERT_EQ(rec.frames.size(), 1u);
  EXPECT_EQ(rec.frames[0].data, "2");
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(45000));  // the pong's deadline
  session.tick(t0 + Millis(44999));
  EXPECT_TRUE(rec.closed.empty());
  session.tick(t0 + Millis(45000));
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], "ping timeout");
  ASSERT_EQ(rec.linksClosed.size(), 1u);
  EXPECT_EQ(rec.linksClosed[0].code, engineio::kCloseNormal);
  EXPECT_EQ(session.nextDeadline(), TimePoint::max());
}

TEST_F(EngineIoTest, APongPutsTheNextPingAPingIntervalAfterIt) {
  openWebSocket();
  session.tick(t0 + Millis(25000));
  session.onFrame(kWs, "3", false, t0 + Millis(30000));
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(55000));
  session.tick(t0 + Millis(45000));  // the old pong deadline: nothing
  EXPECT_TRUE(rec.closed.empty());
  // A pong nobody asked for changes nothing.
  session.onFrame(kWs, "3", false, t0 + Millis(50000));
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(55000));
}

TEST_F(EngineIoTest, AClientPingIsAnswered) {
  openWebSocket();
  rec.frames.clear();
  session.onFrame(kWs, "2hello", false, t0);
  ASSERT_EQ(rec.frames.size(), 1u);
  EXPECT_EQ(rec.frames[0].data, "3hello");
}

TEST_F(EngineIoTest, ClosesASessionWhoseSocketNeverConnects) {
  session.openWebSocket(kWs, t0);
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(10000));
  session.tick(t0 + Millis(9999));
  EXPECT_TRUE(rec.closed.empty());
  session.tick(t0 + Millis(10000));
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], "connect timeout");
  EXPECT_EQ(rec.frames.back().data, "1");  // a close packet first
}

TEST_F(EngineIoTest, AConnectedSocketLiftsTheConnectTimeout) {
  session.openWebSocket(kWs, t0);
  session.socketConnected();
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(25000));
  session.tick(t0 + Millis(10000));
  EXPECT_TRUE(rec.closed.empty());
}

TEST_F(EngineIoTest, MessagesGoUpWithoutTheTypeDigit) {
  openWebSocket();
  session.onFrame(kWs, R"(42["offer",{}])", false, t0);
  session.onFrame(kWs, std::string("\x01\x02", 2), true, t0);
  ASSERT_EQ(rec.messages.size(), 2u);
  EXPECT_EQ(rec.messages[0], R"(2["offer",{}])");
  EXPECT_EQ(rec.messages[1], std::string("b:\x01\x02", 4));
}

TEST_F(EngineIoTest, AFrameOverMaxPayloadClosesWith1009) {
  openWebSocket();
  session.onFrame(kWs, "4" + std::string(100, 'x'), false, t0);
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], "payload too large");
  ASSERT_EQ(rec.linksClosed.size(), 1u);
  EXPECT_EQ(rec.linksClosed[0].code, engineio::kCloseTooBig);
  EXPECT_TRUE(rec.messages.empty());
}

TEST_F(EngineIoTest, ABadFrameClosesWith1008) {
  openWebSocket();
  session.onFrame(kWs, "9", false, t0);
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.linksClosed[0].code, engineio::kClosePolicy);
  // An open packet on an established transport too.
  Recorder rec2;
  Session s2(rec2, config, "0.x");
  s2.openWebSocket(kWs, t0);
  s2.onFrame(kWs, "0", false, t0);
  ASSERT_EQ(rec2.closed.size(), 1u);
  EXPECT_EQ(rec2.closed[0], "unexpected packet");
}

TEST_F(EngineIoTest, FramesOfAStaleTransportAreIgnored) {
  openWebSocket();
  session.onFrame(kOther, "4hello", false, t0);
  EXPECT_TRUE(rec.messages.empty());
  EXPECT_TRUE(rec.closed.empty());
}

TEST_F(EngineIoTest, ClientCloseAndTransportCloseEndTheSession) {
  openWebSocket();
  session.onFrame(kWs, "1", false, t0);
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], "client close");
  session.onFrame(kWs, "4late", false, t0);  // nothing after the close
  EXPECT_TRUE(rec.messages.empty());

  Recorder rec2;
  Session s2(rec2, config, "0.x");
  s2.openWebSocket(kWs, t0);
  s2.onLinkClosed(kWs);
  ASSERT_EQ(rec2.closed.size(), 1u);
  EXPECT_EQ(rec2.closed[0], "transport close");
}

TEST_F(EngineIoTest, ACloseSendsTheClosePacketAndClosesOnce) {
  openWebSocket();
  rec.frames.clear();
  session.close("shutdown", true, engineio::kCloseGoingAway);
  session.close("again", true);
  ASSERT_EQ(rec.frames.size(), 1u);
  EXPECT_EQ(rec.frames[0].data, "1");
  ASSERT_EQ(rec.linksClosed.size(), 1u);
  EXPECT_EQ(rec.linksClosed[0].code, engineio::kCloseGoingAway);
  EXPECT_EQ(rec.closed.size(), 1u);
  session.sendMessage("2[\"x\"]");  // nothing is sent after the close
  EXPECT_EQ(rec.frames.size(), 1u);
}

// --- long polling

TEST_F(EngineIoTest, ALongPollIsHeldUntilSomethingIsSent) {
  openPolling();
  auto get = session.onPollGet(t0);
  EXPECT_EQ(get.kind, Session::GetAnswer::Kind::kHold);
  session.sendMessage(R"(2["a"])");
  ASSERT_EQ(rec.polls.size(), 1u);
  EXPECT_EQ(rec.polls[0], R"(42["a"])");
  // Queued while no poll is held, then all of it at the next poll.
  session.sendMessage(R"(2["b"])");
  session.sendMessage(R"(2["c"])");
  EXPECT_EQ(rec.polls.size(), 1u);
  get = session.onPollGet(t0);
  EXPECT_EQ(get.kind, Session::GetAnswer::Kind::kNow);
  EXPECT_EQ(get.body,
            "42[\"b\"]\x1e"
            "42[\"c\"]");
}

TEST_F(EngineIoTest, TheServersPingGoesToTheLongPoll) {
  openPolling();
  session.onPollGet(t0);
  session.tick(t0 + Millis(25000));
  ASSERT_EQ(rec.polls.size(), 1u);
  EXPECT_EQ(rec.polls[0], "2");
  EXPECT_EQ(session.onPollPost("3", t0 + Millis(26000)), Session::PostAnswer::kOk);
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(51000));
}

TEST_F(EngineIoTest, APostBodyIsHandledPacketByPacket) {
  openPolling();
  EXPECT_EQ(session.onPollPost("4one\x1e"
                               "4two\x1e"
                               "bAQI=",
                               t0),
            Session::PostAnswer::kOk);
  ASSERT_EQ(rec.messages.size(), 3u);
  EXPECT_EQ(rec.messages[0], "one");
  EXPECT_EQ(rec.messages[1], "two");
  EXPECT_EQ(rec.messages[2], std::string("b:\x01\x02", 4));
  // A close in the middle: what follows it is not handled.
  EXPECT_EQ(session.onPollPost("1\x1e"
                               "4three",
                               t0),
            Session::PostAnswer::kOk);
  EXPECT_EQ(rec.messages.size(), 3u);
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(session.onPollPost("4four", t0), Session::PostAnswer::kUnknownSid);
}

TEST_F(EngineIoTest, APostOverMaxPayloadIs413AndCloses) {
  openPolling();
  session.onPollGet(t0);
  EXPECT_EQ(session.onPollPost("4" + std::string(100, 'x'), t0), Session::PostAnswer::kTooLarge);
  ASSERT_EQ(rec.closed.size(), 1u);
  ASSERT_EQ(rec.polls.size(), 1u);
  EXPECT_EQ(rec.polls[0], "1");  // the held poll learns of the close
}

TEST_F(EngineIoTest, AMalformedPostIsABadRequestAndCloses) {
  openPolling();
  EXPECT_EQ(session.onPollPost("4ok\x1e"
                               "x",
                               t0),
            Session::PostAnswer::kBadRequest);
  EXPECT_TRUE(rec.messages.empty());  // nothing of a bad body is handled
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], "parse error");
}

TEST_F(EngineIoTest, TwoLongPollsAtOnceCloseTheSession) {
  openPolling();
  EXPECT_EQ(session.onPollGet(t0).kind, Session::GetAnswer::Kind::kHold);
  EXPECT_EQ(session.onPollGet(t0).kind, Session::GetAnswer::Kind::kBadRequest);
  ASSERT_EQ(rec.polls.size(), 1u);
  EXPECT_EQ(rec.polls[0], "1");
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], "overlapping polls");
}

TEST_F(EngineIoTest, ALongPollOfAWebSocketSessionIsABadRequest) {
  openWebSocket();
  EXPECT_EQ(session.onPollGet(t0).kind, Session::GetAnswer::Kind::kBadRequest);
  EXPECT_TRUE(rec.closed.empty());
}

TEST_F(EngineIoTest, WhatWaitsForALongPollIsBounded) {
  openPolling();
  session.sendMessage(std::string(30, 'a'));
  session.sendMessage(std::string(30, 'b'));
  EXPECT_TRUE(rec.closed.empty());
  session.sendMessage(std::string(30, 'c'));  // past maxQueuedBytes (64)
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], "slow consumer");
}

TEST_F(EngineIoTest, ClosingAnswersTheHeldPoll) {
  openPolling();
  session.onPollGet(t0);
  session.tick(t0 + Millis(25000));  // the ping answers it
  session.onPollGet(t0 + Millis(25000));
  session.tick(t0 + Millis(45000));  // no pong: closed, the poll answered with a noop
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], "ping timeout");
  ASSERT_EQ(rec.polls.size(), 2u);
  EXPECT_EQ(rec.polls[1], "6");
}

// --- the upgrade

TEST_F(EngineIoTest, TheUpgradeProbeMovesTheSessionToTheWebSocket) {
  openPolling();
  session.onPollGet(t0);
  session.attachProbe(kProbe, t0);
  EXPECT_EQ(session.probe(), kProbe);
  session.onFrame(kProbe, "2probe", false, t0);
  ASSERT_EQ(rec.frames.size(), 1u);
  EXPECT_EQ(rec.frames[0].link, kProbe);
  EXPECT_EQ(rec.frames[0].data, "3probe");
  ASSERT_EQ(rec.polls.size(), 1u);
  EXPECT_EQ(rec.polls[0], "6");  // the long poll returns so that the client can pause polling
  // A poll while upgrading returns at once, with what waits (a noop if nothing).
  auto get = session.onPollGet(t0);
  EXPECT_EQ(get.kind, Session::GetAnswer::Kind::kNow);
  EXPECT_EQ(get.body, "6");
  session.sendMessage(R"(2["queued"])");  // no poll held: it waits, and goes on the WebSocket at the upgrade
  session.onFrame(kProbe, "5", false, t0);
  EXPECT_EQ(rec.upgraded, 1);
  EXPECT_EQ(session.webSocket(), kProbe);
  EXPECT_EQ(session.probe(), engineio::kNoLink);
  EXPECT_FALSE(session.polling());
  ASSERT_EQ(rec.frames.size(), 2u);
  EXPECT_EQ(rec.frames[1].data, R"(42["queued"])");
  // From now on, frames of the WebSocket are the session's.
  session.onFrame(kProbe, "4hi", false, t0);
  ASSERT_EQ(rec.messages.size(), 1u);
  EXPECT_EQ(rec.messages[0], "hi");
  EXPECT_EQ(session.onPollGet(t0).kind, Session::GetAnswer::Kind::kBadRequest);
}

TEST_F(EngineIoTest, AProbeThatDoesNotFinishInTimeIsClosedAndTheSessionStaysOnPolling) {
  openPolling();
  session.attachProbe(kProbe, t0);
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(10000));
  session.onFrame(kProbe, "2probe", false, t0);
  session.tick(t0 + Millis(10000));
  ASSERT_EQ(rec.linksClosed.size(), 1u);
  EXPECT_EQ(rec.linksClosed[0].link, kProbe);
  EXPECT_EQ(rec.linksClosed[0].reason, "upgrade timeout");
  EXPECT_EQ(session.probe(), engineio::kNoLink);
  EXPECT_TRUE(rec.closed.empty());
  EXPECT_TRUE(session.polling());
  EXPECT_EQ(session.onPollGet(t0 + Millis(10000)).kind, Session::GetAnswer::Kind::kHold);  // not upgrading any more
  // A new probe may come.
  session.attachProbe(kOther, t0 + Millis(11000));
  EXPECT_EQ(session.probe(), kOther);
}

TEST_F(EngineIoTest, ABadProbeIsClosedAndASecondProbeIsRefused) {
  openPolling();
  EXPECT_TRUE(session.attachProbe(kProbe, t0));
  EXPECT_FALSE(session.attachProbe(kOther, t0));
  EXPECT_EQ(session.probe(), kProbe);
  session.onFrame(kProbe, "5", false, t0);  // an upgrade before the probe ping
  ASSERT_EQ(rec.linksClosed.size(), 1u);
  EXPECT_EQ(rec.linksClosed[0].link, kProbe);
  EXPECT_EQ(rec.linksClosed[0].code, engineio::kClosePolicy);
  EXPECT_EQ(session.probe(), engineio::kNoLink);
  EXPECT_TRUE(rec.closed.empty());
}

TEST_F(EngineIoTest, AProbeThatDropsLeavesTheSessionOnPolling) {
  openPolling();
  session.attachProbe(kProbe, t0);
  session.onFrame(kProbe, "2probe", false, t0);
  session.onLinkClosed(kProbe);
  EXPECT_EQ(session.probe(), engineio::kNoLink);
  EXPECT_TRUE(rec.closed.empty());
  EXPECT_EQ(session.onPollGet(t0).kind, Session::GetAnswer::Kind::kHold);
  EXPECT_EQ(session.nextDeadline(), t0 + Millis(25000));
}

TEST_F(EngineIoTest, AWebSocketSessionTakesNoProbe) {
  openWebSocket();
  EXPECT_FALSE(session.attachProbe(kProbe, t0));
  EXPECT_EQ(session.probe(), engineio::kNoLink);
}

TEST_F(EngineIoTest, ClosingClosesTheProbeToo) {
  openPolling();
  session.attachProbe(kProbe, t0);
  session.close("shutdown", true, engineio::kCloseGoingAway);
  ASSERT_EQ(rec.linksClosed.size(), 1u);
  EXPECT_EQ(rec.linksClosed[0].link, kProbe);
  EXPECT_EQ(rec.linksClosed[0].code, engineio::kCloseGoingAway);
}

TEST_F(EngineIoTest, FramesReadyForAWebSocketAreUnwrappedForALongPoll) {
  openPolling();
  session.sendFrame(R"(42["offer",{"from":"x"}])", false);
  session.sendFrame(std::string("\x01\x02", 2), true);
  auto get = session.onPollGet(t0);
  EXPECT_EQ(get.body,
            "42[\"offer\",{\"from\":\"x\"}]\x1e"
            "bAQI=");
}

}  // namespace
