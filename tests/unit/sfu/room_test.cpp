// sfu::Room: who receives which track on which m-line, offer versions and the one-outstanding-offer rule.
#include "sfu/room.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace kaiwa::sfu {
namespace {

Room makeRoom(RoomLimits limits = {}) {
  auto next = std::make_shared<uint32_t>(0);
  return Room(limits, [next] { return ++*next; });
}

std::vector<PublishedTrack> cameraAndMic(TrackId video, TrackId audio) {
  return {{Source::kCamera, MediaKind::kVideo, video}, {Source::kMicrophone, MediaKind::kAudio, audio}};
}

const Offer* offerFor(const std::vector<Offer>& offers, std::string_view peer) {
  for (const Offer& o : offers) {
    if (o.peer == peer) return &o;
  }
  return nullptr;
}

TEST(SfuRoom, PublishMakesAnOfferForEveryOtherMemberNeverItsOwn) {
  Room room = makeRoom();
  for (auto p : {"a", "b", "c"}) room.addSubscriber(p);
  EXPECT_TRUE(room.takeOffers().empty());  // nothing to receive yet: no empty first offer
  room.setTracks("a", cameraAndMic(1, 2));
  auto offers = room.takeOffers();
  ASSERT_EQ(offers.size(), 2u);
  EXPECT_EQ(offerFor(offers, "a"), nullptr);
  for (auto p : {"b", "c"}) {
    const Offer* o = offerFor(offers, p);
    ASSERT_NE(o, nullptr);
    EXPECT_EQ(o->version, 1u);
    ASSERT_EQ(o->lines.size(), 2u);
    EXPECT_EQ(o->lines[0].mid, "0");
    EXPECT_EQ(o->lines[0].peer, "a");
    EXPECT_EQ(o->lines[0].source, Source::kCamera);
    EXPECT_EQ(o->lines[1].source, Source::kMicrophone);
    EXPECT_NE(o->lines[0].ssrc, o->lines[0].rtxSsrc);
    EXPECT_NE(o->lines[0].ssrc, o->lines[1].ssrc);
  }
  EXPECT_TRUE(room.takeOffers().empty());
}

TEST(SfuRoom, AnswerStartsTheSubscriptionsOfItsVersion) {
  Room room = makeRoom();
  room.addSubscriber("b");
  room.setTracks("a", cameraAndMic(1, 2));
  auto offers = room.takeOffers();
  ASSERT_EQ(offers.size(), 1u);
  auto stale = room.answer("b", 7);
  EXPECT_FALSE(stale.changes);
  EXPECT_EQ(stale.refusal, AnswerRefusal::kStale);
  auto r = room.answer("b", 1);
  ASSERT_TRUE(r.changes);
  ASSERT_EQ(r.changes->start.size(), 2u);
  EXPECT_EQ(r.changes->start[0].track, TrackId(1));
  EXPECT_TRUE(r.changes->stop.empty());
  // Answering the same version again is stale: nothing is outstanding.
  EXPECT_FALSE(room.answer("b", 1).changes);
  EXPECT_EQ(room.answer("zz", 1).refusal, AnswerRefusal::kUnknown);
}

TEST(SfuRoom, AChangeWhileAnOfferIsOutstandingWaitsForTheAnswer) {
  Room room = makeRoom();
  room.addSubscriber("c");
  room.setTracks("a", cameraAndMic(1, 2));
  ASSERT_EQ(room.takeOffers().size(), 1u);
  room.setTracks("b", cameraAndMic(3, 4));
  EXPECT_TRUE(room.takeOffers().empty());  // version 1 still waits
  EXPECT_EQ(room.outstanding("c"), 1u);
  ASSERT_TRUE(room.answer("c", 1).changes);
  auto offers = room.takeOffers();
  ASSERT_EQ(offers.size(), 1u);
  EXPECT_EQ(offers[0].version, 2u);
  ASSERT_EQ(offers[0].lines.size(), 4u);
  EXPECT_EQ(offers[0].lines[2].peer, "b");
  auto r = room.answer("c", 2);
  ASSERT_TRUE(r.changes);
  EXPECT_EQ(r.changes->start.size(), 2u);  // only b's tracks start; a's go on
}

TEST(SfuRoom, AStoppedTracksLineGoesInactiveAndIsReused) {
  Room room = makeRoom();
  room.addSubscriber("c");
  room.setTracks("a", cameraAndMic(1, 2));
  room.setTracks("b", cameraAndMic(3, 4));
  auto first = room.takeOffers();
  ASSERT_EQ(first[0].lines.size(), 4u);
  ASSERT_TRUE(room.answer("c", 1).changes);

  room.removeMember("a");
  auto second = room.takeOffers();
  ASSERT_EQ(second.size(), 1u);
  ASSERT_EQ(second[0].lines.size(), 4u);
  EXPECT_FALSE(second[0].lines[0].track);
  EXPECT_FALSE(second[0].lines[1].track);
  EXPECT_EQ(second[0].lines[2].track, TrackId(3));
  auto r = room.answer("c", 2);
  ASSERT_TRUE(r.changes);
  EXPECT_EQ(r.changes->stop, (std::vector<TrackId>{1, 2}));
  EXPECT_TRUE(r.changes->start.empty());

  // A new publisher's video and audio take the inactive lines of their kinds; no line is added.
  room.setTracks("d", cameraAndMic(5, 6));
  auto third = room.takeOffers();
  ASSERT_EQ(third.size(), 1u);
  ASSERT_EQ(third[0].lines.size(), 4u);
  EXPECT_EQ(third[0].lines[0].track, TrackId(5));
  EXPECT_EQ(third[0].lines[0].mid, "0");
  EXPECT_EQ(third[0].lines[1].track, TrackId(6));
  EXPECT_NE(third[0].lines[0].ssrc, first[0].lines[0].ssrc);  // a new track, new SSRCs
}

TEST(SfuRoom, ANewTrackOfAPublisherAddsALineAndAStoppedOneEnds) {
  Room room = makeRoom();
  room.addSubscriber("b");
  room.setTracks("a", cameraAndMic(1, 2));
  room.takeOffers();
  room.answer("b", 1);
  auto withScreen = cameraAndMic(1, 2);
  withScreen.push_back({Source::kScreen, MediaKind::kVideo, 3});
  room.setTracks("a", withScreen);
  auto o = room.takeOffers();
  ASSERT_EQ(o.size(), 1u);
  ASSERT_EQ(o[0].lines.size(), 3u);
  EXPECT_EQ(o[0].lines[2].source, Source::kScreen);
  room.answer("b", 2);
  room.setTracks("a", cameraAndMic(1, 2));
  o = room.takeOffers();
  ASSERT_EQ(o.size(), 1u);
  EXPECT_FALSE(o[0].lines[2].track);
}

TEST(SfuRoom, ResetSubscriberStartsAgainAtVersionOne) {
  Room room = makeRoom();
  room.addSubscriber("b");
  room.setTracks("a", cameraAndMic(1, 2));
  room.takeOffers();
  room.resetSubscriber("b");
  auto o = room.takeOffers();
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].version, 1u);
  EXPECT_EQ(o[0].lines.size(), 2u);
}

TEST(SfuRoom, Limits) {
  Room room = makeRoom({.publishersPerRoom = 2, .tracksPerPublisher = 2, .linesPerSubscriber = 3});
  EXPECT_EQ(room.mayPublish("a", 3), PublishRefusal::kTooManyTracks);
  EXPECT_FALSE(room.mayPublish("a", 2));
  room.setTracks("a", cameraAndMic(1, 2));
  room.setTracks("b", cameraAndMic(3, 4));
  EXPECT_EQ(room.mayPublish("c", 1), PublishRefusal::kTooManyPublishers);
  EXPECT_FALSE(room.mayPublish("a", 1));  // a publisher renegotiating is not a new one
  room.addSubscriber("c");
  auto o = room.takeOffers();
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].lines.size(), 3u);  // the fourth track is not offered
}

TEST(SfuRoom, SubscribeRestartOffersEveryCurrentTrackAtVersionOneOnFreshLines) {
  Room room = makeRoom();
  room.addSubscriber("c");
  room.setTracks("a", cameraAndMic(1, 2));
  auto first = room.takeOffers();
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(room.answer("c", 1).changes);
  room.setTracks("b", cameraAndMic(3, 4));
  auto second = room.takeOffers();  // version 2 is outstanding when the page asks for a restart
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].version, 2u);
  const TimePoint t0{std::chrono::seconds(100)};
  EXPECT_FALSE(room.restartSubscriber("c", t0));
  EXPECT_FALSE(room.outstanding("c"));  // the old connection's offer is forgotten
  auto o = room.takeOffers();
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].version, 1u);
  ASSERT_EQ(o[0].lines.size(), 4u);  // every track of both publishers, on lines "0".."3"
  std::vector<TrackId> carried;
  for (size_t i = 0; i < o[0].lines.size(); ++i) {
    EXPECT_EQ(o[0].lines[i].mid, std::to_string(i));
    ASSERT_TRUE(o[0].lines[i].track);
    carried.push_back(*o[0].lines[i].track);
  }
  std::sort(carried.begin(), carried.end());
  EXPECT_EQ(carried, (std::vector<TrackId>{1, 2, 3, 4}));
  // The answer to the new version 1 starts all four on the new connection; the old version 2 is stale.
  EXPECT_FALSE(room.answer("c", 2).changes);
  auto r = room.answer("c", 1);
  ASSERT_TRUE(r.changes);
  EXPECT_EQ(r.changes->start.size(), 4u);
  EXPECT_TRUE(r.changes->stop.empty());
}

TEST(SfuRoom, SubscribeRestartIsRateLimitedPerMember) {
  Room room = makeRoom({.subscribeRestartInterval = std::chrono::milliseconds(2000)});
  for (auto p : {"b", "c"}) room.addSubscriber(p);
  room.setTracks("a", cameraAndMic(1, 2));
  room.takeOffers();
  const TimePoint t0{std::chrono::seconds(100)};
  EXPECT_FALSE(room.restartSubscriber("b", t0));
  EXPECT_EQ(room.restartSubscriber("b", t0 + std::chrono::milliseconds(1999)), RestartRefusal::kTooSoon);
  EXPECT_FALSE(room.restartSubscriber("c", t0 + std::chrono::milliseconds(1)));  // per member
  EXPECT_FALSE(room.restartSubscriber("b", t0 + std::chrono::milliseconds(2000)));
  EXPECT_EQ(room.restartSubscriber("nobody", t0), RestartRefusal::kNotReceiving);
  room.setTracks("x", {});  // a member who only publishes (nothing) and does not receive
  EXPECT_EQ(room.restartSubscriber("x", t0), RestartRefusal::kNotReceiving);
}

TEST(SfuRoom, ARetiredMemberKeepsItsTracksForTheGraceAndGetsNoOffer) {
  Room room = makeRoom({.meshGrace = std::chrono::seconds(10)});
  for (auto p : {"a", "b"}) room.addSubscriber(p);
  room.setTracks("a", cameraAndMic(1, 2));
  room.setTracks("b", cameraAndMic(3, 4));
  auto offers = room.takeOffers();
  ASSERT_EQ(offers.size(), 2u);
  for (auto p : {"a", "b"}) ASSERT_TRUE(room.answer(p, 1).changes);
  const TimePoint t0{std::chrono::seconds(100)};
  room.retire("a", t0);
  room.retire("b", t0 + std::chrono::seconds(1));
  EXPECT_TRUE(room.retiring("a"));
  // Still published and still receiving: nothing stops.
  ASSERT_NE(room.tracks("a"), nullptr);
  EXPECT_EQ(room.tracks("a")->size(), 2u);
  EXPECT_EQ(room.lines("a").size(), 2u);
  // A change (c publishes) makes no offer to a retired member.
  room.setTracks("c", cameraAndMic(5, 6));
  EXPECT_TRUE(room.takeOffers().empty());
  EXPECT_TRUE(room.retiredBy(t0 + std::chrono::milliseconds(9999)).empty());
  EXPECT_EQ(room.retiredBy(t0 + std::chrono::seconds(10)), (std::vector<std::string>{"a"}));
  EXPECT_EQ(room.retiredBy(t0 + std::chrono::seconds(11)), (std::vector<std::string>{"a", "b"}));
  room.removeMember("a");  // what the caller does with them
  EXPECT_EQ(room.retiredBy(t0 + std::chrono::seconds(11)), (std::vector<std::string>{"b"}));
  // Retiring again does not push the deadline back.
  room.retire("b", t0 + std::chrono::seconds(5));
  EXPECT_EQ(room.retiredBy(t0 + std::chrono::seconds(11)), (std::vector<std::string>{"b"}));
}

TEST(SfuRoom, BackToSfuTakesARetiredMemberBackWithTheOfferItMissed) {
  Room room = makeRoom();
  room.addSubscriber("b");
  room.setTracks("a", cameraAndMic(1, 2));
  room.takeOffers();
  ASSERT_TRUE(room.answer("b", 1).changes);
  const TimePoint t0{std::chrono::seconds(100)};
  room.retire("b", t0);
  room.setTracks("c", cameraAndMic(3, 4));
  EXPECT_TRUE(room.takeOffers().empty());
  room.addSubscriber("b");
  EXPECT_FALSE(room.retiring("b"));
  EXPECT_TRUE(room.retiredBy(t0 + std::chrono::seconds(60)).empty());
  auto o = room.takeOffers();
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].version, 2u);
  EXPECT_EQ(o[0].lines.size(), 4u);
}

}  // namespace
}  // namespace kaiwa::sfu
