// The NACK generator on a fake clock: when holes are asked for, retries, recovery, giving up, the bounds, and the
// keyframe signal.
#include "rtp/nack_generator.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace kaiwa::rtp {
namespace {

using namespace std::chrono_literals;
using A = NackGenerator::Arrival;

struct Fixture {
  explicit Fixture(NackConfig c = {}) : nack(c) {}
  std::vector<uint16_t> collect() {
    std::array<uint16_t, 64> out{};
    size_t n = nack.collect(now, out);
    return {out.begin(), out.begin() + long(n)};
  }
  A arrive(uint16_t seq, bool keyframe = false) { return nack.onPacket(seq, now, keyframe); }
  TimePoint now{std::chrono::seconds(1000)};
  NackGenerator nack;
};

using Seqs = std::vector<uint16_t>;

TEST(NackGenerator, FirstAfterTheReorderDelayThenEveryRtt) {
  Fixture f;  // reorder delay 10 ms, RTT 100 ms
  EXPECT_EQ(f.arrive(1), A::kFirst);
  EXPECT_EQ(f.arrive(2), A::kInOrder);
  EXPECT_EQ(f.arrive(5), A::kAfterGap);
  EXPECT_EQ(f.nack.missing(), 2u);
  EXPECT_EQ(f.collect(), Seqs{});  // maybe only reordered
  EXPECT_EQ(f.nack.nextDue(), f.now + 10ms);
  f.now += 9ms;
  EXPECT_EQ(f.collect(), Seqs{});
  f.now += 1ms;
  EXPECT_EQ(f.collect(), (Seqs{3, 4}));
  EXPECT_EQ(f.collect(), Seqs{});  // asked already; the retry waits one RTT
  f.now += 99ms;
  EXPECT_EQ(f.collect(), Seqs{});
  f.now += 1ms;
  EXPECT_EQ(f.collect(), (Seqs{3, 4}));
  EXPECT_EQ(f.arrive(3), A::kRecovered);  // the retransmission
  f.now += 100ms;
  EXPECT_EQ(f.collect(), Seqs{4});
  EXPECT_EQ(f.nack.stats().requested, 5u);
  EXPECT_EQ(f.nack.stats().recovered, 1u);
  EXPECT_EQ(f.arrive(3), A::kLate);  // a second copy is nothing
  EXPECT_FALSE(f.nack.keyframeNeeded());
}

TEST(NackGenerator, ReorderedPacketIsNeverAskedFor) {
  Fixture f;
  f.arrive(10);
  f.arrive(12);
  f.now += 5ms;
  EXPECT_EQ(f.arrive(11), A::kRecovered);
  f.now += 1s;
  EXPECT_EQ(f.collect(), Seqs{});
  EXPECT_EQ(f.nack.missing(), 0u);
  EXPECT_FALSE(f.nack.nextDue());
}

TEST(NackGenerator, RttSetsTheRetryInterval) {
  NackConfig c;
  c.minRetryInterval = 20ms;
  Fixture f(c);
  f.arrive(1);
  f.arrive(3);
  f.now += 10ms;
  EXPECT_EQ(f.collect(), Seqs{2});
  f.nack.setRtt(40ms);
  f.now += 40ms;
  EXPECT_EQ(f.collect(), Seqs{2});
  f.nack.setRtt(5ms);  // below the floor
  f.now += 5ms;
  EXPECT_EQ(f.collect(), Seqs{});
  f.now += 15ms;
  EXPECT_EQ(f.collect(), Seqs{2});
}

TEST(NackGenerator, GivesUpAfterMaxRetriesAndWantsAKeyframe) {
  NackConfig c;
  c.maxRetries = 3;
  Fixture f(c);
  f.arrive(100);
  f.arrive(102);
  for (int i = 0; i < 3; ++i) {
    f.now += 100ms;
    EXPECT_EQ(f.collect(), Seqs{101}) << i;
  }
  EXPECT_FALSE(f.nack.keyframeNeeded());
  f.now += 100ms;
  EXPECT_EQ(f.collect(), Seqs{});
  EXPECT_EQ(f.nack.missing(), 0u);
  EXPECT_EQ(f.nack.stats().givenUp, 1u);
  EXPECT_TRUE(f.nack.keyframeNeeded());
  EXPECT_EQ(f.arrive(101), A::kLate);  // too late now
  f.nack.onKeyframeRequested();
  EXPECT_FALSE(f.nack.keyframeNeeded());
}

TEST(NackGenerator, WrapAround) {
  Fixture f;
  f.arrive(65533);
  f.arrive(65534);
  EXPECT_EQ(f.arrive(2), A::kAfterGap);
  f.now += 10ms;
  EXPECT_EQ(f.collect(), (Seqs{65535, 0, 1}));
  EXPECT_EQ(f.arrive(0), A::kRecovered);
  f.now += 100ms;
  EXPECT_EQ(f.collect(), (Seqs{65535, 1}));
}

TEST(NackGenerator, GapBeyondTheListEmptiesItAndWantsAKeyframe) {
  NackConfig c;
  c.maxListSize = 100;
  Fixture f(c);
  f.arrive(1);
  f.arrive(10);                            // 8 missing
  EXPECT_EQ(f.arrive(200), A::kOverflow);  // 189 more cannot be tracked
  EXPECT_EQ(f.nack.missing(), 0u);
  EXPECT_TRUE(f.nack.keyframeNeeded());
  EXPECT_EQ(f.arrive(5), A::kLate);
}

TEST(NackGenerator, ListBound) {
  NackConfig c;
  c.maxListSize = 100;
  Fixture f(c);
  f.arrive(1);
  f.arrive(10);                            // 2..9: 8 missing
  EXPECT_EQ(f.arrive(103), A::kAfterGap);  // 11..102: 92 more, 100 in all
  EXPECT_EQ(f.nack.missing(), 100u);
  EXPECT_EQ(f.arrive(105), A::kOverflow);  // one more does not fit
  EXPECT_EQ(f.nack.missing(), 0u);
  EXPECT_TRUE(f.nack.keyframeNeeded());
  EXPECT_EQ(f.nack.stats().overflows, 1u);
  f.now += 1s;
  EXPECT_EQ(f.collect(), Seqs{});
  EXPECT_EQ(f.arrive(106), A::kInOrder);  // and goes on from the new newest
}

TEST(NackGenerator, RingIsReusedAsHolesComeAndGo) {
  // A list of 4 entries under steady loss: one hole in every 3 packets, each recovered after a while. The ring
  // wraps many times and never fills.
  NackConfig c;
  c.maxListSize = 4;
  Fixture f(c);
  uint16_t seq = 60000;
  f.arrive(seq);
  for (int i = 0; i < 5000; ++i) {
    seq = uint16_t(seq + 2);  // seq - 1 is missing
    ASSERT_EQ(f.arrive(seq), A::kAfterGap) << i;
    if (i >= 2) {
      ASSERT_EQ(f.arrive(uint16_t(seq - 5)), A::kRecovered) << i;  // the hole of two rounds ago
    }
    ASSERT_LE(f.nack.missing(), 3u);
  }
  EXPECT_EQ(f.nack.stats().overflows, 0u);
  EXPECT_FALSE(f.nack.keyframeNeeded());
}

TEST(NackGenerator, HolesOutOfOrderRecoveryKeepsOrder) {
  Fixture f;
  f.arrive(1);
  f.arrive(4);  // 2, 3
  f.arrive(7);  // 5, 6
  EXPECT_EQ(f.arrive(5), A::kRecovered);
  EXPECT_EQ(f.arrive(2), A::kRecovered);
  f.now += 10ms;
  EXPECT_EQ(f.collect(), (Seqs{3, 6}));
}

TEST(NackGenerator, OldHolesAgeOut) {
  NackConfig c;
  c.maxPacketAge = 50;
  Fixture f(c);
  f.arrive(0);
  f.arrive(2);  // 1 missing
  for (uint16_t s = 3; s <= 51; ++s) f.arrive(s);
  EXPECT_EQ(f.nack.missing(), 1u);
  f.arrive(52);  // 1 is now 51 behind
  EXPECT_EQ(f.nack.missing(), 0u);
  EXPECT_EQ(f.nack.stats().givenUp, 1u);
  EXPECT_TRUE(f.nack.keyframeNeeded());
}

TEST(NackGenerator, KeyframeForgetsOlderHoles) {
  Fixture f;
  f.arrive(1);
  f.arrive(5);  // 2, 3, 4
  f.arrive(9);  // 6, 7, 8
  EXPECT_EQ(f.arrive(10, /*keyframe=*/true), A::kInOrder);
  EXPECT_EQ(f.nack.missing(), 0u);
  EXPECT_EQ(f.nack.stats().givenUp, 0u);
  // A keyframe that arrives late (retransmitted) drops only the holes before it.
  f.arrive(14);  // 11, 12, 13
  EXPECT_EQ(f.arrive(12, true), A::kRecovered);
  f.now += 10ms;
  EXPECT_EQ(f.collect(), Seqs{13});
}

TEST(NackGenerator, KeyframeRequestClears) {
  Fixture f;
  f.arrive(1);
  f.arrive(5);
  f.nack.onKeyframeRequested();
  EXPECT_EQ(f.nack.missing(), 0u);
  f.now += 1s;
  EXPECT_EQ(f.collect(), Seqs{});
  EXPECT_EQ(f.arrive(6), A::kInOrder);
}

TEST(NackGenerator, CollectStopsAtTheCallersBuffer) {
  Fixture f;
  f.arrive(0);
  f.arrive(11);  // 1..10
  f.now += 10ms;
  std::array<uint16_t, 4> out{};
  ASSERT_EQ(f.nack.collect(f.now, out), 4u);
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[3], 4);
  EXPECT_EQ(f.collect(), (Seqs{5, 6, 7, 8, 9, 10}));  // still due
}

}  // namespace
}  // namespace kaiwa::rtp
