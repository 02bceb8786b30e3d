// Receiver statistics (src/rtp/receive_statistics.hpp) against values computed by hand from RFC 3550 appendices A.3
// and A.8, on a fake clock.
#include "rtp/receive_statistics.hpp"

#include <gtest/gtest.h>

namespace kaiwa::rtp {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{} + 100s;

TEST(ReceiveStatistics, LossOverTheWholeStreamAndTheLastInterval) {
  ReceiveStatistics s(90000);
  EXPECT_FALSE(s.report(7, kT0));  // nothing yet
  // 1 is on probation (appendix A.1, MIN_SEQUENTIAL 2): counting starts at 2. 3 and 4 are lost.
  for (uint16_t seq : {1, 2, 5, 6, 7, 8, 9, 10}) s.onPacket(seq, 0, kT0);
  auto b = s.report(7, kT0);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->ssrc, 7u);
  EXPECT_EQ(b->extendedHighestSequence, 10u);
  EXPECT_EQ(b->cumulativeLost, 2);
  EXPECT_EQ(b->fractionLost, (2 << 8) / 9);  // 2 of the 9 expected (2..10): 56
  EXPECT_EQ(b->lastSenderReport, 0u);
  EXPECT_EQ(b->delaySinceLastSenderReport, 0u);
  // The next interval: 11..20 with 15 lost, 14 received twice (a duplicate offsets a loss in the count).
  for (uint16_t seq : {11, 12, 13, 14, 14, 16, 17, 18, 19, 20}) s.onPacket(seq, 0, kT0);
  b = s.report(7, kT0 + 1s);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->fractionLost, 0);  // 10 expected, 10 received
  EXPECT_EQ(b->cumulativeLost, 2);
  // Nothing new: no report block.
  EXPECT_FALSE(s.report(7, kT0 + 2s));
  // 21..30 with five lost.
  for (uint16_t seq : {21, 23, 25, 27, 29}) s.onPacket(seq, 0, kT0);
  b = s.report(7, kT0 + 3s);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->extendedHighestSequence, 29u);
  EXPECT_EQ(b->fractionLost, (4 << 8) / 9);  // 22, 24, 26, 28 of 21..29
  EXPECT_EQ(b->cumulativeLost, 6);
}

TEST(ReceiveStatistics, TheExtendedSequenceCountsCycles) {
  ReceiveStatistics s;
  for (uint16_t seq : {65533, 65534, 65535, 0, 1, 2}) s.onPacket(seq, 0, kT0);
  auto b = s.report(1, kT0);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->extendedHighestSequence, 65536u + 2);
  EXPECT_EQ(b->cumulativeLost, 0);
}

TEST(ReceiveStatistics, JitterFollowsAppendixA8) {
  ReceiveStatistics s(90000);
  // 20 ms apart, 1800 timestamp units apart: no jitter.
  uint32_t ts = 1000;
  TimePoint t = kT0;
  for (uint16_t seq = 0; seq < 5; ++seq, ts += 1800, t += 20ms) s.onPacket(seq, ts, t);
  EXPECT_EQ(s.jitter(), 0u);
  // One packet 10 ms (900 units) late: D = 900, J = 900 / 16 = 56.25.
  s.onPacket(5, ts, t + 10ms);
  EXPECT_EQ(s.jitter(), 56u);
  ts += 1800, t += 20ms;
  // The next on time: D = 900 again; A.8's integer form (16 J) gives 900 + 900 - (908 >> 4) = 1744, J = 109.
  s.onPacket(6, ts, t);
  EXPECT_EQ(s.jitter(), 109u);
  ts += 1800, t += 20ms;
  // On time: D = 0, 16 J = 1744 - (1752 >> 4) = 1635, J = 102.
  s.onPacket(7, ts, t);
  EXPECT_EQ(s.jitter(), 102u);
  // A retransmission, however late, leaves the jitter alone.
  s.onPacket(3, 0, t + 500ms, true);
  EXPECT_EQ(s.jitter(), 102u);
  EXPECT_EQ(s.report(1, t)->jitter, 102u);
}

TEST(ReceiveStatistics, LsrAndDlsrEchoTheLastSenderReport) {
  ReceiveStatistics s;
  for (uint16_t seq = 0; seq < 3; ++seq) s.onPacket(seq, 0, kT0);
  s.onSenderReport(0x123456789abcdef0ULL, kT0);
  auto b = s.report(1, kT0 + 1500ms);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->lastSenderReport, 0x56789abcu);
  EXPECT_EQ(b->delaySinceLastSenderReport, 98304u);  // 1.5 s in 1/65536 s
}

TEST(Ntp, TimeAndRoundTrip) {
  // 1.5 s after the Unix epoch: 2208988801 s since 1900 and half a second.
  EXPECT_EQ(toNtp(TimePoint{} + 1500ms, std::chrono::nanoseconds(0)), (2208988801ULL << 32) | 0x80000000ULL);
  EXPECT_EQ(toNtp(TimePoint{} + 1s, std::chrono::seconds(2)), 2208988803ULL << 32);
  const uint64_t sent = toNtp(kT0, {});
  // The receiver held the SR 0.5 s; the round trip took 125 ms more.
  const uint64_t back = toNtp(kT0 + 625ms, {});
  EXPECT_EQ(roundTripTime(back, ntpMiddle(sent), 32768), Millis(125));
  EXPECT_FALSE(roundTripTime(back, 0, 32768));                // no SR echoed
  EXPECT_FALSE(roundTripTime(back, ntpMiddle(sent), 65536));  // a negative result
}

}  // namespace
}  // namespace kaiwa::rtp
