// record_bench: what recording a published track costs per RTP packet (issue 15, "the recording cost per track"):
// the packet into its frame (FrameAssembler: descriptor parse, copy, reassembly) and the frame into WebM
// (WebmWriter) into a file through FileSink (64 KiB writes, on whatever file system TMPDIR is), as kaiwa records.
// Video as Chromium sends it: 1100-byte VP8 packets, 6 to a frame, a keyframe every 100 frames; audio: one 80-byte
// Opus packet per frame. Google Benchmark; built with -DKAIWA_BENCH=ON (build/bench/kaiwa-record-bench).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

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

template <bool kVideo>
void BM_Record(benchmark::State& state) {
  const auto packets = stream(kVideo, 1000);
  const auto dir = std::filesystem::temp_directory_path();
  int round = 0;
  TimePoint now{};
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path =
        (dir / ("kaiwa-record-bench-" + std::to_string(::getpid()) + "-" + std::to_string(round++) + ".webm")).string();
    TrackRecorder rec(kVideo ? Codec::kVp8 : Codec::kOpus, kVideo ? 90000 : 48000, std::make_unique<FileSink>(path));
    state.ResumeTiming();
    for (const auto& p : packets) rec.push(*rtp::Packet::parse(p), now);
    benchmark::DoNotOptimize(rec.finish());
    state.PauseTiming();
    std::filesystem::remove(path);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * packets.size()));
  state.SetLabel("items = RTP packets");
}

BENCHMARK(BM_Record<true>)->Name("BM_RecordVideo");
BENCHMARK(BM_Record<false>)->Name("BM_RecordAudio");

}  // namespace

BENCHMARK_MAIN();
