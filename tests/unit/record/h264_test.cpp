// H.264 recording: RFC 6184 payloads (single NAL units, STAP-A, FU-A) checked and put back into access units of
// length-prefixed NAL units; the picture size from an SPS (cropping, emulation prevention, High profile); the avcC;
// a real stream (libx264's, tests/unit/record/data) through the assembler whole, reordered and with a loss; and into
// a Matroska file that libwebm's parser reads back and, where ffprobe is installed, ffprobe decodes without an error.
#include "record/h264.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>

#include "record/file_sink.hpp"
#include "record/frame_assembler.hpp"
#include "record/h264_stream.hpp"
#include "record/track_recorder.hpp"
#include "record/webm_reader.hpp"

namespace kaiwa::record {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(H264Test, PayloadsOfModeOneAreAcceptedAndOthersRefused) {
  EXPECT_TRUE(h264::inspect(Bytes{0x65, 1, 2})->nalStart);  // an IDR slice, alone
  EXPECT_TRUE(h264::inspect(Bytes{0x41})->nalStart);        // a slice of one byte
  // STAP-A of an SPS (3 bytes) and a PPS (2 bytes).
  EXPECT_TRUE(h264::inspect(Bytes{0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 9})->nalStart);
  EXPECT_FALSE(h264::inspect(Bytes{0x78, 0, 4, 0x67, 1, 2})) << "an aggregated unit past the end";
  EXPECT_FALSE(h264::inspect(Bytes{0x78, 0, 3, 0x67, 1, 2, 0})) << "a size cut in half";
  EXPECT_FALSE(h264::inspect(Bytes{0x78, 0, 0})) << "an empty aggregated unit";
  EXPECT_FALSE(h264::inspect(Bytes{0x78})) << "a STAP-A with nothing in it";
  EXPECT_FALSE(h264::inspect(Bytes{0x78, 0, 1, 0x78})) << "a STAP-A inside a STAP-A";
  // FU-A: start, middle, end.
  EXPECT_TRUE(h264::inspect(Bytes{0x7C, 0x85, 1})->nalStart);
  EXPECT_FALSE(h264::inspect(Bytes{0x7C, 0x05, 1})->nalStart);
  EXPECT_FALSE(h264::inspect(Bytes{0x7C, 0x45, 1})->nalStart);
  EXPECT_FALSE(h264::inspect(Bytes{0x7C, 0xC5, 1})) << "start and end in one fragment";
  EXPECT_FALSE(h264::inspect(Bytes{0x7C, 0x85})) << "a fragment with no data";
  EXPECT_FALSE(h264::inspect(Bytes{0x7C, 0x9C, 1})) << "a fragment of a fragment";
  for (uint8_t type : {0, 25, 26, 27, 29, 30, 31}) EXPECT_FALSE(h264::inspect(Bytes{type, 1, 2, 3})) << int(type);
  EXPECT_FALSE(h264::inspect(Bytes{0xE5, 1})) << "the forbidden bit";
  EXPECT_FALSE(h264::inspect(Bytes{}));
}

TEST(H264Test, AnAccessUnitIsRebuiltFromAggregatesAndFragments) {
  h264::AccessUnitBuilder b;
  ASSERT_TRUE(b.add(Bytes{0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 9}));
  ASSERT_TRUE(b.add(Bytes{0x7C, 0x85, 1, 2}));
  ASSERT_TRUE(b.add(Bytes{0x7C, 0x05, 3}));
  ASSERT_TRUE(b.add(Bytes{0x7C, 0x45, 4}));
  ASSERT_TRUE(b.add(Bytes{0x06, 7}));
  ASSERT_TRUE(b.finish());
  EXPECT_TRUE(b.keyframe());
  const Bytes want{0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 9, 0, 0, 0, 5, 0x65, 1, 2, 3, 4, 0, 0, 0, 2, 0x06, 7};
  EXPECT_EQ(Bytes(b.data().begin(), b.data().end()), want);

  b.clear();
  ASSERT_TRUE(b.add(Bytes{0x7C, 0x85, 1}));
  ASSERT_TRUE(b.finish() == false) << "a fragmented unit left open";
  EXPECT_FALSE(b.keyframe()) << "no SPS or PPS";
  b.clear();
  EXPECT_FALSE(b.add(Bytes{0x7C, 0x05, 1})) << "a fragment whose start is not there";
  b.clear();
  ASSERT_TRUE(b.add(Bytes{0x7C, 0x85, 1}));
  EXPECT_FALSE(b.add(Bytes{0x41, 1})) << "a new unit while a fragmented one is open";
  b.clear();
  ASSERT_TRUE(b.add(Bytes{0x7C, 0x85, 1}));
  EXPECT_FALSE(b.add(Bytes{0x7C, 0x41, 1})) << "a fragment of another unit type";
  b.clear();
  EXPECT_FALSE(b.finish()) << "an access unit holds a NAL unit";
}

TEST(H264Test, PictureSizeFromTheSequenceParameterSet) {
  // libx264's 1920x1080 High profile: 68 macroblock rows cropped by 8 lines, two emulation prevention bytes.
  const Bytes hd{0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00,
                 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58};
  auto size = h264::spsPictureSize(hd);
  ASSERT_TRUE(size);
  EXPECT_EQ(size->width, 1920);
  EXPECT_EQ(size->height, 1080);
  // Every shorter prefix is malformed, never read past.
  for (size_t n = 0; n < 10; ++n) EXPECT_FALSE(h264::spsPictureSize(std::span(hd).first(n))) << n;
  EXPECT_FALSE(h264::spsPictureSize(Bytes{0x68, 0x64, 0x00, 0x28, 0xac})) << "a PPS";

  auto stream = test::testStream();
  ASSERT_EQ(stream.size(), 60u);
  ASSERT_EQ(stream[0][0][0] & 0x1F, h264::kNalSps);
  size = h264::spsPictureSize(stream[0][0]);
  ASSERT_TRUE(size);
  EXPECT_EQ(size->width, 120);  // 8 macroblocks cropped by 8 columns
  EXPECT_EQ(size->height, 90);  // 6 macroblock rows cropped by 6 lines

  auto config = h264::configOf(test::lengthPrefixed(stream[0]));
  ASSERT_TRUE(config);
  EXPECT_EQ(config->size.width, 120);
  const Bytes& c = config->avcC;
  const Bytes& sps = stream[0][0];
  const Bytes& pps = stream[0][1];
  ASSERT_EQ(c.size(), 6 + 2 + sps.size() + 1 + 2 + pps.size());
  EXPECT_EQ(c[0], 1);
  EXPECT_EQ(c[1], sps[1]);  // profile
  EXPECT_EQ(c[3], sps[3]);  // level
  EXPECT_EQ(c[4], 0xFF);    // 4-byte lengths
  EXPECT_EQ(c[5], 0xE1);    // one SPS
  EXPECT_TRUE(std::equal(sps.begin(), sps.end(), c.begin() + 8));
  EXPECT_EQ(c[8 + sps.size()], 1);  // one PPS
  EXPECT_TRUE(std::equal(pps.begin(), pps.end(), c.end() - static_cast<std::ptrdiff_t>(pps.size())));
  EXPECT_FALSE(h264::configOf(test::lengthPrefixed(stream[1]))) << "an inter frame has no SPS";
}

struct Out {
  int64_t ts;
  bool key;
  Bytes data;
};

class H264AssemblerTest : public ::testing::Test {
 protected:
  FrameAssembler make() {
    return FrameAssembler(Codec::kH264, [this](const Frame& f) {
      out.push_back({f.timestamp, f.keyframe, Bytes(f.data.begin(), f.data.end())});
    });
  }
  void push(FrameAssembler& a, const test::RtpOut& p) { a.push(*rtp::Packet::parse(p.bytes), now); }
  std::vector<test::AccessUnit> stream = test::testStream();
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  std::vector<Out> out;
};

TEST_F(H264AssemblerTest, EveryFrameComesOutAsLengthPrefixedNalUnits) {
  // A small MTU: the SEI and every slice are fragmented, the SPS and PPS aggregated.
  auto packets = test::rtpStream(stream, 60, 65500, 0xFFFF0000u);
  ASSERT_GT(packets.size(), 2 * stream.size());
  auto a = make();
  EXPECT_TRUE(a.keyframeWanted());
  for (const auto& p : packets) push(a, p);
  ASSERT_EQ(out.size(), stream.size());
  for (size_t f = 0; f < out.size(); ++f) {
    EXPECT_EQ(out[f].data, test::lengthPrefixed(stream[f])) << f;
    EXPECT_EQ(out[f].key, f % 30 == 0) << f;
    EXPECT_EQ(out[f].ts, int64_t{0xFFFF0000} + int64_t(f) * 3000) << "timestamps unwrapped";
  }
  EXPECT_FALSE(a.keyframeWanted());
  EXPECT_EQ(a.counters().malformed, 0u);
}

TEST_F(H264AssemblerTest, ReorderedPacketsAndALateRetransmission) {
  auto packets = test::rtpStream(stream, 300, 1, 0);
  auto a = make();
  // Swap neighbours through the stream (after the first keyframe: a stream whose very first packet comes late
  // starts at the next keyframe), and hold one packet of frame 5 back for 200 ms.
  size_t from = 0;
  while (packets[from].frame == 0) ++from;
  for (size_t i = from; i + 1 < packets.size(); i += 7) std::swap(packets[i], packets[i + 1]);
  const auto held = std::find_if(packets.begin(), packets.end(), [](const auto& p) { return p.frame == 5; });
  const test::RtpOut late = *held;
  packets.erase(held);
  for (const auto& p : packets) push(a, p);
  EXPECT_EQ(out.size(), 5u) << "frames after the hole wait";
  now += std::chrono::milliseconds(200);
  a.tick(now);
  push(a, late);
  ASSERT_EQ(out.size(), stream.size());
  for (size_t f = 0; f < out.size(); ++f) EXPECT_EQ(out[f].data, test::lengthPrefixed(stream[f])) << f;
  EXPECT_EQ(a.counters().gaps, 0u);
}

TEST_F(H264AssemblerTest, ALostFragmentDropsFramesUntilTheNextKeyframe) {
  auto packets = test::rtpStream(stream, 40, 1, 0);
  auto a = make();
  // Frame 10 loses a middle fragment (neither its first nor its last packet).
  std::vector<size_t> ofTen;
  for (size_t i = 0; i < packets.size(); ++i)
    if (packets[i].frame == 10) ofTen.push_back(i);
  ASSERT_GE(ofTen.size(), 3u);
  packets.erase(packets.begin() + static_cast<std::ptrdiff_t>(ofTen[ofTen.size() / 2]));
  for (const auto& p : packets) {
    if (p.frame == 30) break;
    push(a, p);
  }
  EXPECT_EQ(out.size(), 10u);
  now += FrameAssembler::kMaxWait;
  a.tick(now);
  EXPECT_EQ(out.size(), 10u) << "frames 10 to 29 dropped";
  EXPECT_TRUE(a.keyframeWanted());
  EXPECT_EQ(a.counters().gaps, 1u);
  for (const auto& p : packets) {
    if (p.frame == 30) push(a, p);
  }
  ASSERT_EQ(out.size(), 11u) << "the keyframe 30 written";
  EXPECT_TRUE(out[10].key);
  EXPECT_EQ(out[10].ts, 30 * 3000);
  EXPECT_EQ(out[10].data, test::lengthPrefixed(stream[30]));
  EXPECT_FALSE(a.keyframeWanted());
  EXPECT_EQ(a.counters().framesDropped, 20u);
}

TEST_F(H264AssemblerTest, AStreamJoinedMidwayAndAnIdrWithoutParameterSetsWait) {
  auto packets = test::rtpStream(stream, 1200, 1, 0);
  auto a = make();
  // Join in frame 3; then frame 30's SPS and PPS (its first packet, a STAP-A) are lost.
  size_t first30 = 0;
  for (size_t i = 0; i < packets.size(); ++i) {
    if (packets[i].frame == 30 && first30 == 0) first30 = i;
  }
  for (size_t i = 0; i < packets.size(); ++i) {
    if (packets[i].frame < 3 || i == first30 || packets[i].frame >= 40) continue;
    push(a, packets[i]);
  }
  a.tick(now + FrameAssembler::kMaxWait);
  EXPECT_TRUE(out.empty()) << "no keyframe with its parameter sets yet";
  EXPECT_TRUE(a.keyframeWanted());
  EXPECT_EQ(a.counters().malformed, 0u);
}

TEST_F(H264AssemblerTest, BrokenFragmentationIsDroppedAndCounted) {
  auto a = make();
  auto pkt = [](uint16_t seq, uint32_t ts, bool marker, Bytes payload) {
    Bytes b = test::rtpHeader(seq, ts, marker);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  };
  // A keyframe whose IDR fragment never ends before the marker.
  const Bytes stap{0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 9};
  for (const Bytes& b : {pkt(1, 0, false, stap), pkt(2, 0, true, Bytes{0x7C, 0x85, 1})})
    a.push(*rtp::Packet::parse(b), now);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(a.counters().malformed, 1u);
  // A payload of an interleaved-mode type is refused on arrival.
  a.push(*rtp::Packet::parse(pkt(3, 3000, true, Bytes{0x1A, 1, 2})), now);
  EXPECT_EQ(a.counters().malformed, 2u);
  EXPECT_TRUE(a.keyframeWanted());
}

TEST(H264RecorderTest, AKeyframeWhoseSpsCannotBeReadIsSkippedAndAnotherWanted) {
  auto sink = std::make_unique<MemorySink>();
  TrackRecorder rec(Codec::kH264, 90000, std::move(sink));
  TimePoint now{};
  EXPECT_TRUE(rec.keyframeWanted());
  // An IDR with an SPS that ends before its picture size, and a PPS, in one STAP-A, then the IDR slice.
  auto pkt = [](uint16_t seq, uint32_t ts, bool marker, Bytes payload) {
    Bytes b = test::rtpHeader(seq, ts, marker);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  };
  for (const Bytes& b : {pkt(1, 0, false, Bytes{0x78, 0, 4, 0x67, 0x42, 0xC0, 0x1F, 0, 2, 0x68, 9}),
                         pkt(2, 0, true, Bytes{0x65, 0x88, 0x84})})
    rec.push(*rtp::Packet::parse(b), now);
  EXPECT_FALSE(rec.assembler().keyframeWanted()) << "the assembler handed the keyframe out";
  EXPECT_TRUE(rec.keyframeWanted()) << "but the file could not begin with it";
  EXPECT_EQ(rec.stats().frames, 0u);
  // The next keyframe, a real one, begins the file.
  auto stream = test::testStream();
  for (const auto& p : test::rtpStream({stream[0]}, 1200, 3, 3000)) rec.push(*rtp::Packet::parse(p.bytes), now);
  EXPECT_EQ(rec.stats().frames, 1u);
  EXPECT_FALSE(rec.keyframeWanted());
}

class H264FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() / ("kaiwa-h264-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::filesystem::path dir;
};

// Runs a command and returns its standard output; its standard error goes to `err`.
std::string run(const std::string& command, const std::filesystem::path& err, int& status) {
  std::string out;
  FILE* p = ::popen((command + " 2>" + err.string()).c_str(), "r");
  if (p == nullptr) {
    status = -1;
    return out;
  }
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  status = ::pclose(p);
  return out;
}

TEST_F(H264FileTest, TheStreamBecomesAMatroskaFileThatDecodes) {
  auto stream = test::testStream();
  auto packets = test::rtpStream(stream, 400, 40000, 0x7FFFFFFF);
  const auto path = dir / "t1-video.mkv";
  auto sink = std::make_unique<FileSink>(path.string());
  ASSERT_TRUE(sink->ok()) << sink->error();
  TrackRecorder rec(Codec::kH264, 90000, std::move(sink));
  TimePoint now{};
  for (const auto& p : packets) rec.push(*rtp::Packet::parse(p.bytes), now);
  ASSERT_TRUE(rec.finish());
  ASSERT_TRUE(static_cast<FileSink&>(rec.sink()).close());
  EXPECT_EQ(rec.stats().frames, 60u);
  EXPECT_EQ(rec.stats().durationMs, 59u * 100 / 3 + 33);  // 59 gaps of 33.3 ms, the last frame lasts 33 ms

  auto f = test::readWebm(test::readFile(path.string()));
  ASSERT_TRUE(f.parsed);
  EXPECT_EQ(f.docType, "matroska");
  EXPECT_EQ(f.codecId, "V_MPEG4/ISO/AVC");
  EXPECT_EQ(f.trackType, 1u);
  EXPECT_EQ(f.width, 120u);
  EXPECT_EQ(f.height, 90u);
  EXPECT_EQ(f.codecPrivate, h264::configOf(test::lengthPrefixed(stream[0]))->avcC);
  ASSERT_EQ(f.blocks.size(), 60u);
  for (size_t i = 0; i < f.blocks.size(); ++i) {
    EXPECT_EQ(f.blocks[i].timeMs, i * 100 / 3) << i;
    EXPECT_EQ(f.blocks[i].keyframe, i % 30 == 0) << i;
    EXPECT_EQ(f.blocks[i].data, test::lengthPrefixed(stream[i])) << i;
  }
  EXPECT_EQ(f.cueTimes, (std::vector<uint64_t>{0, 1000}));

  // ffprobe (Debian's ffmpeg) decodes every frame: nothing on its error output, the size and the count right.
  if (std::system("command -v ffprobe >/dev/null 2>&1") != 0) GTEST_SKIP() << "ffprobe is not installed";
  int status = 0;
  const auto err = dir / "ffprobe.err";
  const std::string probed =
      run("ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,width,height,"
          "nb_read_frames -of csv=p=0 " +
              path.string(),
          err, status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(test::readFile(err.string()).size(), 0u) << std::string(probed);
  EXPECT_EQ(probed, "h264,120,90,60\n");
}

}  // namespace
}  // namespace kaiwa::record
