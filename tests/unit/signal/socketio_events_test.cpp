// The guide's events (GuideEvents) on a real room core, with a fake clock: a few sockets, their room ops run in
// order on one RoomHost as a worker's task queue would run them, and what the rooms produce delivered back.
#include "signal/socketio/events.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "auth/jwt.hpp"
#include "signal/room.hpp"

using namespace kaiwa;
using namespace kaiwa::signal;
using namespace kaiwa::signal::socketio;

namespace {

struct World {
  World() = default;
  Limits limits;
  std::atomic<std::size_t> roomCount{0};
  RoomHost rooms{limits, roomCount};
  std::deque<RoomOp> ops;
  std::map<uint64_t, Membership*> endpoints;
  uint64_t nextEndpoint = 1;
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  int64_t wallSeconds = 1800000000;  // 2027-01-15

  // Runs the queued ops in order (and those they lead to), delivering what the rooms produce.
  void settle() {
    for (int i = 0; !ops.empty(); ++i) {
      ASSERT_LT(i, 10000);
      RoomOp op = std::move(ops.front());
      ops.pop_front();
      Outbox out;
      bool again = applyRoomOp(op, rooms, out, now);
      for (const auto& d : out) {
        if (auto it = endpoints.find(d.to.session); it != endpoints.end()) it->second->deliver(d.event);
      }
      if (again) ops.push_back(std::move(op));
    }
  }
};

struct Peer final : GuideEvents::Listener {
  Peer(World& w, const GuideEvents::Config& config, std::string id, std::string roomHint = {},
       std::string queryToken = {})
      : world(w), socketId(std::move(id)),
        events(*this, config, "192.0.2.1", std::move(roomHint), std::move(queryToken)) {}

  void sendPacket(std::string text) override { sent.push_back("4" + text); }
  void sendFrame(std::string_view frame, bool binary) override {
    sent.push_back((binary ? "b:" : "") + std::string(frame));
  }
  Endpoint attach(Membership& m) override {
    Endpoint ep{0, world.nextEndpoint++};
    world.endpoints[ep.session] = &m;
    return ep;
  }
  void detach(Endpoint ep) override { world.endpoints.erase(ep.session); }
  void run(RoomOp&& op) override { world.ops.push_back(std::move(op)); }
  bool moveToOwnerOf(const std::string& room, std::optional<uint64_t> ack) override {
    if (!moves) return false;
    movedFor.emplace_back(room);
    return true;
  }
  void close(std::string_view why, uint16_t code) override {
    closedWhy = why;
    closedCode = code;
  }
  TimePoint now() override { return world.now; }
  int64_t wallSeconds() override { return world.wallSeconds; }

  // Connects and takes the CONNECT's answer, which must come first once the implicit room has answered.
  void connect(std::string token = {}) {
    events.onConnected(socketId, token, answer(), world.now);
    world.settle();
    ASSERT_FALSE(sent.empty()) << "no CONNECT answer";
    EXPECT_EQ(sent.front(), "4" + answer());
    sent.erase(sent.begin());
  }
  std::string answer() const { return R"(0{"sid":")" + socketId + R"("})"; }
  // What Socket would hand up for the Socket.IO packet `text`: the fast path's RelayEvent, else the parsed packet.
  void emit(std::string_view text, bool relayUnknown = false) {
    if (auto e = decodeRelayEvent(text, socketId, relayUnknown)) {
      events.onRelayEvent(*e, world.now);
    } else {
      auto p = decodePacket(text);
      ASSERT_TRUE(p.has_value()) << text;
      events.onEvent(std::move(*p), world.now);
    }
    world.settle();
  }
  std::vector<std::string> take() { return std::exchange(sent, {}); }
  bool inAnyRoom() const { return events.inAnyRoom(); }

  World& world;
  std::string socketId;
  GuideEvents events;
  std::vector<std::string> sent;
  bool moves = false;
  std::vector<std::string> movedFor;
  std::string closedWhy;
  uint16_t closedCode = 0;
};

const std::string kA = "AAAAAAAAAAAAAAAAAAAA", kB = "BBBBBBBBBBBBBBBBBBBB", kC = "CCCCCCCCCCCCCCCCCCCC";

class GuideEventsTest : public ::testing::Test {
 protected:
  Peer& peer(const std::string& id, std::string roomHint = {}, std::string queryToken = {}) {
    peers.push_back(std::make_unique<Peer>(world, config, id, std::move(roomHint), std::move(queryToken)));
    return *peers.back();
  }
  // A and B connected and in room "r" (their join acks and announcements taken).
  void twoInRoom() {
    a = &peer(kA);
    b = &peer(kB);
    a->connect();
    b->connect();
    a->emit(R"(2["join-room","r"])");
    b->emit(R"(2["join-room","r"])");
    a->take();
    b->take();
  }

  World world;
  GuideEvents::Config config;
  std::vector<std::unique_ptr<Peer>> peers;
  Peer* a = nullptr;
  Peer* b = nullptr;
};

// A client that saw `connect` may at once be called by another socket of its room: the answer waits until the room
// core has the socket in its implicit room (a race the integration suite showed under ASan: a call-user sent right
// after the callee's `connect` was refused as "no such user").
TEST_F(GuideEventsTest, TheConnectAnswerWaitsUntilTheImplicitRoomHasTheSocket) {
  Peer& a = peer(kA);
  a.events.onConnected(kA, "", a.answer(), world.now);
  EXPECT_TRUE(a.sent.empty());  // the room op is still queued for the room's owner
  EXPECT_EQ(world.ops.size(), 1u);
  world.settle();
  EXPECT_EQ(a.take(), std::vector<std::string>{"4" + a.answer()});
}

TEST_F(GuideEventsTest, ASocketWithNoRoomToEnterIsAnsweredAtOnce) {
  config.authSecret = "secret";
  Peer& a = peer(kA);  // no token: in no room
  a.events.onConnected(kA, "", a.answer(), world.now);
  EXPECT_EQ(a.take(), std::vector<std::string>{"4" + a.answer()});
  EXPECT_FALSE(a.inAnyRoom());
}

TEST_F(GuideEventsTest, JoinRoomAcksWithTheOthersAndAnnouncesTheNewcomer) {
  Peer& a = peer(kA);
  Peer& b = peer(kB);
  a.connect();
  b.connect();
  EXPECT_TRUE(a.inAnyRoom());  // the implicit room
  a.emit(R"(21["join-room","r"])");
  EXPECT_EQ(a.take(), std::vector<std::string>{R"(431[{"ok":true,"peers":[]}])"});
  b.emit(R"(22["join-room","r"])");
  EXPECT_EQ(b.take(), std::vector<std::string>{R"(432[{"ok":true,"peers":["AAAAAAAAAAAAAAAAAAAA"]}])"});
  EXPECT_EQ(a.take(), std::vector<std::string>{R"(42["user-joined","BBBBBBBBBBBBBBBBBBBB"])"});
  EXPECT_EQ(world.rooms.size(), 1u);  // the implicit room was left by both and reaped
}

TEST_F(GuideEventsTest, ARepeatedJoinChangesNothingAndAcksWithTheOthersNow) {
  twoInRoom();
  a->emit(R"(25["join-room","r"])");
  EXPECT_EQ(a->take(), std::vector<std::string>{R"(435[{"ok":true,"peers":["BBBBBBBBBBBBBBBBBBBB"]}])"});
  EXPECT_TRUE(b->take().empty());
}

TEST_F(GuideEventsTest, ADirectedEventReachesItsTargetWithFromAndIsAcked) {
  twoInRoom();
  a->emit(R"(27["offer",{"to":"BBBBBBBBBBBBBBBBBBBB","sdp":"v=0"}])");
  EXPECT_EQ(b->take(), std::vector<std::string>{R"(42["offer",{"from":"AAAAAAAAAAAAAAAAAAAA","sdp":"v=0"}])"});
  EXPECT_EQ(a->take(), std::vector<std::string>{R"(437[{"ok":true}])"});
}

TEST_F(GuideEventsTest, ADirectedEventTriesTheSendersRoomsInTurn) {
  Peer& a = peer(kA);
  Peer& b = peer(kB);
  a.connect();
  b.connect();
  a.emit(R"(2["join-room","one"])");
  a.emit(R"(2["join-room","two"])");
  b.emit(R"(2["join-room","two"])");
  a.take();
  a.emit(R"(2["ice-candidate",{"to":"BBBBBBBBBBBBBBBBBBBB","candidate":"c"}])");
  auto got = b.take();
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), R"(42["ice-candidate",{"from":"AAAAAAAAAAAAAAAAAAAA","candidate":"c"}])");
}

TEST_F(GuideEventsTest, ADirectedEventToNobodyIsRefused) {
  twoInRoom();
  Peer& c = peer(kC);
  c.connect();  // in the implicit room, not in "r"
  a->emit(R"(21["offer",{"to":"CCCCCCCCCCCCCCCCCCCC"}])");
  auto got = a->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(431[{"error":"unknown-peer")", 0), 0u) << got[0];
  EXPECT_TRUE(c.take().empty());
  // To itself, or an id that cannot be a socket's: refused before any room is asked.
  a->emit(R"(22["offer",{"to":"AAAAAAAAAAAAAAAAAAAA"}])");
  a->emit(R"(23["offer",{"to":"short"}])");
  got = a->take();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rfind(R"(432[{"error":"unknown-peer")", 0), 0u);
  EXPECT_EQ(got[1].rfind(R"(433[{"error":"unknown-peer")", 0), 0u);
}

TEST_F(GuideEventsTest, ADirectedEventWithoutAnAckToNobodyIsNamedInKaiwaError) {
  twoInRoom();
  Peer& c = peer(kC);
  c.connect();  // in the implicit room, not in "r": the room core is asked, and nobody has it
  a->emit(R"(2["ice-candidate",{"to":"CCCCCCCCCCCCCCCCCCCC","candidate":"x"}])");
  auto got = a->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(42["kaiwa:error",{"error":"unknown-peer")", 0), 0u) << got[0];
  EXPECT_NE(got[0].find(R"("event":"ice-candidate")"), std::string::npos) << got[0];
  EXPECT_TRUE(c.take().empty());
  // Delivered without an ack: nothing comes back to the sender.
  a->emit(R"(2["answer",{"to":"BBBBBBBBBBBBBBBBBBBB","answer":"y"}])");
  EXPECT_TRUE(a->take().empty());
  EXPECT_EQ(b->take(), std::vector<std::string>{R"(42["answer",{"from":"AAAAAAAAAAAAAAAAAAAA","answer":"y"}])"});
}

TEST_F(GuideEventsTest, ADirectedEventWithoutToIsABadMessage) {
  twoInRoom();
  a->emit(R"(21["offer","no object"])");
  auto got = a->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(431[{"error":"bad-message")", 0), 0u);
}

TEST_F(GuideEventsTest, UnaddressedEventsGoToTheImplicitRoomOfASocketInNone) {
  Peer& a = peer(kA);
  Peer& b = peer(kB);
  Peer& c = peer(kC, "elsewhere");
  a.connect();
  b.connect();
  c.connect();
  a.emit(R"(21["call-user",{"offer":"o"}])");
  EXPECT_EQ(b.take(), std::vector<std::string>{R"(42["call-made",{"offer":"o","from":"AAAAAAAAAAAAAAAAAAAA"}])"});
  EXPECT_EQ(a.take(), std::vector<std::string>{R"(431[{"ok":true}])"});
  EXPECT_TRUE(c.take().empty());  // its implicit room is "elsewhere"
}

TEST_F(GuideEventsTest, TogglesUpdateTheRoomAndTellTheOthers) {
  twoInRoom();
  a->emit(R"(21["toggle-audio",{"roomId":"r","isMuted":true}])");
  EXPECT_EQ(b->take(), std::vector<std::string>{
                           R"(42["toggle-audio",{"roomId":"r","isMuted":true,"from":"AAAAAAAAAAAAAAAAAAAA"}])"});
  EXPECT_EQ(a->take(), std::vector<std::string>{R"(431[{"ok":true}])"});
  a->emit(R"(22["toggle-video",{"roomId":"other","isVideoOff":true}])");
  auto got = a->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(432[{"error":"not-joined")", 0), 0u);
  a->emit(R"(23["toggle-video",{"roomId":"r"}])");
  got = a->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(433[{"error":"bad-message")", 0), 0u);
}

TEST_F(GuideEventsTest, LeavingTellsTheOthersAndGoesBackToTheImplicitRoom) {
  twoInRoom();
  a->emit(R"(24["leave-room","r"])");
  EXPECT_EQ(a->take(), std::vector<std::string>{R"(434[{"ok":true}])"});
  EXPECT_EQ(b->take(), std::vector<std::string>{R"(42["user-left","AAAAAAAAAAAAAAAAAAAA"])"});
  EXPECT_TRUE(a->inAnyRoom());
  // Leaving a room it is not in is acked and does nothing.
  a->emit(R"(25["leave-room","r"])");
  EXPECT_EQ(a->take(), std::vector<std::string>{R"(435[{"ok":true}])"});
}

TEST_F(GuideEventsTest, ADisconnectLeavesEveryRoom) {
  twoInRoom();
  a->events.onDisconnected();
  world.settle();
  EXPECT_EQ(b->take(), std::vector<std::string>{R"(42["user-left","AAAAAAAAAAAAAAAAAAAA"])"});
  EXPECT_FALSE(a->inAnyRoom());
  b->events.onDisconnected();
  world.settle();
  EXPECT_EQ(world.rooms.size(), 0u);
  EXPECT_TRUE(world.endpoints.empty());
}

TEST_F(GuideEventsTest, UnknownEventsAreRefusedAndErrorsWithoutAckAreSpacedOut) {
  twoInRoom();
  a->emit(R"(21["dance",{}])");
  auto got = a->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(431[{"error":"unknown-event")", 0), 0u);
  a->emit(R"(2["dance",{}])");
  got = a->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(42["kaiwa:error",{"error":"unknown-event")", 0), 0u);
  EXPECT_NE(got[0].find(R"("event":"dance")"), std::string::npos);
  world.now += Millis(199);
  a->emit(R"(2["dance",{}])");
  EXPECT_TRUE(a->take().empty());  // within 200 ms of the last one
  world.now += Millis(1);
  a->emit(R"(2["dance",{}])");
  EXPECT_EQ(a->take().size(), 1u);
}

TEST_F(GuideEventsTest, UnknownEventsAreRelayedWhenConfigured) {
  config.relayUnknownEvents = true;
  twoInRoom();
  a->emit(R"(2["dance",{"step":1}])", true);
  EXPECT_EQ(b->take(), std::vector<std::string>{R"(42["dance",{"step":1,"from":"AAAAAAAAAAAAAAAAAAAA"}])"});
}

TEST_F(GuideEventsTest, ASocketIsInAtMostSixteenRooms) {
  Peer& a = peer(kA);
  a.connect();
  for (int i = 0; i < 16; ++i) a.emit(R"(2["join-room","r)" + std::to_string(i) + R"("])");
  a.take();
  a.emit(R"(21["join-room","r16"])");
  auto got = a.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(431[{"error":"too-many-rooms")", 0), 0u);
}

TEST_F(GuideEventsTest, AFullRoomRefusesTheJoinAndTheSocketGoesBackToItsImplicitRoom) {
  world.limits.peersPerRoom = 2;
  twoInRoom();
  Peer& c = peer(kC);
  c.connect();
  c.emit(R"(21["join-room","r"])");
  auto got = c.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(431[{"error":"room-full")", 0), 0u);
  EXPECT_TRUE(c.inAnyRoom());
  EXPECT_TRUE(a->take().empty());
}

TEST_F(GuideEventsTest, ARoomNameMustBeValid) {
  Peer& a = peer(kA);
  a.connect();
  a.emit(R"(21["join-room",{}])");
  auto got = a.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(431[{"error":"bad-message")", 0), 0u);
  a.emit(R"(22["join-room",42])");  // a number is a name
  EXPECT_EQ(a.take(), std::vector<std::string>{R"(432[{"ok":true,"peers":[]}])"});
}

TEST_F(GuideEventsTest, BinaryAttachmentsOverTheMessageLimitAreRefused) {
  config.maxMessageBytes = 4;
  twoInRoom();
  auto p = decodePacket(R"(51-1["signal",{"_placeholder":true,"num":0}])");
  ASSERT_TRUE(p);
  p->buffers.push_back("12345");
  a->events.onEvent(std::move(*p), world.now);
  world.settle();
  auto got = a->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(431[{"error":"too-large")", 0), 0u);
  EXPECT_TRUE(b->take().empty());
}

TEST_F(GuideEventsTest, BinaryEventsAreRelayedWithTheirAttachments) {
  twoInRoom();
  auto p = decodePacket(R"(51-["signal",{"_placeholder":true,"num":0}])");
  ASSERT_TRUE(p);
  p->buffers.push_back("\x01\x02");
  a->events.onEvent(std::move(*p), world.now);
  world.settle();
  EXPECT_EQ(b->take(), (std::vector<std::string>{R"(451-["signal",{"_placeholder":true,"num":0}])", "b:\x01\x02"}));
}

TEST_F(GuideEventsTest, ByeFromTheRoomCoreClosesTheSession) {
  twoInRoom();
  auto bye = std::make_shared<const Event>(ev::Bye{ByeReason::kShutdown});
  world.endpoints.begin()->second->deliver(bye);
  EXPECT_EQ(a->closedWhy, "shutdown");
  EXPECT_EQ(a->closedCode, 1001);
}

TEST_F(GuideEventsTest, AMovingSocketJoinsWhereItArrives) {
  Peer& a = peer(kA);
  a.moves = true;
  a.connect();
  a.emit(R"(21["join-room","r"])");
  ASSERT_EQ(a.movedFor, std::vector<std::string>{"r"});
  EXPECT_FALSE(a.inAnyRoom());
  EXPECT_TRUE(a.take().empty());
  a.events.join("r", 1);
  world.settle();
  EXPECT_EQ(a.take(), std::vector<std::string>{R"(431[{"ok":true,"peers":[]}])"});
}

TEST_F(GuideEventsTest, WithAnAuthSecretRoomsNeedATokenThatGrantsThem) {
  config.authSecret = "secret";
  std::string token = auth::signRoomToken({"r", "alice", 4102444800 /* 2100-01-01 */, 0}, *config.authSecret);
  Peer& a = peer(kA);
  a.connect();  // no token: connected, but in no room
  EXPECT_FALSE(a.inAnyRoom());
  a.emit(R"(21["call-user",{}])");
  auto got = a.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(431[{"error":"unauthorized")", 0), 0u);
  a.emit(R"(22["join-room","r"])");
  got = a.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(432[{"error":"unauthorized")", 0), 0u);

  Peer& b = peer(kB);
  b.connect(token);  // the token's room is its implicit room
  EXPECT_TRUE(b.inAnyRoom());
  b.emit(R"(23["join-room","r"])");
  EXPECT_EQ(b.take(), std::vector<std::string>{R"(433[{"ok":true,"peers":[]}])"});
  b.emit(R"(24["join-room","other"])");
  got = b.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(434[{"error":"unauthorized")", 0), 0u);
}

TEST_F(GuideEventsTest, AnExpiredTokenGrantsNothingAndTheImplicitRoomIsCheckedAgainOnReturn) {
  config.authSecret = "secret";
  std::string token = auth::signRoomToken({"*", "alice", world.wallSeconds + 60, 0}, *config.authSecret);
  Peer& a = peer(kA);
  a.connect(token);  // a token for any room: the default room is its implicit room
  EXPECT_TRUE(a.inAnyRoom());
  a.emit(R"(21["join-room","r"])");
  EXPECT_EQ(a.take(), std::vector<std::string>{R"(431[{"ok":true,"peers":[]}])"});
  world.wallSeconds += 61;  // the token expires
  a.emit(R"(22["join-room","s"])");
  auto got = a.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind(R"(432[{"error":"unauthorized","message":"room token refused: )", 0), 0u) << got[0];
  a.emit(R"(23["leave-room","r"])");  // back to the implicit room? Not with an expired token: in no room
  EXPECT_EQ(a.take(), std::vector<std::string>{R"(433[{"ok":true}])"});
  EXPECT_FALSE(a.inAnyRoom());
}

}  // namespace
