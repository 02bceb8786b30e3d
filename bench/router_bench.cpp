// router_bench: sfu::Router's work per publisher packet, without sockets or crypto — a 1200-byte video packet
// laid out as Chromium sends it, fanned out to N subscribers (each copy rewritten in its queue slot), then every
// queue drained. Google Benchmark; built with -DKAIWA_BENCH=ON when the package is found
// (build/bench/kaiwa-router-bench). Divide by N for the cost per forwarded copy. BM_FanOutSimulcast: the same with a
// three-layer VP8 simulcast publisher and subscribers with bandwidth estimation on (issue 15).
#include <benchmark/benchmark.h>

#include <array>
#include <string>
#include <vector>

#include "sfu/router.hpp"
#include "sfu/vp8_simulcast.hpp"

namespace {

using namespace kaiwa;
using namespace kaiwa::sfu;

struct NullIo : RouterIo {
  void onReady(TransportId) override {}
  void sendRtcp(TransportId, std::span<const uint8_t>) override {}
};

void BM_FanOut(benchmark::State& state) {
  const auto subscribers = TransportId(state.range(0));
  NullIo io;
  Router router(io);
  const TimePoint t0 = TimePoint{} + std::chrono::seconds(100);
  router.addPublisher(1, {.midExtensionId = 4});
  const TrackId video = *router.addTrack(1, {.kind = MediaKind::kVideo, .mid = "1", .ssrc = 0xa1b2c3d4});
  for (TransportId s = 0; s < subscribers; ++s) {
    router.addSubscriber(10 + s);
    SubscriptionConfig c{.ssrc = 0x5000 + s};
    c.payloadTypes.set(96, 102);
    c.extensions.set(4, 9);
    router.subscribe(10 + s, video, c, t0);
  }
  std::vector<uint8_t> p = {0x90, 0x60, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xbe, 0xde,
                            0x00, 0x03, 0x31, 0x00, 0x01, 0x40, 0x31, 0xa0, 0x68, 0x22, 0xaa, 0xbb, 0xcc, 0x00};
  p.resize(1200, 0x5a);
  uint16_t seq = 0;
  size_t drained = 0;
  for (auto _ : state) {
    p[2] = uint8_t(++seq >> 8);
    p[3] = uint8_t(seq);
    router.onPublisherRtp(1, p, t0);
    for (TransportId s = 0; s < subscribers; ++s) {
      drained += router.drain(10 + s, [](std::span<uint8_t> slot, size_t n) { benchmark::DoNotOptimize(slot[n - 1]); });
    }
  }
  state.counters["copies"] = double(drained);
  state.counters["s_per_copy"] =
      benchmark::Counter(double(drained), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_FanOut)->Arg(1)->Arg(2)->Arg(10);

// N subscribers of a publisher's camera in three VP8 simulcast layers (1, 2 and 3 packets a frame of 500, 750 and
// 1100 bytes), each subscriber with transport-cc: kaiwa's transport-wide numbers stamped as packets leave and told
// to its estimator, its own layer selector deciding per packet, padding towards the next layer while the estimate
// (no feedback here: it stays at its start, 300 kbit/s) allows one. An iteration is one frame of every layer (6
// publisher packets) and 40 ms of ticks, then every queue drained. "copies" counts what left, padding included;
// the time per copy compares with BM_FanOut's (its per-copy work without simulcast or estimation).
void BM_FanOutSimulcast(benchmark::State& state) {
  using namespace test;
  const auto subscribers = TransportId(state.range(0));
  NullIo io;
  Router router(io);
  TimePoint now = TimePoint{} + std::chrono::seconds(100);
  const TrackId group = addSimulcastPublisher(router, 1);
  for (TransportId s = 0; s < subscribers; ++s) {
    router.addSubscriber(10 + s);
    SubscriptionConfig c{.ssrc = 0x5000 + s};
    c.payloadTypes.set(96, 100);
    c.extensions.set(kMidId, 0);
    c.extensions.set(kPubTccId, kSubTccId);
    c.transportCcExtensionId = kSubTccId;
    c.rtxSsrc = 0x6000 + s;
    c.rtxPayloadType = 101;
    router.subscribe(10 + s, group, c, now);
  }
  std::array<uint16_t, 3> seq{100, 2000, 30000};
  std::array<uint32_t, 3> ts{1000, 500000, 90000000};
  uint16_t picture = 10, transportSeq = 0;
  constexpr size_t kPackets[3] = {1, 2, 3};
  constexpr size_t kBytes[3] = {500, 750, 1100};
  // The frames ahead, made once (a keyframe of every layer each 100 frames): the loop measures the router alone.
  std::vector<std::vector<uint8_t>> frames;
  for (int f = 0; f < 200; ++f) {
    for (int l = 0; l < 3; ++l) {
      for (size_t k = 0; k < kPackets[l]; ++k) {
        frames.push_back(vp8Packet(l, seq[l]++, ts[l], picture, f % 100 == 0 && k == 0, transportSeq++, kBytes[l]));
      }
      ts[l] += 3600;
    }
    ++picture;
  }
  size_t drained = 0, next = 0;
  for (auto _ : state) {
    for (int k = 0; k < 6; ++k) {
      router.onPublisherRtp(1, frames[next], now);
      next = (next + 1) % frames.size();
    }
    now += std::chrono::milliseconds(20);
    router.tick(now);
    now += std::chrono::milliseconds(20);
    router.tick(now);
    for (TransportId s = 0; s < subscribers; ++s) {
      drained +=
          router.drain(10 + s, now, [](std::span<uint8_t> slot, size_t n) { benchmark::DoNotOptimize(slot[n - 1]); });
    }
  }
  state.counters["copies"] = double(drained);
  state.counters["s_per_copy"] =
      benchmark::Counter(double(drained), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_FanOutSimulcast)->Arg(1)->Arg(10);

// One publisher's audio packet with no subscriber: the router's fixed work per packet, with (1) or without (0) its
// RFC 6464 audio level read and given to the active speaker detector. The difference is the level's cost.
void BM_AudioLevel(benchmark::State& state) {
  NullIo io;
  Router router(io);
  const TimePoint t0 = TimePoint{} + std::chrono::seconds(100);
  router.addPublisher(1, {.midExtensionId = 4});
  TrackConfig audio{.kind = MediaKind::kAudio, .mid = "0", .ssrc = 0x11223344, .clockRate = 48000};
  audio.audioLevelExtensionId = state.range(0) != 0 ? 1 : 0;
  router.addTrack(1, audio);
  // As Chromium lays out audio: audio level (id 1), transport-wide-cc (3) and mid (4), then an Opus frame.
  std::vector<uint8_t> p = {0x90, 0x6f, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x11, 0x22, 0x33, 0x44,
                            0xbe, 0xde, 0x00, 0x02, 0x10, 0xab, 0x31, 0x00, 0x01, 0x40, 0x30, 0x00};
  p.resize(24 + 80, 0x5a);
  uint16_t seq = 0;
  for (auto _ : state) {
    p[2] = uint8_t(++seq >> 8);
    p[3] = uint8_t(seq);
    router.onPublisherRtp(1, p, t0);
  }
  state.counters["levels"] = double(router.counters().audioLevels);
}
BENCHMARK(BM_AudioLevel)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
