// Sequence number comparison and the RFC 3550 appendix A.1 unwrapper.
#include "rtp/sequence.hpp"

#include <gtest/gtest.h>

namespace kaiwa::rtp {
namespace {

using V = SequenceUnwrapper::Verdict;

TEST(SequenceCompare, AcrossTheWrap) {
  EXPECT_TRUE(isNewer(1, 0));
  EXPECT_TRUE(isNewer(0, 65535));
  EXPECT_TRUE(isNewer(10, 65000));
  EXPECT_FALSE(isNewer(65000, 10));
  EXPECT_FALSE(isNewer(5, 5));
  EXPECT_TRUE(isOlder(65535, 0));
  // Half a circle apart: antisymmetric all the same.
  EXPECT_NE(isNewer(0x8000, 0), isNewer(0, 0x8000));
  EXPECT_NE(isNewer(0x8005, 5), isNewer(5, 0x8005));
  EXPECT_EQ(sequenceDelta(2, 65534), 4);
  EXPECT_EQ(sequenceDelta(65534, 2), -4);
}

TEST(SequenceUnwrapper, ProbationThenInOrderAcrossTheWrap) {
  SequenceUnwrapper u;
  auto first = u.update(65533);
  EXPECT_EQ(first.verdict, V::kProbation);
  auto second = u.update(65534);
  EXPECT_EQ(second.verdict, V::kInOrder);
  const int64_t base = second.extended;
  EXPECT_EQ(base & 0xFFFF, 65534);
  EXPECT_EQ(u.update(65535).extended, base + 1);
  EXPECT_EQ(u.update(0).extended, base + 2);  // the wrap: the extended number keeps counting
  EXPECT_EQ(u.update(1).extended, base + 3);
  EXPECT_EQ(u.expected(), 4);
  EXPECT_EQ(u.received(), 4u);
  EXPECT_EQ(u.cumulativeLost(), 0);
}

TEST(SequenceUnwrapper, ProbationRestartsOnAnOutOfOrderPacket) {
  SequenceUnwrapper u(SequenceConfig{3, 3000, 100});
  EXPECT_EQ(u.update(100).verdict, V::kProbation);
  EXPECT_EQ(u.update(200).verdict, V::kProbation);  // not 101: probation starts over, two more needed
  EXPECT_EQ(u.update(201).verdict, V::kProbation);
  EXPECT_EQ(u.update(202).verdict, V::kInOrder);
  EXPECT_EQ(u.expected(), 1);
}

TEST(SequenceUnwrapper, NoProbation) {
  SequenceUnwrapper u(SequenceConfig{1, 3000, 100});
  EXPECT_EQ(u.update(7).verdict, V::kInOrder);
}

TEST(SequenceUnwrapper, LateAndLossAndDuplicates) {
  SequenceUnwrapper u(SequenceConfig{1, 3000, 100});
  const int64_t base = u.update(65530).extended;
  EXPECT_EQ(u.update(2).extended, base + 8);  // 65531..1 lost for now, across the wrap
  EXPECT_EQ(u.cumulativeLost(), 7);
  auto late = u.update(65535);  // late, from before the wrap: the previous cycle's index
  EXPECT_EQ(late.verdict, V::kLate);
  EXPECT_EQ(late.extended, base + 5);
  EXPECT_EQ(u.maxExtended(), base + 8);
  EXPECT_EQ(u.cumulativeLost(), 6);
  EXPECT_EQ(u.update(2).verdict, V::kLate);  // a duplicate counts as received (RFC 3550 A.3)
  EXPECT_EQ(u.cumulativeLost(), 5);
}

TEST(SequenceUnwrapper, BadJumpThenRestart) {
  SequenceUnwrapper u(SequenceConfig{1, 3000, 100});
  const int64_t base = u.update(1000).extended;
  EXPECT_EQ(u.update(1001).extended, base + 1);
  EXPECT_EQ(u.update(40000).verdict, V::kBadJump);  // one stray packet: dropped
  EXPECT_EQ(u.update(1002).extended, base + 2);     // the stream goes on
  EXPECT_EQ(u.update(50000).verdict, V::kBadJump);
  auto restarted = u.update(50001);  // the next one follows: the sender restarted
  EXPECT_EQ(restarted.verdict, V::kInOrder);
  EXPECT_GT(restarted.extended, base + 2);  // never backwards
  EXPECT_EQ(restarted.extended & 0xFFFF, 50001);
  EXPECT_EQ(u.expected(), 1);
  EXPECT_EQ(u.update(50002).extended, restarted.extended + 1);
  // A restart to a lower number still moves forward.
  EXPECT_EQ(u.update(10).verdict, V::kBadJump);
  auto lower = u.update(11);
  EXPECT_EQ(lower.verdict, V::kInOrder);
  EXPECT_GT(lower.extended, restarted.extended + 1);
}

TEST(SequenceUnwrapper, LongRunWrapsManyTimes) {
  SequenceUnwrapper u(SequenceConfig{1, 3000, 100});
  uint16_t seq = 12345;
  const int64_t base = u.update(seq).extended;
  for (int i = 1; i <= 300000; ++i) {
    seq = uint16_t(seq + 1);
    auto r = u.update(seq);
    ASSERT_EQ(r.verdict, V::kInOrder);
    ASSERT_EQ(r.extended, base + i);
  }
}

}  // namespace
}  // namespace kaiwa::rtp
