// The WebM writer, read back with libwebm's parser: the header a player needs (doc type, codec, sizes, Opus's
// identification header), every frame at its time with its keyframe flag, Clusters where they should start, Cues
// that point at those Clusters, the SeekHead, and the Duration patched in at the end.
#include "record/webm_writer.hpp"

#include <gtest/gtest.h>

#include "record/webm_reader.hpp"

namespace kaiwa::record {
namespace {

using test::readWebm;

std::vector<uint8_t> frameOf(size_t size, uint8_t fill) { return std::vector<uint8_t>(size, fill); }

TEST(WebmWriterTest, AudioFileReadsBackWithEveryFrameAtItsTime) {
  MemorySink sink;
  WebmWriter w(sink);
  ASSERT_TRUE(w.begin({.codec = Codec::kOpus, .channels = 2}));
  // 12 s of 20 ms Opus frames, a gap of 200 ms (DTX) at 3 s.
  uint64_t t = 0;
  std::vector<uint64_t> times;
  for (int i = 0; i < 600; ++i) {
    if (i == 150) t += 200;
    times.push_back(t);
    ASSERT_TRUE(w.write(t, true, frameOf(60 + i % 7, static_cast<uint8_t>(i))));
    t += 20;
  }
  ASSERT_TRUE(w.finish());
  auto f = readWebm(sink.bytes());
  ASSERT_TRUE(f.parsed);
  EXPECT_EQ(f.docType, "webm");
  EXPECT_EQ(f.codecId, "A_OPUS");
  EXPECT_EQ(f.trackType, 2u);
  EXPECT_EQ(f.channels, 2u);
  EXPECT_EQ(f.timecodeScale, 1'000'000u);
  ASSERT_GE(f.codecPrivate.size(), 19u);
  EXPECT_EQ(std::string(f.codecPrivate.begin(), f.codecPrivate.begin() + 8), "OpusHead");
  EXPECT_EQ(f.codecPrivate[9], 2);  // channels
  ASSERT_EQ(f.blocks.size(), 600u);
  for (size_t i = 0; i < f.blocks.size(); ++i) {
    EXPECT_EQ(f.blocks[i].timeMs, times[i]) << i;
    EXPECT_TRUE(f.blocks[i].keyframe);
    EXPECT_EQ(f.blocks[i].data, frameOf(60 + i % 7, static_cast<uint8_t>(i))) << i;
  }
  EXPECT_DOUBLE_EQ(f.durationMs, static_cast<double>(times.back() + 20));
  // A Cluster every 5 s of audio, each one a Cue at the Cluster's own position.
  EXPECT_EQ(f.clusterTimes, (std::vector<uint64_t>{0, 5000, 10000}));
  EXPECT_EQ(f.cueTimes, f.clusterTimes);
  EXPECT_EQ(f.cuePositions, f.clusterPositions);
  EXPECT_EQ(f.seekIds, (std::vector<uint64_t>{0x1549A966, 0x1654AE6B, 0x1C53BB6B}));
}

TEST(WebmWriterTest, VideoClustersStartAtKeyframesAndOnlyThoseAreCues) {
  MemorySink sink;
  WebmWriter w(sink);
  ASSERT_TRUE(w.begin({.codec = Codec::kVp8, .width = 640, .height = 480}));
  EXPECT_FALSE(w.write(0, false, frameOf(10, 1))) << "a video file starts with a keyframe";
  for (uint64_t i = 0; i < 90; ++i) {
    const bool key = i == 0 || i == 40;
    ASSERT_TRUE(w.write(i * 33, key, frameOf(key ? 3000 : 500, static_cast<uint8_t>(i))));
  }
  // 40 s without a keyframe: the block offset would overflow 16 bits, so a Cluster starts anyway, but is no Cue.
  ASSERT_TRUE(w.write(90 * 33 + 40000, false, frameOf(400, 9)));
  EXPECT_FALSE(w.write(10, false, frameOf(10, 1))) << "time never goes backwards";
  EXPECT_FALSE(w.write(90 * 33 + 40001, false, {})) << "a block holds a frame";
  ASSERT_TRUE(w.finish());
  EXPECT_TRUE(w.finish()) << "finish is idempotent";
  auto f = readWebm(sink.bytes());
  ASSERT_TRUE(f.parsed);
  EXPECT_EQ(f.codecId, "V_VP8");
  EXPECT_EQ(f.trackType, 1u);
  EXPECT_EQ(f.width, 640u);
  EXPECT_EQ(f.height, 480u);
  ASSERT_EQ(f.blocks.size(), 91u);
  EXPECT_TRUE(f.blocks[0].keyframe);
  EXPECT_FALSE(f.blocks[1].keyframe);
  EXPECT_TRUE(f.blocks[40].keyframe);
  EXPECT_EQ(f.blocks[40].timeMs, 40u * 33);
  EXPECT_EQ(f.blocks[90].timeMs, 90u * 33 + 40000);
  EXPECT_EQ(f.clusterTimes, (std::vector<uint64_t>{0, 40 * 33, 90 * 33 + 40000}));
  EXPECT_EQ(f.cueTimes, (std::vector<uint64_t>{0, 40 * 33}));
  ASSERT_EQ(f.cuePositions.size(), 2u);
  EXPECT_EQ(f.cuePositions[0], f.clusterPositions[0]);
  EXPECT_EQ(f.cuePositions[1], f.clusterPositions[1]);
  // The last frame lasts as long as the gap before it, at most 1 s.
  EXPECT_DOUBLE_EQ(f.durationMs, static_cast<double>(90 * 33 + 40000 + 1000));
}

TEST(WebmWriterTest, AFileWithNoFrameIsStillValid) {
  MemorySink sink;
  WebmWriter w(sink);
  ASSERT_TRUE(w.begin({.codec = Codec::kOpus}));
  ASSERT_TRUE(w.finish());
  auto f = readWebm(sink.bytes());
  EXPECT_TRUE(f.parsed);
  EXPECT_TRUE(f.blocks.empty());
  EXPECT_DOUBLE_EQ(f.durationMs, 0.0);
  EXPECT_EQ(f.seekIds, (std::vector<uint64_t>{0x1549A966, 0x1654AE6B}));
}

TEST(WebmWriterTest, ASinkThatFailsStopsTheWriter) {
  struct Failing final : Sink {
    size_t budget;
    uint64_t written = 0;
    explicit Failing(size_t b) : budget(b) {}
    bool append(std::span<const uint8_t> b) override {
      if (b.size() > budget) return false;
      budget -= b.size();
      written += b.size();
      return true;
    }
    bool patch(uint64_t, std::span<const uint8_t>) override { return true; }
    uint64_t size() const override { return written; }
  } sink(400);
  WebmWriter w(sink);
  ASSERT_TRUE(w.begin({.codec = Codec::kOpus}));
  bool failedOnce = false;
  for (int i = 0; i < 20 && !failedOnce; ++i) failedOnce = !w.write(i * 20, true, frameOf(100, 1));
  EXPECT_TRUE(failedOnce);
  EXPECT_TRUE(w.failed());
  EXPECT_FALSE(w.write(1000, true, frameOf(1, 1)));
  EXPECT_FALSE(w.finish());
}

}  // namespace
}  // namespace kaiwa::record
