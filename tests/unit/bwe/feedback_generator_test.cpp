// transport-cc feedback towards a publisher: every interval a message of the packets since the last, losses and
// wraps reported, late and duplicate packets counted, bounded; and the estimator understands what it writes.
#include "bwe/feedback_generator.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "bwe/estimator.hpp"
#include "rtp/transport_feedback.hpp"

namespace kaiwa::bwe {
namespace {

TimePoint at(int64_t micros) { return TimePoint{} + std::chrono::microseconds(micros); }

struct Message {
  std::vector<uint8_t> bytes;
  rtp::rtcp::TransportFeedback feedback;
  std::vector<rtp::rtcp::TccPacket> packets;
};

std::vector<Message> pollAll(FeedbackGenerator& g, TimePoint now) {
  std::vector<Message> out;
  std::array<uint8_t, 1500> buf{};
  while (auto n = g.poll(now, buf)) {
    Message m;
    m.bytes.assign(buf.begin(), buf.begin() + *n);
    out.push_back(std::move(m));
  }
  for (auto& m : out) {
    rtp::rtcp::CompoundReader r(m.bytes);
    auto block = r.next();
    EXPECT_TRUE(block);
    auto f = rtp::rtcp::TransportFeedback::parse(*block);
    EXPECT_TRUE(f && rtp::rtcp::TransportFeedbackReader::valid(*f));
    m.feedback = *f;
    rtp::rtcp::TransportFeedbackReader reader(*f);
    while (auto p = reader.next()) m.packets.push_back(*p);
  }
  return out;
}

TEST(FeedbackGenerator, ReportsEachIntervalWithLossesAndWrap) {
  FeedbackGenerator g(0x1111, Millis(100));
  EXPECT_FALSE(g.nextDeadline());
  // 65533, 65534, (65535 lost), 0, 1 arriving 2 ms apart.
  const std::vector<uint16_t> seqs{65533, 65534, 0, 1};
  for (size_t i = 0; i < seqs.size(); ++i) g.onPacket(0xabcd, seqs[i], at(1'000'000 + int64_t(i) * 2000));
  EXPECT_EQ(g.nextDeadline(), at(1'100'000));
  EXPECT_TRUE(pollAll(g, at(1'099'999)).empty());
  auto m = pollAll(g, at(1'100'000));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].feedback.header.senderSsrc, 0x1111u);
  EXPECT_EQ(m[0].feedback.header.mediaSsrc, 0xabcdu);
  EXPECT_EQ(m[0].feedback.baseSequence, 65533);
  ASSERT_EQ(m[0].packets.size(), 5u);
  EXPECT_FALSE(m[0].packets[2].received);
  EXPECT_EQ(m[0].packets[4].sequence, 1);
  EXPECT_EQ(m[0].packets[4].arrivalMicros - m[0].packets[0].arrivalMicros, 6000);
  EXPECT_FALSE(g.nextDeadline());
  // The lost one arrives late: not reported again. The next message starts after the last.
  g.onPacket(0xabcd, 65535, at(1'150'000));
  g.onPacket(0xabcd, 2, at(1'160'000));
  EXPECT_EQ(g.stats().late, 1u);
  EXPECT_EQ(g.nextDeadline(), at(1'200'000));
  m = pollAll(g, at(1'200'000));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].feedback.baseSequence, 2);
  EXPECT_EQ(m[0].feedback.feedbackCount, 1);
}

TEST(FeedbackGenerator, ManyPacketsTakeSeveralMessagesAndTheWindowIsBounded) {
  FeedbackGenerator g(1, Millis(100));
  for (int i = 0; i < 1000; ++i) g.onPacket(2, uint16_t(i), at(int64_t(i) * 100));
  auto m = pollAll(g, at(200'000));
  ASSERT_EQ(m.size(), 2u);  // 512 statuses at most per message
  EXPECT_EQ(m[0].packets.size() + m[1].packets.size(), 1000u);
  EXPECT_EQ(m[1].feedback.baseSequence, uint16_t(m[0].packets.size()));
  // A jump further than the window: the oldest unreported go unreported, the state stays bounded.
  for (int i = 1000; i < 1010; ++i) g.onPacket(2, uint16_t(i), at(300'000 + i));
  g.onPacket(2, uint16_t(1000 + FeedbackGenerator::kWindow + 5), at(300'100));
  EXPECT_EQ(g.stats().skipped, 6u);
  g.onPacket(2, 1500, at(300'200));  // a duplicate-free arrival inside the window
  g.onPacket(2, 1500, at(300'300));
  EXPECT_EQ(g.stats().duplicates, 1u);
  m = pollAll(g, at(500'000));
  size_t received = 0;
  for (auto& msg : m) {
    for (auto& p : msg.packets) received += p.received;
  }
  EXPECT_EQ(received, 4u + 1 + 1);  // 1006..1009, 1500, and the far one
}

TEST(FeedbackGenerator, TheEstimatorReadsWhatItWrites) {
  FeedbackGenerator g(1, Millis(50));
  BandwidthEstimator e;
  int64_t t = 0;
  for (uint16_t s = 0; s < 200; ++s) {
    e.onPacketSent(s, at(t), 1200);
    if (s % 10 != 3) g.onPacket(2, s, at(t + 20'000 + 123'456'789));  // the receiver's clock is elsewhere
    t += 5'000;
    for (auto& m : pollAll(g, at(t + 20'000 + 123'456'789))) EXPECT_TRUE(e.onFeedback(at(t + 40'000), m.feedback));
  }
  EXPECT_GE(e.stats().acked, 170u);
  EXPECT_GE(e.stats().lost, 18u);
  EXPECT_EQ(e.stats().malformed, 0u);
  EXPECT_EQ(e.stats().unknown, 0u);
}

}  // namespace
}  // namespace kaiwa::bwe
