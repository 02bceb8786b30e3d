// Sequence numbers, timestamps and VP8 picture ids across simulcast layer switches: one continuous stream for the
// subscriber, timestamps exact from Sender Reports and estimated without them, dropped temporal layers leaving no
// gap, and every counter wrapping.
#include "sfu/simulcast_rewriter.hpp"

#include <gtest/gtest.h>

namespace kaiwa::sfu {
namespace {

constexpr uint32_t kClock = 90000;
// NTP time (32.32) of `ms` milliseconds after an arbitrary instant.
uint64_t ntpAt(int64_t ms) { return (uint64_t(3'900'000'000) << 32) + uint64_t(ms) * (uint64_t(1) << 32) / 1000; }

// Two layers encode the same frames every 33.3 ms (3000 ticks), from different random timestamp and sequence bases.
struct Layer {
  uint8_t index;
  uint16_t seqBase;
  uint32_t tsBase;
  SimulcastRewriter::In frame(int n, int packet = 0, int packetsPerFrame = 1) const {
    return {index, uint16_t(seqBase + n * packetsPerFrame + packet), tsBase + uint32_t(n) * 3000, std::nullopt,
            std::nullopt};
  }
};

TimePoint at(int64_t ms) { return TimePoint{} + Millis(ms); }

TEST(SimulcastRewriter, SwitchWithSenderReportsIsExact) {
  SimulcastRewriter r(kClock, 1000, 5000);
  const Layer low{0, 65530, 4'294'960'000u};  // both counters wrap during the test
  const Layer high{2, 12345, 777'777};
  // Frame n is captured at n * 33.333 ms; each layer's SR maps a capture instant to its timestamp.
  r.onSenderReport(0, ntpAt(1000), low.tsBase + 90'000);
  r.onSenderReport(2, ntpAt(2000), high.tsBase + 180'000);
  for (int n = 0; n < 10; ++n) {
    auto out = r.forward(low.frame(n), n == 0, at(n * 33));
    ASSERT_TRUE(out);
    EXPECT_EQ(out->sequence, uint16_t(1000 + n));
    EXPECT_EQ(out->timestamp, 5000u + uint32_t(n) * 3000);
  }
  // Switch up at frame 10 (a keyframe of the high layer): the numbering goes on, the timestamp is frame 10's.
  for (int n = 10; n < 20; ++n) {
    auto out = r.forward(high.frame(n), n == 10, at(n * 33 + 7));
    ASSERT_TRUE(out);
    EXPECT_EQ(out->sequence, uint16_t(1000 + n));
    EXPECT_EQ(out->timestamp, 5000u + uint32_t(n) * 3000);
    EXPECT_EQ(out->switched, n == 10 ? SimulcastRewriter::Switch::kExact : SimulcastRewriter::Switch::kNone);
  }
  // And back down.
  auto out = r.forward(low.frame(20), true, at(667));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->sequence, 1020);
  EXPECT_EQ(out->timestamp, 5000u + 20 * 3000);
  EXPECT_EQ(r.stats().exactSwitches, 2u);
  EXPECT_EQ(r.stats().estimatedSwitches, 0u);
}

TEST(SimulcastRewriter, SwitchWithoutSenderReportsIsEstimatedFromArrival) {
  SimulcastRewriter r(kClock, 0, 0);
  const Layer low{0, 100, 1000};
  const Layer high{1, 50000, 3'000'000'000u};
  for (int n = 0; n < 5; ++n) ASSERT_TRUE(r.forward(low.frame(n), false, at(n * 33)));
  r.onSenderReport(0, ntpAt(0), 1000);  // one layer's report is not enough
  auto out = r.forward(high.frame(5), true, at(5 * 33 + 2));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->switched, SimulcastRewriter::Switch::kEstimated);
  EXPECT_EQ(out->sequence, 5);
  // 35 ms after the last packet (frame 4 at 12000): 3150 ticks.
  EXPECT_EQ(out->timestamp, 4u * 3000 + 3150);
  // The stream goes on from there on the new layer's clock.
  out = r.forward(high.frame(6), false, at(6 * 33));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->sequence, 6);
  EXPECT_EQ(out->timestamp, 4u * 3000 + 3150 + 3000);
}

TEST(SimulcastRewriter, StaleReportsFallBackRatherThanGoBack) {
  SimulcastRewriter r(kClock, 0, 0);
  const Layer low{0, 100, 1000};
  const Layer high{1, 500, 2000};
  // A high-layer report that claims its clock is 10 s behind: the exact offset would step the timestamp back.
  r.onSenderReport(0, ntpAt(0), 1000);
  r.onSenderReport(1, ntpAt(0), 2000 + 900'000);
  for (int n = 0; n < 3; ++n) ASSERT_TRUE(r.forward(low.frame(n), false, at(n * 33)));
  auto out = r.forward(high.frame(3), true, at(100));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->switched, SimulcastRewriter::Switch::kEstimated);
  EXPECT_TRUE(out->timestamp > 6000u);
}

TEST(SimulcastRewriter, DroppedTemporalLayersLeaveNoGap) {
  SimulcastRewriter r(kClock, 65534, 0);
  const Layer l{0, 200, 0};
  // Frames of temporal layers 0 2 1 2 0 2 1 2 ...: the layer 2 frames are dropped.
  std::vector<uint16_t> sent;
  for (int n = 0; n < 12; ++n) {
    if (n % 2 == 1) {
      r.drop(0, l.frame(n).sequence);
      continue;
    }
    auto out = r.forward(l.frame(n), n == 0, at(n * 33));
    ASSERT_TRUE(out);
    sent.push_back(out->sequence);
  }
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(sent[i], uint16_t(65534 + i)) << i;
  // A packet lost on the way (frame 12) keeps its number: the subscriber sees the gap and asks for it.
  auto out = r.forward(l.frame(13), false, at(13 * 33));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->sequence, uint16_t(sent.back() + 2));
  // A late packet from before a drop would take a neighbour's number: refused. (Frame 14 is late, 15 dropped.)
  r.drop(0, l.frame(15).sequence);
  EXPECT_FALSE(r.forward(l.frame(14), false, at(15 * 33)));
  EXPECT_EQ(r.stats().beforeDrop, 1u);
  r.drop(0, l.frame(9).sequence);  // older than the newest: counted, nothing moves
  EXPECT_EQ(r.stats().lateDrops, 1u);
  // Frame 14's number stays a gap (the subscriber sees it lost); 15's is given to 16.
  out = r.forward(l.frame(16), false, at(16 * 33));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->sequence, uint16_t(sent.back() + 4));
}

TEST(SimulcastRewriter, Vp8PictureIdsAndTl0PicIdxContinueAcrossSwitches) {
  SimulcastRewriter r(kClock, 0, 0);
  auto in = [](uint8_t layer, uint16_t seq, uint16_t pic, uint8_t tl0) {
    return SimulcastRewriter::In{layer, seq, uint32_t(seq) * 3000, pic, tl0};
  };
  // The low layer's ids wrap (15-bit picture id, 8-bit TL0PICIDX).
  auto out = r.forward(in(0, 10, 32766, 254), true, at(0));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->pictureId, 32766);
  EXPECT_EQ(out->tl0PicIdx, 254);
  out = r.forward(in(0, 11, 32767, 255), false, at(33));
  out = r.forward(in(0, 12, 0, 0), false, at(66));
  EXPECT_EQ(out->pictureId, 0);
  EXPECT_EQ(out->tl0PicIdx, 0);
  // The high layer's ids are elsewhere entirely.
  out = r.forward(in(1, 900, 5000, 77), true, at(100));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->pictureId, 1);
  EXPECT_EQ(out->tl0PicIdx, 1);
  out = r.forward(in(1, 901, 5001, 77), false, at(133));
  EXPECT_EQ(out->pictureId, 2);
  EXPECT_EQ(out->tl0PicIdx, 1);
}

}  // namespace
}  // namespace kaiwa::sfu
