#include "sfu/active_speaker.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <vector>

namespace kaiwa::sfu {
namespace {

using namespace std::chrono_literals;
using Id = ActiveSpeaker::SpeakerId;

// RFC 6464 levels (-dBov): speech around -30 dBov, a quiet room around -90, a noisy microphone's hiss at -60.
constexpr uint8_t kSpeech = 30;
constexpr uint8_t kQuiet = 90;
constexpr uint8_t kHiss = 60;
constexpr uint8_t kMuted = 127;

// Drives an ActiveSpeaker at 20 ms audio packets and 100 ms ticks on a fake clock, and records each change.
class Room {
 public:
  explicit Room(ActiveSpeaker::Config config = {}) : detector(config) {}

  // `ms` of time in which each listed speaker sends packets at the level `levelOf(id, packet)` gives; everyone
  // else sends the quiet room's level (a muted microphone still sends packets).
  template <class F>
  void run(std::chrono::milliseconds ms, F levelOf, bool vad = false) {
    for (auto end = now + ms; now < end;) {
      for (int p = 0; p < 5; ++p, ++packet) {
        for (Id id : ids) {
          const uint8_t level = levelOf(id, packet);
          detector.onLevel(id, vad && level <= kSpeech + 10, level);
        }
      }
      now += 100ms;
      if (auto d = detector.tick(now)) changes.push_back({now - start, *d});
    }
  }
  // Speakers in `talking` talk (continuous speech with a short dip every 400 ms, as between words), the rest are quiet.
  void talk(std::chrono::milliseconds ms, std::vector<Id> talking, bool vad = false) {
    run(
        ms,
        [&](Id id, int packet) {
          for (Id t : talking)
            if (t == id) return packet % 20 == 19 ? kQuiet : kSpeech;
          return kQuiet;
        },
        vad);
  }
  void add(Id id) {
    ids.push_back(id);
    detector.add(id);
  }

  ActiveSpeaker detector;
  std::vector<Id> ids;
  TimePoint start{};
  TimePoint now{};
  int packet = 0;
  std::vector<std::pair<std::chrono::nanoseconds, Id>> changes;
};

TEST(ActiveSpeaker, NobodyTalkingNobodyDominant) {
  Room room;
  room.add(1);
  room.add(2);
  room.talk(5s, {});
  EXPECT_EQ(room.detector.dominant(), std::nullopt);
  EXPECT_TRUE(room.changes.empty());
}

TEST(ActiveSpeaker, FirstTalkerInASilentRoomIsTakenQuickly) {
  Room room;
  room.add(1);
  room.add(2);
  room.talk(2s, {});
  room.talk(1s, {2});
  ASSERT_EQ(room.changes.size(), 1u);
  EXPECT_EQ(room.changes[0].second, 2u);
  EXPECT_LE(room.changes[0].first, 2s + 500ms);  // within half a second of starting to talk
}

TEST(ActiveSpeaker, TakeOverAboutASecondAfterTheOtherStops) {
  Room room;
  room.add(1);
  room.add(2);
  room.talk(3s, {1});
  ASSERT_EQ(room.detector.dominant(), 1u);
  room.changes.clear();
  room.talk(3s, {2});  // 1 stops, 2 starts at t = 3 s
  ASSERT_EQ(room.changes.size(), 1u);
  EXPECT_EQ(room.changes[0].second, 2u);
  EXPECT_GE(room.changes[0].first, 3s + 800ms) << "no switch on the first few hundred milliseconds";
  EXPECT_LE(room.changes[0].first, 3s + 1600ms);
}

TEST(ActiveSpeaker, AnInterjectionChangesNothing) {
  Room room;
  room.add(1);
  room.add(2);
  room.talk(3s, {1});
  room.talk(400ms, {1, 2});  // 2 says "yes" over 1
  room.talk(600ms, {1});
  room.talk(300ms, {2});  // 1 pauses for breath, 2 coughs
  room.talk(3s, {1});
  ASSERT_EQ(room.changes.size(), 1u);
  EXPECT_EQ(room.detector.dominant(), 1u);
}

TEST(ActiveSpeaker, TwoTalkingAtOnceDoNotFlap) {
  Room room;
  room.add(1);
  room.add(2);
  room.talk(2s, {1});
  room.talk(10s, {1, 2});
  EXPECT_EQ(room.changes.size(), 1u) << "the first speaker stays while both talk";
  EXPECT_EQ(room.detector.dominant(), 1u);
}

TEST(ActiveSpeaker, ALittleMoreTalkDoesNotTakeOver) {
  // Both talk; 2 pauses a little less than 1 (85 % against 75 % of packets are speech): not clearer speech.
  Room room;
  room.add(1);
  room.add(2);
  room.talk(2s, {1});
  room.run(10s, [](Id id, int packet) {
    if (id == 1) return packet % 4 == 3 ? kQuiet : kSpeech;
    return packet % 20 >= 17 ? kQuiet : kSpeech;
  });
  EXPECT_EQ(room.detector.dominant(), 1u);
  EXPECT_EQ(room.changes.size(), 1u);
}

TEST(ActiveSpeaker, SilenceKeepsTheLastSpeaker) {
  Room room;
  room.add(1);
  room.add(2);
  room.talk(2s, {2});
  room.talk(10s, {});
  EXPECT_EQ(room.detector.dominant(), 2u);
  EXPECT_EQ(room.changes.size(), 1u);
}

TEST(ActiveSpeaker, ANoisyMicrophoneIsNotATalker) {
  Room room;
  room.add(1);
  room.add(2);
  // 2's microphone hisses at -60 dBov all the time (no VAD flag); after its floor has settled, 1 talks.
  auto hissAnd = [](std::vector<Id> talking) {
    return [talking](Id id, int packet) {
      for (Id t : talking)
        if (t == id) return packet % 20 == 19 ? kQuiet : kSpeech;
      return id == 2 ? kHiss : kQuiet;
    };
  };
  room.run(5s, hissAnd({}));
  EXPECT_EQ(room.detector.dominant(), std::nullopt) << "hiss alone is not speech once the floor has followed it";
  EXPECT_GT(room.detector.activity(2)->noiseFloor, 127.0 - kHiss - 15);
  room.run(2s, hissAnd({1}));
  EXPECT_EQ(room.detector.dominant(), 1u);
  // And 2 can still talk over its hiss: speech is 30 dB above it.
  room.run(4s, hissAnd({2}));
  EXPECT_EQ(room.detector.dominant(), 2u);
}

TEST(ActiveSpeaker, TheVoiceActivityFlagDecidesForASenderThatSetsIt) {
  Room room;
  room.add(1);
  room.add(2);
  // Loud but flagged as no voice (music, a keyboard): never speech for a sender with a VAD.
  room.run(
      1s, [](Id id, int) { return id == 1 ? kSpeech : kQuiet; }, /*vad=*/true);  // sets 1's flag once
  room.changes.clear();
  room.run(
      3s, [](Id id, int) { return id == 1 ? kSpeech : kQuiet; }, /*vad=*/false);
  EXPECT_TRUE(room.changes.empty() || room.changes.back().second == 1u);
  auto a = room.detector.activity(1);
  ASSERT_TRUE(a);
  EXPECT_LT(a->shortTerm, 0.1) << "flag off: not speech although loud";
}

TEST(ActiveSpeaker, MutedMicrophoneIsSilence) {
  Room room;
  room.add(1);
  room.run(3s, [](Id, int) { return kMuted; });
  EXPECT_EQ(room.detector.dominant(), std::nullopt);
  EXPECT_EQ(room.detector.activity(1)->longTerm, 0.0);
}

TEST(ActiveSpeaker, TheDominantSpeakerLeaving) {
  Room room;
  room.add(1);
  room.add(2);
  room.talk(2s, {1});
  ASSERT_EQ(room.detector.dominant(), 1u);
  room.detector.remove(1);
  room.ids = {2};
  EXPECT_EQ(room.detector.dominant(), std::nullopt);
  room.talk(1s, {2});
  EXPECT_EQ(room.detector.dominant(), 2u);
  room.detector.onLevel(1, true, kSpeech);  // a late packet from the one who left is ignored
  EXPECT_EQ(room.detector.size(), 1u);
}

TEST(ActiveSpeaker, ChallengerMustLeadContinuously) {
  // A challenger whose lead breaks off restarts its hold: alternating half-second turns never switch.
  Room room;
  room.add(1);
  room.add(2);
  room.talk(4s, {1});
  for (int i = 0; i < 10; ++i) {
    room.talk(400ms, {2});
    room.talk(400ms, {1});
  }
  EXPECT_EQ(room.detector.dominant(), 1u);
  EXPECT_EQ(room.changes.size(), 1u);
}

}  // namespace
}  // namespace kaiwa::sfu
