// The per-packet and per-feedback paths of bandwidth estimation and simulcast allocate nothing once constructed:
// recording a sent packet, reading and writing transport-cc feedback, the estimator taking it, the feedback
// generator, the layer selector's update and per-packet verdict (after its tracks were added), and the rewriter.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <memory>

#include "alloc_counter.hpp"
#include "bwe/estimator.hpp"
#include "bwe/feedback_generator.hpp"
#include "bwe/layer_selector.hpp"
#include "rtp/transport_feedback.hpp"
#include "sfu/simulcast_rewriter.hpp"

namespace kaiwa::bwe {
namespace {

TimePoint at(int64_t micros) { return TimePoint{} + std::chrono::microseconds(micros); }

TEST(BweHotPath, AllocatesNothing) {
  auto estimator = std::make_unique<BandwidthEstimator>();
  auto generator = std::make_unique<FeedbackGenerator>(1);
  LayerSelector selector;
  VideoTrackInfo track;
  track.id = 1;
  track.spatialLayers = 3;
  track.temporalLayers = 3;
  track.bitrate = {{{60'000, 90'000, 150'000}, {200'000, 300'000, 500'000}, {600'000, 900'000, 1'500'000}}};
  track.height = {180, 360, 720};
  track.renderedWidth = 1280;
  track.renderedHeight = 720;
  ASSERT_TRUE(selector.addTrack(track));
  sfu::SimulcastRewriter rewriter(90000, 0, 0);
  std::array<uint8_t, 1500> buf{};

  counting = true;
  int64_t t = 0;
  uint16_t seq = 0;
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 10; ++i, ++seq, t += 2000) {
      estimator->onPacketSent(seq, at(t), 1200);
      generator->onPacket(2, seq, at(t + 20'000));
      const auto v = selector.onPacket(1, uint8_t(round % 3), uint8_t(i % 3), true, i == 0, false);
      if (v.forward) {
        (void)rewriter.forward({uint8_t(round % 3), seq, uint32_t(t), uint16_t(seq & 0x7FFF), uint8_t(round)},
                               v.switched, at(t));
      } else {
        rewriter.drop(uint8_t(round % 3), seq);
      }
    }
    while (auto n = generator->poll(at(t + 200'000), buf)) {
      rtp::rtcp::CompoundReader r(std::span<const uint8_t>(buf.data(), *n));
      auto f = rtp::rtcp::TransportFeedback::parse(*r.next());
      ASSERT_TRUE(f);
      estimator->onFeedback(at(t + 40'000), *f);
    }
    selector.update(at(t), estimator->estimate());
  }
  counting = false;
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_GT(estimator->stats().acked, 1000u);
}

}  // namespace
}  // namespace kaiwa::bwe
