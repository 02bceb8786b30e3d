// record_bench: what recording a published track costs per RTP packet (issue 15, "the recording cost per track"):
// the packet into its frame (FrameAssembler: descriptor parse, copy, reassembly) and the frame into WebM
// (WebmWriter) into a file through FileSink (64 KiB writes, on whatever file system TMPDIR is), as kaiwa records.
// Video as Chromium sends it: 1100-byte VP8 packets, 6 to a frame, a keyframe every 100 frames; audio: one 80-byte
// Opus packet per frame; H.264 (BM_RecordH264) likewise, a 6600-byte slice in six 1100-byte FU-A fragments, the
// keyframe's SPS and PPS before it in a STAP-A. BM_RecordVideoWorstPush times each packet apart and reports the slowest
// (the one whose frame filled FileSink's buffer: its write(2) of 64 KiB is the longest the worker's loop waits on
// recording). BM_RouterTapped/BM_RouterUntapped: the same video through sfu::Router to no subscriber, with and without
// a room's media::Recording on the track's tap: their difference is what recording adds to kaiwa's packet path. Google
// Benchmark; built with -DKAIWA_BENCH=ON (build/bench/kaiwa-record-bench).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "media/recording.hpp"
#include "record/file_sink.hpp"
#include "record/rtp_header.hpp"
#include "record/track_recorder.hpp"

namespace {

using namespace kaiwa;
using namespace kaiwa::record;

std::vector<uint8_t> rtpPacket(uint16_t seq, uint32_t ts, bool marker, bool first, bool key, size_t payload,
                               bool video) {
  std::vector<uint8_t> b = record::test::rtpHeader(seq, ts, marker);
  if (video) {
    b.insert(b.end(), {static_cast<uint8_t>(0x90 | (first ? 0x10 : 0)), 0x80, 0x81, 0x23});  // X, S, 15-bit id
    if (first && key) {
      b.insert(b.end(), {0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xD0, 0x02});  // 640 x 720 keyframe
    } else if (first) {
      b.push_back(0x01);
    }
  }
  b.resize(12 + payload, 0x5a);
  return b;
}

// Packets of `frames` frames, ready to feed.
std::vector<std::vector<uint8_t>> stream(bool video, int frames) {
  std::vector<std::vector<uint8_t>> out;
  uint16_t seq = 1;
  uint32_t ts = 1000;
  for (int f = 0; f < frames; ++f) {
    const int packets = video ? 6 : 1;
    for (int i = 0; i < packets; ++i)
      out.push_back(rtpPacket(seq++, ts, i == packets - 1, i == 0, f % 100 == 0, video ? 1100 : 80, video));
    ts += video ? 3000 : 960;
  }
  return out;
}

// Records `packets` into a file per iteration; every one of the `frames` must be written.
void recordInto(benchmark::State& state, const std::vector<std::vector<uint8_t>>& packets, Codec codec,
                uint32_t clockRate, uint64_t frames) {
  const auto dir = std::filesystem::temp_directory_path();
  int round = 0;
  TimePoint now{};
  uint64_t written = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path =
        (dir / ("kaiwa-record-bench-" + std::to_string(::getpid()) + "-" + std::to_string(round++))).string();
    TrackRecorder rec(codec, clockRate, std::make_unique<FileSink>(path));
    state.ResumeTiming();
    for (const auto& p : packets) rec.push(*rtp::Packet::parse(p), now);
    benchmark::DoNotOptimize(rec.finish());
    state.PauseTiming();
    written = rec.stats().frames;
    std::filesystem::remove(path);
    state.ResumeTiming();
  }
  if (written != frames) state.SkipWithError("not every frame was written");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * packets.size()));
  state.SetLabel("items = RTP packets");
}

template <bool kVideo>
void BM_Record(benchmark::State& state) {
  recordInto(state, stream(kVideo, 1000), kVideo ? Codec::kVp8 : Codec::kOpus, kVideo ? 90000 : 48000, 1000);
}

BENCHMARK(BM_Record<true>)->Name("BM_RecordVideo");

// H.264 as Chromium sends it with packetization mode 1: each frame one slice in FU-A fragments; a keyframe every 100
// frames with its SPS (libx264's 1920x1080 High profile) and PPS in a STAP-A first.
std::vector<std::vector<uint8_t>> h264Stream(int frames) {
  const std::vector<uint8_t> sps{0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00,
                                 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58};
  const std::vector<uint8_t> pps{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};
  std::vector<std::vector<uint8_t>> out;
  uint16_t seq = 1;
  uint32_t ts = 1000;
  for (int f = 0; f < frames; ++f) {
    const bool key = f % 100 == 0;
    if (key) {
      std::vector<uint8_t> b = record::test::rtpHeader(seq++, ts, false);
      b.push_back(0x78);
      for (const auto* nal : {&sps, &pps}) {
        b.push_back(0);
        b.push_back(static_cast<uint8_t>(nal->size()));
        b.insert(b.end(), nal->begin(), nal->end());
      }
      out.push_back(std::move(b));
    }
    for (int i = 0; i < 6; ++i) {
      std::vector<uint8_t> b = record::test::rtpHeader(seq++, ts, i == 5);
      b.push_back(0x7C);  // FU-A, NRI 3
      b.push_back(static_cast<uint8_t>((i == 0 ? 0x80 : 0) | (i == 5 ? 0x40 : 0) | (key ? 5 : 1)));
      b.resize(b.size() + 1098, static_cast<uint8_t>(f));
      out.push_back(std::move(b));
    }
    ts += 3000;
  }
  return out;
}

void BM_RecordH264(benchmark::State& state) { recordInto(state, h264Stream(1000), Codec::kH264, 90000, 1000); }
BENCHMARK(BM_RecordH264);
BENCHMARK(BM_Record<false>)->Name("BM_RecordAudio");

void BM_RecordVideoWorstPush(benchmark::State& state) {
  const auto packets = stream(true, 1000);
  const auto dir = std::filesystem::temp_directory_path();
  int round = 0;
  TimePoint now{};
  double worst = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path =
        (dir / ("kaiwa-record-bench-w" + std::to_string(::getpid()) + "-" + std::to_string(round++) + ".webm"))
            .string();
    TrackRecorder rec(Codec::kVp8, 90000, std::make_unique<FileSink>(path));
    state.ResumeTiming();
    for (const auto& p : packets) {
      const auto t0 = std::chrono::steady_clock::now();
      rec.push(*rtp::Packet::parse(p), now);
      const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      if (us > worst) worst = us;
    }
    benchmark::DoNotOptimize(rec.finish());
    state.PauseTiming();
    std::filesystem::remove(path);
    state.ResumeTiming();
  }
  state.counters["worst_push_us"] = worst;
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * packets.size()));
}
BENCHMARK(BM_RecordVideoWorstPush);

struct NoIo final : sfu::RouterIo {
  void onReady(sfu::TransportId) override {}
  void sendRtcp(sfu::TransportId, std::span<const uint8_t>) override {}
};

template <bool kTapped>
void BM_Router(benchmark::State& state) {
  const auto packets = stream(true, 1000);
  const auto root = std::filesystem::temp_directory_path() / ("kaiwa-record-bench-r" + std::to_string(::getpid()));
  std::filesystem::create_directories(root);
  std::atomic<size_t> recorders{0};
  TimePoint now{};
  for (auto _ : state) {
    state.PauseTiming();
    NoIo io;
    sfu::Router router(io);
    router.addPublisher(1, {});
    sfu::TrackConfig config;
    config.ssrc = 0x11223344;  // rtpHeader's
    const auto track = *router.addTrack(1, config);
    std::unique_ptr<media::Recording> recording;
    if (kTapped) {
      media::Recording::Options o;
      o.root = root.string();
      o.room = "bench";
      o.recorders = &recorders;
      auto made = media::Recording::start(std::move(o), router);
      recording = std::move(std::get<std::unique_ptr<media::Recording>>(made));
      recording->addTrack({.track = track,
                           .peer = "p",
                           .source = "camera",
                           .kind = sfu::MediaKind::kVideo,
                           .codec = "VP8",
                           .payloadType = 96,
                           .clockRate = 90000,
                           .channels = 0},
                          now);
    }
    state.ResumeTiming();
    for (const auto& p : packets) router.onPublisherRtp(1, p, now);
    if (recording) recording->stop("stopped");
    state.PauseTiming();
    recording.reset();
    state.ResumeTiming();
  }
  std::filesystem::remove_all(root);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * packets.size()));
  state.SetLabel("items = RTP packets");
}
BENCHMARK(BM_Router<true>)->Name("BM_RouterTapped");
BENCHMARK(BM_Router<false>)->Name("BM_RouterUntapped");

}  // namespace

BENCHMARK_MAIN();
