#include "signal/room.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace kaiwa::signal {
namespace {

using namespace std::chrono_literals;

const Endpoint kA{0, 1}, kB{1, 2}, kC{0, 3}, kA2{1, 4};

// Events of type T delivered to `to`.
template <typename T>
std::vector<T> to(const Outbox& out, Endpoint ep) {
  std::vector<T> list;
  for (const auto& d : out) {
    if (d.to != ep) continue;
    if (const T* e = std::get_if<T>(d.event.get())) list.push_back(*e);
  }
  return list;
}

class RoomTest : public ::testing::Test {
 protected:
  RoomTest() { limits.resumeGrace = 15s; }

  std::string join(Endpoint ep, std::string name, MediaState state = {}) {
    Outbox out;
    std::string id = room.join(JoinRequest{ep, 1, std::move(name), state, {}}, now, out);
    auto joined = to<ev::Joined>(out, ep);
    EXPECT_EQ(joined.size(), 1u);
    if (!joined.empty()) tokens[id] = joined[0].resume;
    return id;
  }

  Limits limits;
  Room room{"demo", limits};
  TimePoint now{};
  std::map<std::string, std::string> tokens;
};

TEST_F(RoomTest, JoinRepliesWithIdAndMembersAndTellsTheOthers) {
  std::string a = join(kA, "Alice", MediaState{true, false, false});
  Outbox out;
  std::string b = room.join(JoinRequest{kB, 7, "Bob", {}, {}}, now, out);
  ASSERT_FALSE(b.empty());
  EXPECT_NE(a, b);
  auto joined = to<ev::Joined>(out, kB);
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(joined[0].re, 7);
  EXPECT_EQ(joined[0].peer, b);
  EXPECT_EQ(joined[0].room, "demo");
  EXPECT_FALSE(joined[0].resume.empty());
  ASSERT_EQ(joined[0].peers.size(), 1u);
  EXPECT_EQ(joined[0].peers[0].id, a);
  EXPECT_EQ(joined[0].peers[0].name, "Alice");
  EXPECT_TRUE(joined[0].peers[0].state.audioMuted);
  auto seen = to<ev::PeerJoined>(out, kA);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].peer.id, b);
  EXPECT_EQ(seen[0].peer.name, "Bob");
  EXPECT_TRUE(to<ev::PeerJoined>(out, kB).empty());  // not told about itself
  EXPECT_EQ(room.size(), 2u);
}

TEST_F(RoomTest, RoomFullIsRefused) {
  limits.peersPerRoom = 2;
  join(kA, "A");
  join(kB, "B");
  Outbox out;
  EXPECT_TRUE(room.join(JoinRequest{kC, 3, "C", {}, {}}, now, out).empty());
  auto err = to<ev::Error>(out, kC);
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].code, ErrorCode::kRoomFull);
  EXPECT_EQ(err[0].re, 3);
  EXPECT_TRUE(to<ev::PeerJoined>(out, kA).empty());
  EXPECT_EQ(room.size(), 2u);
}

TEST_F(RoomTest, SignalGoesToExactlyTheTarget) {
  std::string a = join(kA, "A"), b = join(kB, "B");
  join(kC, "C");
  Outbox out;
  room.signal(kA, kNoRequest, a, b, R"({"candidate":"x"})", out);
  ASSERT_EQ(out.size(), 1u);
  auto sig = to<ev::Signal>(out, kB);
  ASSERT_EQ(sig.size(), 1u);
  EXPECT_EQ(sig[0].from, a);
  EXPECT_EQ(sig[0].data, R"({"candidate":"x"})");
}

// Small rooms find their members by a scan, bigger ones by a lookup (Room::find): the same answers on both sides of
// the line, as the room grows and shrinks.
TEST_F(RoomTest, MembersAreFoundAsTheRoomGrowsAndShrinks) {
  std::vector<std::string> ids;
  std::vector<Endpoint> eps;
  auto signalsReach = [&](std::size_t from, std::size_t to) {
    Outbox out;
    room.signal(eps[from], 1, ids[from], ids[to], "{}", out);
    auto sig = ::kaiwa::signal::to<ev::Signal>(out, eps[to]);
    return sig.size() == 1 && sig[0].from == ids[from];
  };
  for (uint64_t i = 0; i < 20; ++i) {
    eps.push_back(Endpoint{0, 100 + i});
    ids.push_back(join(eps.back(), std::to_string(i)));
    for (std::size_t j = 0; j < i; ++j) {
      EXPECT_TRUE(signalsReach(i, j)) << i << " -> " << j;
      EXPECT_TRUE(signalsReach(j, i)) << j << " -> " << i;
    }
  }
  for (std::size_t i = 0; i < 18; ++i) {  // every other one leaves, oldest first, then the rest but two
    std::size_t gone = i < 10 ? 2 * i : 2 * (i - 10) + 1;
    Outbox out;
    room.leave(eps[gone], 1, ids[gone], out);
    EXPECT_FALSE(room.contains(ids[gone]));
    for (std::size_t j = 0; j < ids.size(); ++j) {
      if (!room.contains(ids[j])) continue;
      Outbox err;
      room.signal(eps[j], 2, ids[j], ids[gone], "{}", err);
      EXPECT_EQ(to<ev::Error>(err, eps[j]).size(), 1u);
      EXPECT_TRUE(signalsReach(j, j == 19 ? 17 : 19));
    }
  }
  EXPECT_EQ(room.size(), 2u);
  EXPECT_TRUE(room.contains(ids[17]) && room.contains(ids[19]));
}

TEST_F(RoomTest, SignalToUnknownPeerOrSelfIsAnError) {
  std::string a = join(kA, "A");
  Outbox out;
  room.signal(kA, 5, a, "nobody", "{}", out);
  room.signal(kA, 6, a, a, "{}", out);
  auto err = to<ev::Error>(out, kA);
  ASSERT_EQ(err.size(), 2u);
  EXPECT_EQ(err[0].code, ErrorCode::kUnknownPeer);
  EXPECT_EQ(err[0].re, 5);
  EXPECT_EQ(err[1].re, 6);
}

TEST_F(RoomTest, ASenderMustBeTheConnectionOfThatPeer) {
  std::string a = join(kA, "A"), b = join(kB, "B");
  Outbox out;
  room.signal(kC, 9, a, b, "{}", out);  // kC pretends to be a
  EXPECT_TRUE(to<ev::Signal>(out, kB).empty());
  auto err = to<ev::Error>(out, kC);
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].code, ErrorCode::kNotJoined);
}

TEST_F(RoomTest, BroadcastMessageReachesEveryoneButTheSender) {
  std::string a = join(kA, "A");
  join(kB, "B");
  join(kC, "C");
  Outbox out;
  room.message(kA, 4, a, "", R"({"x":1})", out);
  EXPECT_TRUE(to<ev::Message>(out, kA).empty());
  ASSERT_EQ(to<ev::Message>(out, kB).size(), 1u);
  ASSERT_EQ(to<ev::Message>(out, kC).size(), 1u);
  EXPECT_TRUE(to<ev::Message>(out, kB)[0].broadcast);
  EXPECT_EQ(to<ev::Ok>(out, kA).size(), 1u);
  // A broadcast shares one event object among its recipients.
  std::set<const Event*> objects;
  for (const auto& d : out) {
    if (std::holds_alternative<ev::Message>(*d.event)) objects.insert(d.event.get());
  }
  EXPECT_EQ(objects.size(), 1u);
}

TEST_F(RoomTest, ChatReachesEveryoneIncludingTheSenderWithNameAndTime) {
  std::string a = join(kA, "Alice");
  join(kB, "Bob");
  Outbox out;
  room.chat(kA, 2, a, "hi", 1234, out);
  for (Endpoint ep : {kA, kB}) {
    auto chat = to<ev::Chat>(out, ep);
    ASSERT_EQ(chat.size(), 1u);
    EXPECT_EQ(chat[0].text, "hi");
    EXPECT_EQ(chat[0].name, "Alice");
    EXPECT_EQ(chat[0].from, a);
    EXPECT_EQ(chat[0].ts, 1234);
  }
  EXPECT_EQ(to<ev::Ok>(out, kA).at(0).ts, 1234);
}

TEST_F(RoomTest, StatePatchUpdatesAndIsBroadcastWhole) {
  std::string a = join(kA, "A");
  join(kB, "B");
  Outbox out;
  room.setState(kA, kNoRequest, a, MediaStatePatch{true, std::nullopt, std::nullopt}, out);
  room.setState(kA, kNoRequest, a, MediaStatePatch{std::nullopt, true, std::nullopt}, out);
  auto st = to<ev::PeerState>(out, kB);
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[1].state, (MediaState{true, true, false}));
  EXPECT_TRUE(to<ev::PeerState>(out, kA).empty());
  EXPECT_EQ(room.members().at(0).state, (MediaState{true, true, false}));
}

TEST_F(RoomTest, LeaveTellsTheOthers) {
  std::string a = join(kA, "A");
  join(kB, "B");
  Outbox out;
  room.leave(kA, 3, a, out);
  EXPECT_EQ(to<ev::Ok>(out, kA).size(), 1u);
  auto left = to<ev::PeerLeft>(out, kB);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].peer, a);
  EXPECT_EQ(left[0].reason, LeaveReason::kLeft);
  EXPECT_EQ(room.size(), 1u);
}

TEST_F(RoomTest, DetachedPeerIsRemovedAfterTheGracePeriod) {
  join(kA, "A");
  std::string b = join(kB, "B");
  Outbox out;
  room.detach(kB, now, out);
  EXPECT_TRUE(out.empty());  // nobody is told yet
  EXPECT_EQ(room.tick(now + 14s, out), now + 15s);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(room.tick(now + 15s, out), TimePoint::max());
  auto left = to<ev::PeerLeft>(out, kA);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].peer, b);
  EXPECT_EQ(left[0].reason, LeaveReason::kDisconnected);
  EXPECT_FALSE(room.contains(b));
}

TEST_F(RoomTest, APeerGoingAwayIsRemovedAtOnceAsLeft) {
  join(kA, "A");
  std::string b = join(kB, "B");
  Outbox out;
  room.detach(kB, now, out, /*goingAway=*/true);
  auto left = to<ev::PeerLeft>(out, kA);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].peer, b);
  EXPECT_EQ(left[0].reason, LeaveReason::kLeft);
  EXPECT_FALSE(room.contains(b));
  out.clear();
  EXPECT_FALSE(room.resume(kA2, 8, b, tokens[b], now + 1s, out));  // nothing left to resume
}

TEST_F(RoomTest, ResumeWithinGraceKeepsTheIdAndDeliversWhatWasQueued) {
  std::string a = join(kA, "A");
  std::string b = join(kB, "B");
  Outbox out;
  room.detach(kB, now, out);
  room.signal(kA, kNoRequest, a, b, R"("one")", out);
  room.message(kA, kNoRequest, a, "", R"("two")", out);
  EXPECT_TRUE(to<ev::Signal>(out, kB).empty());
  out.clear();
  ASSERT_TRUE(room.resume(kA2, 8, b, tokens[b], now + 10s, out));
  ASSERT_EQ(out.size(), 3u);
  const auto* joined = std::get_if<ev::Joined>(out[0].event.get());
  ASSERT_NE(joined, nullptr);
  EXPECT_EQ(joined->peer, b);
  EXPECT_TRUE(joined->resumed);
  EXPECT_EQ(joined->re, 8);
  EXPECT_EQ(std::get<ev::Signal>(*out[1].event).data, R"("one")");
  EXPECT_EQ(std::get<ev::Message>(*out[2].event).data, R"("two")");
  for (const auto& d : out) EXPECT_EQ(d.to, kA2);
  EXPECT_TRUE(to<ev::PeerLeft>(out, kA).empty());
  // The peer is attached again: tick removes nobody, and it can send from its new connection.
  out.clear();
  room.tick(now + 30s, out);
  EXPECT_TRUE(room.contains(b));
  room.signal(kA2, kNoRequest, b, a, "{}", out);
  EXPECT_EQ(to<ev::Signal>(out, kA).size(), 1u);
}

TEST_F(RoomTest, AResumeTokenIsSpentByItsResume) {
  std::string b = join(kB, "B");
  Outbox out;
  room.detach(kB, now, out);
  ASSERT_TRUE(room.resume(kA2, 1, b, tokens[b], now + 1s, out));
  auto joined = to<ev::Joined>(out, kA2);
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_FALSE(joined[0].resume.empty());
  EXPECT_NE(joined[0].resume, tokens[b]);
  out.clear();
  room.detach(kA2, now + 2s, out);
  EXPECT_FALSE(room.resume(kB, 2, b, tokens[b], now + 3s, out));  // the old token is spent
  EXPECT_TRUE(room.resume(kB, 3, b, joined[0].resume, now + 3s, out));
}

TEST_F(RoomTest, AClientChosenResumeTokenStays) {
  Outbox out;
  std::string id = room.join(JoinRequest{kB, 1, "B", {}, "p-b", "client-token"}, now, out);
  ASSERT_EQ(id, "p-b");
  room.detach(kB, now, out);
  ASSERT_TRUE(room.resume(kA2, 2, id, "client-token", now + 1s, out));
  room.detach(kA2, now + 2s, out);
  out.clear();
  ASSERT_TRUE(room.resume(kB, 3, id, "client-token", now + 3s, out));
  EXPECT_EQ(to<ev::Joined>(out, kB).at(0).resume, "client-token");
}

TEST_F(RoomTest, TheTokensUserTravelsWithThePeerAndIsNotTheName) {
  std::string a = join(kA, "Alice");
  Outbox out;
  std::string b = room.join(JoinRequest{kB, 1, "Not Alice", {}, {}, {}, "bob"}, now, out);
  auto seen = to<ev::PeerJoined>(out, kA);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].peer.user, "bob");
  EXPECT_EQ(seen[0].peer.name, "Not Alice");
  out.clear();
  room.join(JoinRequest{kC, 1, "C", {}, {}}, now, out);
  auto joined = to<ev::Joined>(out, kC).at(0);
  ASSERT_EQ(joined.peers.size(), 2u);
  EXPECT_EQ(joined.peers[0].user, "");
  EXPECT_EQ(joined.peers[1].user, "bob");
  EXPECT_EQ(joined.peers[1].name, "Not Alice");
  out.clear();
  EXPECT_TRUE(room.join(JoinRequest{kA2, 1, "D", {}, {}, {}, std::string(256, 'u')}, now, out).empty());
  EXPECT_EQ(to<ev::Error>(out, kA2).at(0).code, ErrorCode::kUnauthorized);
  (void)a;
  (void)b;
}

TEST_F(RoomTest, ResumeFailsWithWrongTokenOrAfterGrace) {
  std::string b = join(kB, "B");
  Outbox out;
  room.detach(kB, now, out);
  EXPECT_FALSE(room.resume(kA2, 1, b, "wrong", now + 1s, out));
  EXPECT_FALSE(room.resume(kA2, 2, b, "", now + 1s, out));
  EXPECT_FALSE(room.resume(kA2, 3, b, tokens[b], now + 15s, out));
  EXPECT_FALSE(room.resume(kA2, 4, "nobody", tokens[b], now + 1s, out));
  auto err = to<ev::Error>(out, kA2);
  ASSERT_EQ(err.size(), 4u);
  for (const auto& e : err) EXPECT_EQ(e.code, ErrorCode::kResumeFailed);
}

TEST_F(RoomTest, ResumeWhileTheOldConnectionLingersReplacesIt) {
  std::string b = join(kB, "B");
  Outbox out;
  ASSERT_TRUE(room.resume(kA2, 1, b, tokens[b], now, out));
  auto bye = to<ev::Bye>(out, kB);
  ASSERT_EQ(bye.size(), 1u);
  EXPECT_EQ(bye[0].reason, ByeReason::kReplaced);
  // The old connection's close must not detach the resumed peer.
  out.clear();
  room.detach(kB, now, out);
  room.tick(now + 1h, out);
  EXPECT_TRUE(room.contains(b));
}

TEST_F(RoomTest, ResumeQueueIsBoundedOldestDropped) {
  limits.resumeQueueMessages = 3;
  std::string a = join(kA, "A"), b = join(kB, "B");
  Outbox out;
  room.detach(kB, now, out);
  for (int i = 0; i < 10; ++i) room.signal(kA, kNoRequest, a, b, std::to_string(i), out);
  out.clear();
  ASSERT_TRUE(room.resume(kA2, 1, b, tokens[b], now + 1s, out));
  auto sig = to<ev::Signal>(out, kA2);
  ASSERT_EQ(sig.size(), 3u);
  EXPECT_EQ(sig[0].data, "7");
  EXPECT_EQ(sig[2].data, "9");
}

TEST_F(RoomTest, ZeroGraceRemovesAtOnce) {
  limits.resumeGrace = 0s;
  join(kA, "A");
  std::string b = join(kB, "B");
  Outbox out;
  room.detach(kB, now, out);
  EXPECT_EQ(to<ev::PeerLeft>(out, kA).size(), 1u);
  EXPECT_FALSE(room.contains(b));
}

TEST_F(RoomTest, DetachOfAnUnknownConnectionDoesNothing) {
  join(kA, "A");
  Outbox out;
  room.detach(kC, now, out);
  room.tick(now + 1h, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(room.size(), 1u);
}

TEST_F(RoomTest, ClientChosenIdsAreKeptAndMustBeUnique) {
  Outbox out;
  EXPECT_EQ(room.join(JoinRequest{kA, 1, "A", {}, "fixed-id"}, now, out), "fixed-id");
  EXPECT_TRUE(room.join(JoinRequest{kB, 2, "B", {}, "fixed-id"}, now, out).empty());
  EXPECT_EQ(to<ev::Error>(out, kB).size(), 1u);
}

}  // namespace
}  // namespace kaiwa::signal

namespace kaiwa::signal {
namespace {

TEST(RoomErrors, OnlyJoinAndResumeRefusalsAreMarkedAsSuch) {
  Limits limits;
  limits.peersPerRoom = 1;
  Room room("r", limits);
  Outbox out;
  std::string a = room.join(JoinRequest{{0, 1}, 1, "A", {}, {}}, TimePoint{}, out);
  room.join(JoinRequest{{0, 2}, 2, "B", {}, {}}, TimePoint{}, out);  // room-full
  room.resume({0, 3}, 3, a, "wrong", TimePoint{}, out);              // resume-failed
  room.signal({0, 1}, 4, a, "nobody", "{}", out);                    // unknown-peer
  std::vector<std::pair<ErrorCode, bool>> seen;
  for (const auto& d : out) {
    if (const auto* e = std::get_if<ev::Error>(d.event.get())) seen.emplace_back(e->code, e->refusesJoin);
  }
  std::vector<std::pair<ErrorCode, bool>> expected{
      {ErrorCode::kRoomFull, true}, {ErrorCode::kResumeFailed, true}, {ErrorCode::kUnknownPeer, false}};
  EXPECT_EQ(seen, expected);
}

}  // namespace
}  // namespace kaiwa::signal

namespace kaiwa::signal {
namespace {

// Member lists stay in join order through heavy churn (leaves leave stale entries that are swept later), and an id
// that leaves and joins again is listed once, at its new place.
TEST(RoomOrder, ChurnKeepsJoinOrderAndRejoinedIdsAppearOnce) {
  Limits limits;
  limits.peersPerRoom = 1000;
  Room room{"churn", limits};
  TimePoint now{};
  auto ep = [](uint64_t i) { return Endpoint{0, i + 1}; };
  auto id = [](int i) {
    std::string s = "p";
    s += std::to_string(i);
    return s;
  };  // not "p" + string&&: GCC 12 -O3 -Wrestrict
  for (int i = 0; i < 200; ++i) {
    Outbox out;
    ASSERT_EQ(room.join(JoinRequest{ep(i), kNoRequest, "n", {}, id(i)}, now, out), id(i));
  }
  // Every even peer leaves (enough to sweep the stale entries more than once), then p10 comes back.
  for (int i = 0; i < 200; i += 2) {
    Outbox out;
    room.detach(ep(i), now, out, /*goingAway=*/true, i % 4 == 0 ? id(i) : std::string());  // with and without hint
  }
  Outbox out;
  ASSERT_EQ(room.join(JoinRequest{ep(1000), kNoRequest, "again", {}, id(10)}, now, out), id(10));
  std::vector<std::string> expected;
  for (int i = 1; i < 200; i += 2) expected.push_back(id(i));
  expected.push_back(id(10));
  std::vector<std::string> listed;
  for (const auto& m : room.members()) listed.push_back(m.id);
  EXPECT_EQ(listed, expected);
  // A broadcast reaches each member once.
  Outbox chat;
  room.chat(ep(1), kNoRequest, id(1), "hello", 0, chat);
  std::map<uint64_t, int> perSession;
  for (const auto& d : chat) {
    if (std::holds_alternative<ev::Chat>(*d.event)) ++perSession[d.to.session];
  }
  EXPECT_EQ(perSession.size(), expected.size());
  for (const auto& [session, n] : perSession) EXPECT_EQ(n, 1) << session;
}

// An event that tells deliveries apart by its text.
ev::Error note(std::string text) { return ev::Error{1, ErrorCode::kBadMessage, std::move(text)}; }

// Events' blocks are kept per thread for the next event (room.cpp, FreeBlocks).
TEST(RoomEvents, AFreedEventsBlockServesTheNextEventOfTheThread) {
  Outbox out;
  reply(out, kA, note("one"));
  const void* first = out[0].event.get();
  out.clear();
  reply(out, kA, ev::Error{7, ErrorCode::kBadMessage, std::string(100, 'x')});
  EXPECT_EQ(out[0].event.get(), first);
  const auto& e = std::get<ev::Error>(*out[0].event);  // a new event in it, whole
  EXPECT_EQ(e.re, 7);
  EXPECT_EQ(e.message, std::string(100, 'x'));
}

TEST(RoomEvents, AnEventFreedOnAnotherThreadServesThatThread) {
  Outbox made;
  std::thread([&] { reply(made, kA, note("made there")); }).join();
  const void* block = made[0].event.get();
  made.clear();  // the last reference goes here
  Outbox again;
  reply(again, kA, note("made here"));
  EXPECT_EQ(again[0].event.get(), block);
  EXPECT_EQ(std::get<ev::Error>(*again[0].event).message, "made here");
}

// An event freed by a thread-local object as its thread ends, after the thread's kept blocks were freed: freed too
// (LeakSanitizer, in the sanitizer build, fails this test if it went to a list no longer there).
TEST(RoomEvents, AnEventFreedAsItsThreadEndsIsFreed) {
  std::thread([] {
    thread_local Outbox late;  // made before the thread's first event: destroyed after its FreeBlocks
    reply(late, kA, note("late"));
    Outbox now;
    reply(now, kA, note("now"));
    now.clear();  // one block kept
    EXPECT_EQ(std::get<ev::Error>(*late[0].event).message, "late");
  }).join();
}

// More events than a thread keeps, freed and made again; what it keeps is freed when it ends (LeakSanitizer, in the
// sanitizer build, fails this test otherwise).
TEST(RoomEvents, ManyEventsOnAThreadThatEnds) {
  std::thread([] {
    for (int round = 0; round < 3; ++round) {
      Outbox out;
      for (int i = 0; i < 1000; ++i) reply(out, kA, note(std::to_string(round * 1000 + i) + std::string(20, '.')));
      for (int i = 0; i < 1000; ++i) {
        EXPECT_EQ(std::get<ev::Error>(*out[i].event).message, std::to_string(round * 1000 + i) + std::string(20, '.'));
      }
    }
  }).join();
}

}  // namespace
}  // namespace kaiwa::signal
