// fuzz_record: a publisher's RTP, as the recorder takes it (record/frame_assembler, record/webm_writer,
// rtp/payload's VP8 descriptor, record/h264's RFC 6184 depacketizer and SPS reader), shaped by the input: sequence
// numbers that jump back and forth, timestamps that wrap, markers, descriptors of every form, losses, time passing.
//  1. Nothing crashes, and the assembler never holds more than kMaxPending + 1 packets.
//  2. What comes out is a WebM file libwebm's parser reads to the end, with exactly the frames the writer counted,
//     times that never go backwards, and (for video) a keyframe first; an H.264 file with frames has an avcC whose
//     SPS gives the picture size in its header.
//  3. Every payload read as an SPS: a size or nullopt, never a read past its end.
//
// Input: byte 0 bit 0 picks VP8, else bit 1 H.264, else Opus; then records of
//   [control] [sequence step, signed] [timestamp step] [payload length] payload
// control bit 0: the marker; bits 1-3: ticks of 100 ms before the packet; bit 4: a timestamp step ×256.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "fuzz_util.hpp"
#include "record/h264.hpp"
#include "record/rtp_header.hpp"
#include "record/track_recorder.hpp"
#include "record/webm_reader.hpp"

using namespace kaiwa;
using namespace kaiwa::record;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Codec codec = (data[0] & 1) != 0 ? Codec::kVp8 : (data[0] & 2) != 0 ? Codec::kH264 : Codec::kOpus;
  const bool video = codec != Codec::kOpus;
  auto owned = std::make_unique<MemorySink>();
  MemorySink* sink = owned.get();
  TrackRecorder rec(codec, video ? 90000 : 48000, std::move(owned));
  TimePoint now{};
  uint16_t seq = 1000;
  uint32_t ts = 0xFFFF0000u;  // wraps early on
  size_t at = 1;
  std::vector<uint8_t> packet;
  while (at + 4 <= size) {
    const uint8_t control = data[at];
    seq = static_cast<uint16_t>(seq + static_cast<int8_t>(data[at + 1]));
    ts += static_cast<uint32_t>(data[at + 2]) * ((control & 0x10) != 0 ? 256u : 1u);
    const size_t length = std::min<size_t>(data[at + 3], size - at - 4);
    packet = kaiwa::record::test::rtpHeader(seq, ts, (control & 1) != 0);
    packet.insert(packet.end(), data + at + 4, data + at + 4 + length);
    at += 4 + length;
    const int ticks = (control >> 1) & 7;
    for (int i = 0; i < ticks; ++i) {
      now += std::chrono::milliseconds(100);
      rec.tick(now);
    }
    auto parsed = rtp::Packet::parse(packet);
    FUZZ_CHECK(parsed.has_value());
    if (auto size = h264::spsPictureSize(parsed->payload())) FUZZ_CHECK(size->width > 0 && size->height > 0);
    rec.push(*parsed, now);
    FUZZ_CHECK(rec.assembler().held() <= FrameAssembler::kMaxPending + 1);
  }
  FUZZ_CHECK(rec.finish());
  const auto stats = rec.stats();
  if (const char* dump = std::getenv("FUZZ_RECORD_DUMP")) {  // to look at a failing input's file with other tools
    if (FILE* f = std::fopen(dump, "wb")) {
      std::fwrite(sink->bytes().data(), 1, sink->bytes().size(), f);
      std::fclose(f);
    }
  }
  auto file = kaiwa::record::test::readWebm(sink->bytes());
  FUZZ_CHECK(file.parsed);
  FUZZ_CHECK(file.blocks.size() == stats.frames);
  for (size_t i = 1; i < file.blocks.size(); ++i) FUZZ_CHECK(file.blocks[i].timeMs >= file.blocks[i - 1].timeMs);
  if (video && !file.blocks.empty()) FUZZ_CHECK(file.blocks[0].keyframe);
  if (codec == Codec::kH264 && !file.blocks.empty()) {
    auto config = h264::configOf(file.blocks[0].data);
    FUZZ_CHECK(config.has_value() && config->avcC == file.codecPrivate);
    FUZZ_CHECK(file.width == config->size.width && file.height == config->size.height);
  }
  return 0;
}
