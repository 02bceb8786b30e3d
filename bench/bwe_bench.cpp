// bwe_bench: the cost of bandwidth estimation and layer selection per transport-cc feedback message (src/bwe/), and
// of the selector's per-packet verdict. Google Benchmark; built with -DKAIWA_BENCH=ON when the package is found
// (build/bench/kaiwa-bwe-bench). A subscriber's feedback comes every 50-100 ms covering 5-100 packets, so the cost
// per feedback message is what matters; the per-packet verdict is on the forwarding path.
#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "bwe/estimator.hpp"
#include "bwe/layer_selector.hpp"
#include "rtp/transport_feedback.hpp"

namespace {

using namespace kaiwa;
using namespace kaiwa::bwe;

constexpr int kPacketsPerFeedback = 20;  // 50 ms at about 4 Mbit/s of 1200-byte packets

// Builds and parses one feedback message for the next kPacketsPerFeedback packets (the part the estimator does not
// do; BM_BuildFeedbackOnly measures it alone, to subtract).
struct Feed {
  uint16_t seq = 0;
  int64_t t = 0;  // microseconds
  std::vector<uint8_t> buf = std::vector<uint8_t>(1500);
  std::optional<rtp::rtcp::TransportFeedback> build(BandwidthEstimator* e) {
    rtp::rtcp::TransportFeedbackBuilder b({1, 2}, 0);
    for (int i = 0; i < kPacketsPerFeedback; ++i) {
      if (e) e->onPacketSent(seq, TimePoint{} + std::chrono::microseconds(t), 1200);
      b.add(seq, t + 20'000);
      ++seq;
      t += 2'500;
    }
    auto n = b.write(buf);
    rtp::rtcp::CompoundReader r(std::span<const uint8_t>(buf.data(), *n));
    return rtp::rtcp::TransportFeedback::parse(*r.next());
  }
};

VideoTrackInfo camera(uint32_t id) {
  VideoTrackInfo i;
  i.id = id;
  i.spatialLayers = 3;
  i.temporalLayers = 3;
  const std::array<uint32_t, 3> full{150'000, 500'000, 1'500'000};
  for (size_t s = 0; s < 3; ++s) i.bitrate[s] = {full[s] * 4 / 10, full[s] * 6 / 10, full[s]};
  i.height = {180, 360, 720};
  i.renderedWidth = 426;
  i.renderedHeight = 240;
  return i;
}

void BM_BuildFeedbackOnly(benchmark::State& state) {
  Feed feed;
  for (auto _ : state) benchmark::DoNotOptimize(feed.build(nullptr));
}
BENCHMARK(BM_BuildFeedbackOnly);

// 20 packets recorded as sent, their feedback taken by the estimator, and a 3x3 grid's layers re-selected.
void BM_EstimatorAndSelectorPerFeedback(benchmark::State& state) {
  BandwidthEstimator e;
  LayerSelector sel;
  for (uint32_t i = 0; i < 9; ++i) sel.addTrack(camera(i));
  Feed feed;
  for (auto _ : state) {
    auto f = feed.build(&e);
    e.onFeedback(TimePoint{} + std::chrono::microseconds(feed.t + 40'000), *f);
    sel.update(TimePoint{} + std::chrono::microseconds(feed.t + 40'000), e.estimate());
  }
  state.counters["estimate"] = double(e.estimate());
}
BENCHMARK(BM_EstimatorAndSelectorPerFeedback);

void BM_SelectorVerdictPerPacket(benchmark::State& state) {
  LayerSelector sel;
  for (uint32_t i = 0; i < 9; ++i) sel.addTrack(camera(i));
  sel.update(TimePoint{}, 10'000'000);
  for (uint32_t i = 0; i < 9; ++i) sel.onPacket(i, 1, 0, true, true, false);
  uint32_t n = 0;
  for (auto _ : state) {
    auto v = sel.onPacket(n % 9, 1, uint8_t(n % 3), (n & 3) == 0, false, false);
    benchmark::DoNotOptimize(v);
    ++n;
  }
}
BENCHMARK(BM_SelectorVerdictPerPacket);

}  // namespace

BENCHMARK_MAIN();
