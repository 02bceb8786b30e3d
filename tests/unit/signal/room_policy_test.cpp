// RoomPolicy: the quiet, big, holding room the PeerJS front door uses (docs/peerjs.md), on a fake clock.
#include <gtest/gtest.h>

#include <cstdint>

#include "signal/room.hpp"
#include "signal/room_host.hpp"

namespace kaiwa::signal {
namespace {

using namespace std::chrono_literals;

const Endpoint kA{0, 1}, kB{1, 2}, kC{0, 3}, kA2{1, 4};

template <typename T>
std::vector<T> to(const Outbox& out, Endpoint ep) {
  std::vector<T> list;
  for (const auto& d : out) {
    if (d.to != ep) continue;
    if (const T* e = std::get_if<T>(d.event.get())) list.push_back(*e);
  }
  return list;
}

RoomPolicy peerJsPolicy() {
  RoomPolicy p;
  p.capacity = 3;
  p.announce = false;
  p.keepDetached = false;
  p.holdForAbsent = 5s;
  p.aliveTimeout = 60s;
  return p;
}

class RoomPolicyTest : public ::testing::Test {
 protected:
  RoomPolicyTest() { limits.peersPerRoom = 1; }  // the policy's capacity wins

  std::string join(Endpoint ep, std::string id, std::string token, Outbox& out) {
    return room.join(JoinRequest{ep, kNoRequest, id, {}, id, std::move(token)}, now, out);
  }
  std::string join(Endpoint ep, std::string id, std::string token = "tok") {
    Outbox out;
    return join(ep, std::move(id), std::move(token), out);
  }

  Limits limits;
  Room room{"peerjs:k", limits, peerJsPolicy()};
  TimePoint now{};
};

TEST_F(RoomPolicyTest, QuietRoomJoinsWithChosenIdAndTokenAndTellsNobody) {
  Outbox out;
  EXPECT_EQ(join(kA, "alice", "ta", out), "alice");
  EXPECT_EQ(join(kB, "bob", "tb", out), "bob");
  EXPECT_EQ(join(kC, "carol", "tc", out), "carol");  // capacity 3, although peersPerRoom is 1
  auto joined = to<ev::Joined>(out, kC);
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(joined[0].resume, "tc");
  EXPECT_TRUE(joined[0].peers.empty());
  EXPECT_TRUE(to<ev::PeerJoined>(out, kA).empty());
  Outbox full;
  EXPECT_EQ(join(kA2, "dave", "td", full), "");
  auto err = to<ev::Error>(full, kA2);
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].code, ErrorCode::kRoomFull);
  EXPECT_TRUE(err[0].refusesJoin);
}

TEST_F(RoomPolicyTest, ResumeWithTheChosenTokenReplacesTheSocketAnotherTokenFails) {
  join(kA, "alice", "secret");
  Outbox bad;
  EXPECT_FALSE(room.resume(kA2, kNoRequest, "alice", "other", now, bad));
  ASSERT_EQ(to<ev::Error>(bad, kA2).size(), 1u);
  EXPECT_EQ(to<ev::Error>(bad, kA2)[0].code, ErrorCode::kResumeFailed);
  Outbox good;
  EXPECT_TRUE(room.resume(kA2, kNoRequest, "alice", "secret", now, good));
  EXPECT_EQ(to<ev::Bye>(good, kA).size(), 1u);
  ASSERT_EQ(to<ev::Joined>(good, kA2).size(), 1u);
  EXPECT_TRUE(to<ev::Joined>(good, kA2)[0].resumed);
  // The old socket's close does not remove the peer: it lives on the new one.
  Outbox closed;
  room.detach(kA, now, closed);
  EXPECT_TRUE(room.contains("alice"));
}

TEST_F(RoomPolicyTest, DetachRemovesAtOnceAndQuietly) {
  join(kA, "alice");
  join(kB, "bob");
  Outbox out;
  room.detach(kB, now, out);
  EXPECT_FALSE(room.contains("bob"));
  EXPECT_TRUE(out.empty());
}

TEST_F(RoomPolicyTest, RelayCarriesKindAndFrom) {
  join(kA, "alice");
  join(kB, "bob");
  Outbox out;
  room.relay(kA, "alice", "bob", "OFFER", R"({"sdp":"x"})", true, now, out);
  auto sig = to<ev::Signal>(out, kB);
  ASSERT_EQ(sig.size(), 1u);
  EXPECT_EQ(sig[0].from, "alice");
  EXPECT_EQ(sig[0].kind, "OFFER");
  EXPECT_EQ(sig[0].data, R"({"sdp":"x"})");
  Outbox spoof;
  room.relay(kC, "alice", "bob", "OFFER", "{}", true, now, spoof);  // not alice's socket
  EXPECT_TRUE(spoof.empty());
}

TEST_F(RoomPolicyTest, HeldMessagesAreDeliveredInOrderWhenTheIdJoins) {
  join(kA, "alice");
  Outbox out;
  room.relay(kA, "alice", "bob", "OFFER", "1", true, now, out);
  room.relay(kA, "alice", "bob", "CANDIDATE", "2", true, now, out);
  room.relay(kA, "alice", "bob", "LEAVE", "3", false, now, out);  // not held
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(room.empty());
  now += 4s;
  Outbox joined;
  join(kB, "bob", "tb", joined);
  ASSERT_GE(joined.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<ev::Joined>(*joined[0].event));  // OPEN first, then the queue
  auto sig = to<ev::Signal>(joined, kB);
  ASSERT_EQ(sig.size(), 2u);
  EXPECT_EQ(sig[0].data, "1");
  EXPECT_EQ(sig[1].kind, "CANDIDATE");
  Outbox later;
  now += 10s;
  room.tick(now, later);
  EXPECT_TRUE(to<ev::Expired>(later, kA).empty());
}

TEST_F(RoomPolicyTest, HeldMessagesExpireWithOneExpiredPerSenderAndId) {
  join(kA, "alice");
  join(kC, "carol");
  Outbox out;
  room.relay(kA, "alice", "bob", "OFFER", "1", true, now, out);
  room.relay(kA, "alice", "bob", "CANDIDATE", "2", true, now, out);
  room.relay(kC, "carol", "bob", "OFFER", "3", true, now + 1s, out);
  room.relay(kA, "alice", "dave", "OFFER", "4", true, now + 2s, out);
  Outbox early;
  EXPECT_EQ(room.tick(now + 4s, early), now + 5s);
  EXPECT_TRUE(early.empty());
  Outbox late;
  room.tick(now + 5s, late);
  auto a = to<ev::Expired>(late, kA);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].peer, "bob");
  auto c = to<ev::Expired>(late, kC);
  ASSERT_EQ(c.size(), 1u);
  Outbox later;
  room.tick(now + 7s, later);
  ASSERT_EQ(to<ev::Expired>(later, kA).size(), 1u);
  EXPECT_EQ(to<ev::Expired>(later, kA)[0].peer, "dave");
  // Bob comes after the expiry: nothing is waiting for him.
  Outbox joined;
  join(kB, "bob", "tb", joined);
  EXPECT_TRUE(to<ev::Signal>(joined, kB).empty());
}

TEST_F(RoomPolicyTest, HoldingIsBoundedByCapacityAndQueueLimits) {
  limits.resumeQueueMessages = 2;
  join(kA, "alice");
  Outbox out;
  for (int i = 0; i < 5; ++i) room.relay(kA, "alice", "bob", "CANDIDATE", std::to_string(i), true, now, out);
  room.relay(kA, "alice", "x1", "OFFER", "{}", true, now, out);
  room.relay(kA, "alice", "x2", "OFFER", "{}", true, now, out);
  EXPECT_TRUE(out.empty());
  room.relay(kA, "alice", "x3", "OFFER", "{}", true, now, out);  // a fourth absent id, capacity 3
  auto e = to<ev::Expired>(out, kA);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].peer, "x3");
  Outbox joined;
  join(kB, "bob", "tb", joined);
  auto sig = to<ev::Signal>(joined, kB);
  ASSERT_EQ(sig.size(), 2u);  // the newest two
  EXPECT_EQ(sig[0].data, "3");
  EXPECT_EQ(sig[1].data, "4");
}

TEST(RoomPolicyHold, AllHeldBytesAreBoundedAndFreedOnDeliveryAndExpiry) {
  Limits limits;
  RoomPolicy policy;
  policy.announce = false;
  policy.holdForAbsent = 5s;
  policy.capacity = 100;
  policy.holdMaxBytes = 3 * (64 + 5 + 1000);  // three 1000-byte messages from "alice" (approximateSize)
  Room room("peerjs:k", limits, policy);
  Outbox out;
  room.join(JoinRequest{kA, kNoRequest, "alice", {}, "alice", "t"}, TimePoint{}, out);
  out.clear();
  std::string big(1000, 'x');
  room.relay(kA, "alice", "x1", "OFFER", big, true, TimePoint{}, out);
  room.relay(kA, "alice", "x2", "OFFER", big, true, TimePoint{}, out);
  room.relay(kA, "alice", "x2", "OFFER", big, true, TimePoint{}, out);
  EXPECT_TRUE(out.empty());
  room.relay(kA, "alice", "x3", "OFFER", big, true, TimePoint{}, out);  // over the room's bound: EXPIRE at once
  ASSERT_EQ(to<ev::Expired>(out, kA).size(), 1u);
  EXPECT_EQ(to<ev::Expired>(out, kA)[0].peer, "x3");
  out.clear();
  room.join(JoinRequest{kB, kNoRequest, "x2", {}, "x2", "t"}, TimePoint{}, out);  // x2's two are delivered...
  EXPECT_EQ(to<ev::Signal>(out, kB).size(), 2u);
  out.clear();
  room.relay(kA, "alice", "x3", "OFFER", big, true, TimePoint{}, out);  // ...which makes room again
  room.relay(kA, "alice", "x4", "OFFER", big, true, TimePoint{}, out);
  EXPECT_TRUE(out.empty());
  room.tick(TimePoint{} + 6s, out);  // expiry frees the rest
  EXPECT_EQ(to<ev::Expired>(out, kA).size(), 3u);
  out.clear();
  for (char id : {'0', '1', '2'})
    room.relay(kA, "alice", std::string{'y', id}, "OFFER", big, true, TimePoint{} + 6s, out);
  EXPECT_TRUE(out.empty());
}

TEST_F(RoomPolicyTest, SilentPeersAreClosedAfterTheAliveTimeoutTouchKeepsThemAlive) {
  join(kA, "alice");
  join(kB, "bob");
  Outbox out;
  now += 50s;
  room.touch(kA, "alice", now);
  room.touch(kA2, "bob", now);  // not bob's socket: no effect
  EXPECT_EQ(room.tick(now, out), TimePoint{} + 60s);
  now += 10s;
  room.tick(now, out);
  EXPECT_EQ(to<ev::Bye>(out, kB).size(), 1u);
  EXPECT_EQ(to<ev::Bye>(out, kB)[0].reason, ByeReason::kTimeout);
  EXPECT_FALSE(room.contains("bob"));
  EXPECT_TRUE(room.contains("alice"));
  EXPECT_TRUE(to<ev::PeerLeft>(out, kA).empty());
  now += 49s;
  room.relay(kA, "alice", "nobody", "OFFER", "{}", false, now, out);  // relaying is a sign of life too
  now += 20s;
  Outbox later;
  room.tick(now, later);
  EXPECT_TRUE(room.contains("alice"));
}

TEST(RoomPolicyDefaults, NativeRoomsStillAnnounceAndKeepDetachedPeers) {
  Limits limits;
  std::atomic<std::size_t> count{0};
  RoomHost host(limits, count);
  Room* r = host.findOrCreate("demo");
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->policy().announce);
  EXPECT_EQ(r->policy().holdForAbsent.count(), 0);
  RoomPolicy quiet;
  quiet.announce = false;
  Room* q = host.findOrCreate("peerjs:k", quiet);
  EXPECT_FALSE(q->policy().announce);
  EXPECT_EQ(host.findOrCreate("peerjs:k"), q);  // the policy applies on creation
  Outbox out;
  r->join(JoinRequest{kA, 1, "Alice", {}, {}}, TimePoint{}, out);
  r->relay(kA, r->members()[0].id, "nobody", "OFFER", "{}", true, TimePoint{}, out);  // holding off: dropped
  EXPECT_EQ(to<ev::Expired>(out, kA).size(), 0u);
  host.reapIfEmpty("peerjs:k");
  EXPECT_EQ(host.size(), 1u);
}

}  // namespace
}  // namespace kaiwa::signal

namespace kaiwa::signal {
namespace {

// Socket.IO's rooms (RoomPolicy::resumable false): no resume token is made, and nothing can be resumed.
TEST(RoomPolicyResumable, OffMakesNoTokensAndRefusesResume) {
  Limits limits;
  RoomPolicy policy;
  policy.keepDetached = false;
  policy.resumable = false;
  Room room{"sio:r", limits, policy};
  Outbox out;
  std::string id = room.join(JoinRequest{kA, kNoRequest, {}, {}, "sock-a"}, TimePoint{}, out);
  ASSERT_EQ(id, "sock-a");
  auto joined = to<ev::Joined>(out, kA);
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_TRUE(joined[0].resume.empty());
  Outbox again;
  EXPECT_FALSE(room.resume(kA2, 7, "sock-a", "", TimePoint{}, again));
  EXPECT_FALSE(room.resume(kA2, 7, "sock-a", "anything", TimePoint{}, again));
  auto err = to<ev::Error>(again, kA2);
  ASSERT_EQ(err.size(), 2u);
  EXPECT_EQ(err[0].code, ErrorCode::kResumeFailed);
  EXPECT_TRUE(room.contains("sock-a"));
  // The default still makes one.
  Room native{"n", limits};
  Outbox nout;
  native.join(JoinRequest{kB, kNoRequest, "B", {}, {}}, TimePoint{}, nout);
  auto nj = to<ev::Joined>(nout, kB);
  ASSERT_EQ(nj.size(), 1u);
  EXPECT_FALSE(nj[0].resume.empty());
}

// A detached member keeps what it is sent, in order, and gets it on resume; a member that leaves for good drops it.
TEST(RoomQueue, DetachedMembersKeepEventsUntilResumeOrRemoval) {
  Limits limits;
  Room room{"q", limits};
  TimePoint now{};
  Outbox out;
  std::string a = room.join(JoinRequest{kA, kNoRequest, "A", {}, {}}, now, out);
  std::string b = room.join(JoinRequest{kB, kNoRequest, "B", {}, {}}, now, out);
  std::string c = room.join(JoinRequest{kC, kNoRequest, "C", {}, {}}, now, out);
  std::string tokenB = to<ev::Joined>(out, kB).at(0).resume;
  room.detach(kB, now, out);
  room.detach(kC, now, out);
  Outbox sent;
  room.message(kA, kNoRequest, a, b, R"({"n":1})", sent);
  room.message(kA, kNoRequest, a, "", R"({"n":2})", sent);
  EXPECT_TRUE(to<ev::Message>(sent, kB).empty());  // kept, not sent
  Outbox resumed;
  ASSERT_TRUE(room.resume(kA2, kNoRequest, b, tokenB, now, resumed));
  auto msgs = to<ev::Message>(resumed, kA2);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].data, R"({"n":1})");
  EXPECT_EQ(msgs[1].data, R"({"n":2})");
  // C's grace ends: removed with what it kept; the others learn it left.
  Outbox later;
  room.tick(now + limits.resumeGrace + 1s, later);
  EXPECT_FALSE(room.contains(c));
  EXPECT_EQ(to<ev::PeerLeft>(later, kA).size(), 1u);
  std::vector<std::string> ids;
  for (const auto& m : room.members()) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<std::string>{a, b}));
}

}  // namespace
}  // namespace kaiwa::signal

// The media policy of native rooms (docs/protocol.md, "SFU rooms"): the effective mode, its events and the observer.
namespace kaiwa::signal {
namespace {

struct RecordingObserver : RoomObserver {
  std::vector<std::string> calls;
  void onPeerJoined(const Room&, std::string_view peer) override { calls.push_back("joined " + std::string(peer)); }
  void onPeerRemoved(const Room&, std::string_view peer) override { calls.push_back("removed " + std::string(peer)); }
  void onMediaMode(const Room& room, MediaMode mode) override {
    calls.push_back("mode " + std::string(toString(mode)) + " " + std::to_string(room.size()));
  }
};

std::vector<std::string> kinds(const Outbox& out, Endpoint ep) {
  std::vector<std::string> list;
  for (const auto& d : out) {
    if (d.to != ep) continue;
    if (std::holds_alternative<ev::PeerJoined>(*d.event)) list.push_back("peer-joined");
    if (std::holds_alternative<ev::PeerLeft>(*d.event)) list.push_back("peer-left");
    if (const auto* m = std::get_if<ev::MediaModeChanged>(d.event.get())) {
      list.push_back(std::string("media-mode ") + std::string(toString(m->mode)));
    }
  }
  return list;
}

TEST(RoomMediaMode, AutoIsMeshForTwoSfuFromThreeAndMeshAgainAtTwo) {
  Limits limits;
  RecordingObserver observer;
  Room room("r", limits, RoomPolicy{.media = MediaPolicy::kAuto, .observer = &observer});
  const Endpoint a{0, 1}, b{0, 2}, c{0, 3};
  Outbox out;
  std::string ida = room.join(JoinRequest{a, 1, "a", {}, {}}, TimePoint{}, out);
  room.join(JoinRequest{b, 1, "b", {}, {}}, TimePoint{}, out);
  EXPECT_EQ(room.mediaMode(), MediaMode::kMesh);
  EXPECT_TRUE(kinds(out, a) == std::vector<std::string>{"peer-joined"});
  out.clear();
  std::string idc = room.join(JoinRequest{c, 9, "c", {}, {}}, TimePoint{}, out);
  EXPECT_EQ(room.mediaMode(), MediaMode::kSfu);
  EXPECT_EQ(kinds(out, a), (std::vector<std::string>{"peer-joined", "media-mode sfu"}));
  EXPECT_EQ(kinds(out, c), (std::vector<std::string>{"media-mode sfu"}));
  const auto* joined = std::get_if<ev::Joined>(out[0].event.get());
  ASSERT_NE(joined, nullptr);
  EXPECT_EQ(joined->media, MediaMode::kSfu);
  EXPECT_EQ(joined->mediaPolicy, MediaPolicy::kAuto);
  // A member in its grace period still counts.
  out.clear();
  room.detach(c, TimePoint{}, out);
  EXPECT_EQ(room.mediaMode(), MediaMode::kSfu);
  room.leave(a, 2, ida, out);
  EXPECT_EQ(room.mediaMode(), MediaMode::kMesh);
  EXPECT_EQ(kinds(out, b), (std::vector<std::string>{"peer-left", "media-mode mesh"}));
  EXPECT_EQ(observer.calls.back(), "mode mesh 2");
  EXPECT_EQ(observer.calls[observer.calls.size() - 2], "removed " + ida);
  EXPECT_EQ(observer.calls[2], "joined " + idc);
  EXPECT_EQ(observer.calls[3], "mode sfu 3");
}

TEST(RoomMediaMode, SfuAndMeshPoliciesNeverChangeAndSayNothing) {
  Limits limits;
  for (MediaPolicy policy : {MediaPolicy::kSfu, MediaPolicy::kMesh}) {
    Room room("r", limits, RoomPolicy{.media = policy});
    Outbox out;
    for (uint64_t i = 1; i <= 4; ++i) room.join(JoinRequest{{0, i}, 1, "p", {}, {}}, TimePoint{}, out);
    for (const auto& d : out) EXPECT_FALSE(std::holds_alternative<ev::MediaModeChanged>(*d.event));
    EXPECT_EQ(room.mediaMode(), policy == MediaPolicy::kSfu ? MediaMode::kSfu : MediaMode::kMesh);
  }
}

// A WHIP publisher joins with sfuOnly: an auto room is sfu while it is in (even with one other member), mesh again
// when it leaves; a mesh room refuses it.
TEST(RoomMediaMode, AnSfuOnlyMemberMakesAutoSfuAndMeshRefusesIt) {
  Limits limits;
  RecordingObserver observer;
  Room room("r", limits, RoomPolicy{.media = MediaPolicy::kAuto, .observer = &observer});
  const Endpoint a{0, 1}, whip{0, UINT64_MAX};
  Outbox out;
  room.join(JoinRequest{a, 1, "a", {}, {}}, TimePoint{}, out);
  EXPECT_EQ(room.mediaMode(), MediaMode::kMesh);
  out.clear();
  JoinRequest w{whip, kNoRequest, "OBS", {}, "whipX"};
  w.sfuOnly = true;
  EXPECT_EQ(room.join(std::move(w), TimePoint{}, out), "whipX");
  EXPECT_EQ(room.mediaMode(), MediaMode::kSfu);
  EXPECT_EQ(kinds(out, a), (std::vector<std::string>{"peer-joined", "media-mode sfu"}));
  out.clear();
  room.leave(whip, kNoRequest, "whipX", out);
  EXPECT_EQ(room.mediaMode(), MediaMode::kMesh);
  EXPECT_EQ(kinds(out, a), (std::vector<std::string>{"peer-left", "media-mode mesh"}));

  for (MediaPolicy policy : {MediaPolicy::kMesh, MediaPolicy::kNone}) {
    Room mesh("m", limits, RoomPolicy{.media = policy});
    Outbox refused;
    JoinRequest r{whip, kNoRequest, "OBS", {}, "whipY"};
    r.sfuOnly = true;
    EXPECT_EQ(mesh.join(std::move(r), TimePoint{}, refused), "");
    EXPECT_EQ(mesh.size(), 0u);
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<ev::Error>(*refused[0].event));
  }
  Room sfu("s", limits, RoomPolicy{.media = MediaPolicy::kSfu});
  Outbox ok;
  JoinRequest r{whip, kNoRequest, "OBS", {}, "whipZ"};
  r.sfuOnly = true;
  EXPECT_EQ(sfu.join(std::move(r), TimePoint{}, ok), "whipZ");
}

// The SFU's active speaker: everybody hears a change once, a newcomer hears the current one at its join, a speaker
// who leaves is forgotten, and a mesh room (no server-side audio) has none.
TEST(RoomActiveSpeaker, ChangesAreBroadcastOnceAndANewcomerLearnsTheCurrentOne) {
  Limits limits;
  Room room("r", limits, RoomPolicy{.media = MediaPolicy::kSfu});
  const Endpoint a{0, 1}, b{0, 2}, c{0, 3};
  Outbox out;
  const std::string ida = room.join(JoinRequest{a, 1, "a", {}, {}}, TimePoint{}, out);
  const std::string idb = room.join(JoinRequest{b, 1, "b", {}, {}}, TimePoint{}, out);
  // Every event to `to` that is an active-speaker, as the peer it names.
  auto speakers = [&](Endpoint to) {
    std::vector<std::string> list;
    for (const auto& d : out) {
      if (const auto* e = std::get_if<ev::ActiveSpeaker>(d.event.get()); e && d.to == to) list.push_back(e->peer);
    }
    return list;
  };
  out.clear();
  room.setActiveSpeaker(ida, out);
  room.setActiveSpeaker(ida, out);       // no change: nothing said
  room.setActiveSpeaker("nobody", out);  // no such member: nothing
  EXPECT_EQ(speakers(a), (std::vector<std::string>{ida}));
  EXPECT_EQ(speakers(b), (std::vector<std::string>{ida}));
  EXPECT_EQ(room.activeSpeaker(), ida);

  out.clear();
  const std::string idc = room.join(JoinRequest{c, 1, "c", {}, {}}, TimePoint{}, out);
  EXPECT_EQ(speakers(c), (std::vector<std::string>{ida}));
  EXPECT_TRUE(speakers(a).empty());

  // A member that resumes hears who is talking now, after its ok, though nothing changed while it was away.
  const std::string tokenC = to<ev::Joined>(out, c).at(0).resume;
  room.detach(c, TimePoint{}, out);
  out.clear();
  const Endpoint c2{1, 9};
  ASSERT_TRUE(room.resume(c2, 2, idc, tokenC, TimePoint{}, out));
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(std::holds_alternative<ev::Joined>(*out.front().event));
  EXPECT_EQ(speakers(c2), (std::vector<std::string>{ida}));
  room.detach(c2, TimePoint{}, out);
  room.resume(c, 3, idc, to<ev::Joined>(out, c2).at(0).resume, TimePoint{}, out);

  out.clear();
  room.leave(a, kNoRequest, ida, out);
  EXPECT_EQ(room.activeSpeaker(), "");
  room.setActiveSpeaker(idb, out);
  EXPECT_EQ(speakers(c), (std::vector<std::string>{idb}));

  Room mesh("m", limits, RoomPolicy{.media = MediaPolicy::kMesh});
  Outbox meshOut;
  const std::string m1 = mesh.join(JoinRequest{a, 1, "a", {}, {}}, TimePoint{}, meshOut);
  meshOut.clear();
  mesh.setActiveSpeaker(m1, meshOut);
  EXPECT_TRUE(meshOut.empty());
  EXPECT_EQ(mesh.activeSpeaker(), "");
}

}  // namespace
}  // namespace kaiwa::signal

// The room's recording state (docs/protocol.md, "Recording"): every member hears the start and the stop, a member
// that joins or resumes while it runs hears it after its ok, and a switch to mesh stops it.
namespace kaiwa::signal {
namespace {

std::vector<ev::Recording> recordingEvents(const Outbox& out, Endpoint ep) {
  std::vector<ev::Recording> list;
  for (const auto& d : out) {
    if (const auto* r = std::get_if<ev::Recording>(d.event.get()); r && d.to == ep) list.push_back(*r);
  }
  return list;
}

TEST(RoomRecording, EveryMemberHearsStartAndStopAndALateJoinerHearsItAfterItsOk) {
  Limits limits;
  Room room("r", limits, RoomPolicy{.media = MediaPolicy::kAuto});
  const Endpoint a{0, 1}, b{0, 2}, c{0, 3}, d{0, 4}, c2{0, 5};
  Outbox out;
  const std::string ida = room.join(JoinRequest{a, 1, "Alice", {}, {}}, TimePoint{}, out);
  room.join(JoinRequest{b, 1, "Bob", {}, {}}, TimePoint{}, out);
  const std::string idc = room.join(JoinRequest{c, 1, "Carol", {}, {}}, TimePoint{}, out);
  std::string carolToken;
  for (const auto& del : out) {
    if (const auto* j = std::get_if<ev::Joined>(del.event.get()); j && del.to == c) carolToken = j->resume;
  }
  ASSERT_EQ(room.mediaMode(), MediaMode::kSfu);
  EXPECT_EQ(room.recording(), nullptr);
  out.clear();
  room.startRecording({ida, "Alice", 1234}, out);
  for (Endpoint ep : {a, b, c}) {
    auto evs = recordingEvents(out, ep);
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_TRUE(evs[0].active);
    EXPECT_EQ(evs[0].by, ida);
    EXPECT_EQ(evs[0].name, "Alice");
    EXPECT_EQ(evs[0].since, 1234);
  }
  out.clear();
  room.join(JoinRequest{d, 7, "Dan", {}, {}}, TimePoint{}, out);
  ASSERT_GE(out.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<ev::Joined>(*out[0].event));
  const auto* told = std::get_if<ev::Recording>(out[1].event.get());
  ASSERT_NE(told, nullptr);
  EXPECT_EQ(out[1].to, d);
  EXPECT_EQ(told->since, 1234);
  // A resume hears it too, after its ok and what was queued for it.
  out.clear();
  room.detach(c, TimePoint{}, out);
  out.clear();
  ASSERT_TRUE(room.resume(c2, 3, idc, carolToken, TimePoint{}, out));
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(std::holds_alternative<ev::Joined>(*out.front().event));
  const auto* again = std::get_if<ev::Recording>(out.back().event.get());
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(out.back().to, c2);
  EXPECT_TRUE(again->active);

  out.clear();
  room.stopRecording(ida, "stopped", out);
  EXPECT_EQ(room.recording(), nullptr);
  auto stopped = recordingEvents(out, b);
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_FALSE(stopped[0].active);
  EXPECT_EQ(stopped[0].by, ida);
  EXPECT_EQ(stopped[0].reason, "stopped");
  out.clear();
  room.stopRecording(ida, "stopped", out);  // not recording: nothing said
  EXPECT_TRUE(out.empty());
}

TEST(RoomRecording, ASwitchToMeshStopsIt) {
  Limits limits;
  Room room("r", limits, RoomPolicy{.media = MediaPolicy::kAuto});
  const Endpoint a{0, 1}, b{0, 2}, c{0, 3};
  Outbox out;
  const std::string ida = room.join(JoinRequest{a, 1, "a", {}, {}}, TimePoint{}, out);
  room.join(JoinRequest{b, 1, "b", {}, {}}, TimePoint{}, out);
  const std::string idc = room.join(JoinRequest{c, 1, "c", {}, {}}, TimePoint{}, out);
  room.startRecording({ida, "a", 1}, out);
  out.clear();
  room.leave(c, 2, idc, out);
  EXPECT_EQ(room.mediaMode(), MediaMode::kMesh);
  EXPECT_EQ(room.recording(), nullptr);
  auto evs = recordingEvents(out, a);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_FALSE(evs[0].active);
  EXPECT_EQ(evs[0].reason, "mesh");
  EXPECT_TRUE(evs[0].by.empty());
}

}  // namespace
}  // namespace kaiwa::signal
