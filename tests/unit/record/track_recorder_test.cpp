// A published track into a file on disk: VP8 RTP packets through TrackRecorder and FileSink (buffered appends and
// patches on both sides of a flush), read back with libwebm's parser: the picture size from the first keyframe,
// frame times in milliseconds from the RTP clock, a loss the recorder cannot repair dropping frames until the next
// keyframe. FileSink never overwrites a file.
#include "record/track_recorder.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "record/file_sink.hpp"
#include "record/rtp_header.hpp"
#include "record/webm_reader.hpp"

namespace kaiwa::record {
namespace {

std::vector<uint8_t> packet(uint16_t seq, uint32_t ts, bool first, bool last, bool key, size_t size) {
  std::vector<uint8_t> b = test::rtpHeader(seq, ts, last);
  b.push_back(first ? 0x10 : 0x00);  // a minimal descriptor: S on the first packet, PID 0
  std::vector<uint8_t> data(size, static_cast<uint8_t>(seq));
  if (first && key) {  // frame tag, start code, 320 x 240
    const uint8_t header[] = {0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xF0, 0x00};
    std::copy(std::begin(header), std::end(header), data.begin());
  } else if (first) {
    data[0] = 0x01;
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

class TrackRecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() / ("kaiwa-record-test-" + std::to_string(::getpid()) + "-" +
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::vector<uint8_t> contents(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  std::filesystem::path dir;
};

TEST_F(TrackRecorderTest, Vp8PacketsBecomeAPlayableFile) {
  const auto path = dir / "cam.webm";
  auto sink = std::make_unique<FileSink>(path.string());
  ASSERT_TRUE(sink->ok()) << sink->error();
  TrackRecorder rec(Codec::kVp8, 90000, std::move(sink));
  EXPECT_TRUE(rec.keyframeWanted());
  TimePoint now{};
  uint16_t seq = 1000;
  uint32_t ts = 123456;
  // 60 frames at 30 fps, three 1000-byte packets each (180 kB: the buffer is flushed several times, and Cluster
  // sizes are patched both in the file and in the buffer); keyframes at 0 and 30; frame 45 loses its middle packet.
  for (int f = 0; f < 60; ++f) {
    const bool key = f % 30 == 0;
    for (int i = 0; i < 3; ++i, ++seq) {
      if (f == 45 && i == 1) continue;
      auto p = packet(seq, ts, i == 0, i == 2, key, 1000);
      rec.push(*rtp::Packet::parse(p), now);
    }
    now += std::chrono::milliseconds(33);
    rec.tick(now);
    if (f == 50) {
      EXPECT_FALSE(rec.keyframeWanted()) << "still waiting for a retransmission of frame 45's packet";
    }
    ts += 3000;
  }
  rec.tick(now + FrameAssembler::kMaxWait);
  EXPECT_TRUE(rec.keyframeWanted()) << "frame 45 could not be repaired";
  ASSERT_TRUE(rec.finish());
  const auto stats = rec.stats();
  EXPECT_FALSE(stats.failed);
  ASSERT_TRUE(static_cast<FileSink&>(rec.sink()).close());
  auto f = test::readWebm(contents(path));
  ASSERT_TRUE(f.parsed);
  EXPECT_EQ(f.codecId, "V_VP8");
  EXPECT_EQ(f.width, 320u);
  EXPECT_EQ(f.height, 240u);
  // Frames 0-44 and the keyframe era is over at 45: 46-59 are inter frames without their reference, dropped.
  ASSERT_EQ(f.blocks.size(), 45u);
  EXPECT_EQ(stats.frames, 45u);
  for (size_t i = 0; i < f.blocks.size(); ++i) {
    EXPECT_EQ(f.blocks[i].timeMs, i * 3000 * 1000 / 90000) << i;
    EXPECT_EQ(f.blocks[i].keyframe, i % 30 == 0) << i;
    EXPECT_EQ(f.blocks[i].data.size(), 3000u) << i;
  }
  EXPECT_EQ(f.cueTimes, (std::vector<uint64_t>{0, 1000}));
  EXPECT_EQ(stats.bytes, std::filesystem::file_size(path));
  EXPECT_EQ(rec.assembler().counters().gaps, 1u);
}

TEST_F(TrackRecorderTest, AnEmptyRecordingIsStillAValidFile) {
  const auto path = dir / "mic.webm";
  TrackRecorder rec(Codec::kOpus, 48000, std::make_unique<FileSink>(path.string()));
  ASSERT_TRUE(rec.finish());
  ASSERT_TRUE(static_cast<FileSink&>(rec.sink()).close());
  auto f = test::readWebm(contents(path));
  EXPECT_TRUE(f.parsed);
  EXPECT_EQ(f.codecId, "A_OPUS");
  EXPECT_TRUE(f.blocks.empty());
}

TEST_F(TrackRecorderTest, FileSinkNeverOverwritesAFile) {
  const auto path = dir / "taken.webm";
  std::ofstream(path) << "keep me";
  FileSink sink(path.string());
  EXPECT_FALSE(sink.ok());
  EXPECT_NE(sink.error().find("cannot create"), std::string::npos);
  const uint8_t b[] = {1};
  EXPECT_FALSE(sink.append(b));
  EXPECT_EQ(contents(path).size(), 7u);
}

}  // namespace
}  // namespace kaiwa::record
