// A room's recording (media::Recording) on a real sfu::Router: the tapped tracks' packets into WebM files (Matroska
// for H.264) read back with libwebm's parser, a keyframe asked of the publisher at the start, a track's file closed
// when the track ends, the manifest (rewritten whole) at each change, the limits per room and in all, another codec's
// packets and unrecorded codecs, the free-space guard at the start and while running, and room names that cannot become
// paths.
#include "media/recording.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "record/h264_stream.hpp"
#include "record/rtp_header.hpp"
#include "record/webm_reader.hpp"
#include "rtp/rtcp.hpp"

namespace kaiwa::media {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

struct FakeIo final : sfu::RouterIo {
  void onReady(sfu::TransportId) override {}
  void sendRtcp(sfu::TransportId to, std::span<const uint8_t> packet) override {
    // A PLI: RTCP payload-specific feedback (206) with FMT 1.
    if (packet.size() >= 2 && packet[1] == 206 && (packet[0] & 0x1F) == 1) ++plis[to];
  }
  std::map<sfu::TransportId, int> plis;
};

std::vector<uint8_t> readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

json::object readManifest(const fs::path& dir) {
  const auto bytes = readAll(dir / "manifest.json");
  return json::parse(std::string(bytes.begin(), bytes.end())).as_object();
}

// A VP8 packet of one whole frame (payload type 96, SSRC 0x11223344 as rtpHeader writes).
std::vector<uint8_t> vp8Frame(uint16_t seq, uint32_t ts, bool key, uint8_t payloadType = 96) {
  std::vector<uint8_t> b = record::test::rtpHeader(seq, ts, true);
  b[1] = static_cast<uint8_t>(0x80 | payloadType);
  b.push_back(0x10);  // descriptor: S, partition 0
  std::vector<uint8_t> data(200, uint8_t(seq));
  if (key) {
    const uint8_t header[] = {0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xF0, 0x00};  // 320 x 240
    std::copy(std::begin(header), std::end(header), data.begin());
  } else {
    data[0] = 0x01;
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

class RecordingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("kaiwa-recording-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(root);
    router.addPublisher(publisher, {});
    sfu::TrackConfig video;
    video.kind = sfu::MediaKind::kVideo;
    video.mid = "1";
    video.ssrc = 0x11223344;
    track = *router.addTrack(publisher, video);
  }
  void TearDown() override { fs::remove_all(root); }

  Recording::Options options(RecordLimits limits = {}) {
    Recording::Options o;
    o.root = root.string();
    o.room = "team/../standup";
    o.by = "p1";
    o.byName = "Alice \"A\"";
    o.limits = limits;
    o.recorders = &recorders;
    o.freeBytes = [this](const std::string&) { return std::optional<uint64_t>(freeBytes); };
    return o;
  }
  std::unique_ptr<Recording> start(RecordLimits limits = {}) {
    auto made = Recording::start(options(limits), router);
    auto* r = std::get_if<std::unique_ptr<Recording>>(&made);
    if (r == nullptr) ADD_FAILURE() << std::get<std::string>(made);
    return r ? std::move(*r) : nullptr;
  }
  RecordedSource vp8(sfu::TrackId id) {
    return {.track = id,
            .peer = "p1",
            .source = "camera",
            .kind = sfu::MediaKind::kVideo,
            .codec = "VP8",
            .payloadType = 96,
            .clockRate = 90000,
            .channels = 0};
  }
  json::object manifest(const Recording& r) { return readManifest(r.directory()); }

  fs::path root;
  FakeIo io;
  sfu::Router router{io};
  sfu::TransportId publisher = 7;
  sfu::TrackId track = 0;
  std::atomic<size_t> recorders{0};
  uint64_t freeBytes = uint64_t(100) << 30;
};

TEST_F(RecordingTest, TappedPacketsBecomeAFileThatClosesWhenTheTrackEnds) {
  auto rec = start();
  ASSERT_TRUE(rec);
  TimePoint now{};
  rec->addTrack(vp8(track), now);
  EXPECT_EQ(io.plis[publisher], 1) << "a keyframe is asked for at the start";
  EXPECT_EQ(recorders.load(), 1u);
  auto m = manifest(*rec);
  EXPECT_EQ(m["room"].as_string(), "team/../standup");
  EXPECT_EQ(m["startedBy"].as_object()["name"].as_string(), "Alice \"A\"");
  EXPECT_TRUE(m["end"].is_null());
  ASSERT_EQ(m["tracks"].as_array().size(), 1u);
  const std::string file(m["tracks"].as_array()[0].as_object()["file"].as_string());
  EXPECT_EQ(file, "t1-video.webm");

  // 30 frames at 30 fps from a keyframe; one packet of another payload type in between is not written.
  for (int f = 0; f < 30; ++f) {
    auto p = vp8Frame(uint16_t(100 + f), uint32_t(5000 + 3000 * f), f == 0);
    router.onPublisherRtp(publisher, p, now);
    now += std::chrono::milliseconds(33);
  }
  auto other = vp8Frame(130, 5000 + 3000 * 30, false, 97);
  router.onPublisherRtp(publisher, other, now);
  EXPECT_FALSE(rec->tick(now));

  router.removeTrack(track);  // the publisher stopped it: its file closes now, the recording goes on
  EXPECT_EQ(recorders.load(), 0u);
  EXPECT_EQ(rec->recording(), 0u);
  auto t = manifest(*rec)["tracks"].as_array()[0].as_object();
  EXPECT_EQ(t["status"].as_string(), "done");
  EXPECT_EQ(t["frames"].as_int64(), 30);
  EXPECT_EQ(t["durationMs"].as_int64(), 29 * 3000 * 1000 / 90000 + 33);
  auto f = record::test::readWebm(readAll(fs::path(rec->directory()) / file));
  ASSERT_TRUE(f.parsed);
  EXPECT_EQ(f.codecId, "V_VP8");
  EXPECT_EQ(f.width, 320u);
  ASSERT_EQ(f.blocks.size(), 30u);
  EXPECT_EQ(f.blocks[29].timeMs, 29u * 3000 * 1000 / 90000);
  EXPECT_EQ(uint64_t(t["bytes"].as_int64()), fs::file_size(fs::path(rec->directory()) / file));

  rec->stop("stopped");
  m = manifest(*rec);
  EXPECT_EQ(m["endReason"].as_string(), "stopped");
  EXPECT_TRUE(m["end"].is_int64());
}

TEST_F(RecordingTest, AnH264TrackGoesIntoAMatroskaFile) {
  auto rec = start();
  ASSERT_TRUE(rec);
  TimePoint now{};
  RecordedSource h264 = vp8(track);
  h264.codec = "H264";
  rec->addTrack(h264, now);
  EXPECT_EQ(io.plis[publisher], 1) << "a keyframe is asked for at the start";
  now += std::chrono::milliseconds(100);
  EXPECT_FALSE(rec->tick(now));
  EXPECT_EQ(io.plis[publisher], 1);
  now += std::chrono::milliseconds(150);
  EXPECT_FALSE(rec->tick(now));
  EXPECT_EQ(io.plis[publisher], 2) << "no frame in the file yet: asked again after 250 ms, not 1 s";
  // libx264's 60 frames (tests/unit/record/data) as RFC 6184 packets of at most 1000 bytes.
  for (const auto& p : record::test::rtpStream(record::test::testStream(), 1000, 100, 5000)) {
    router.onPublisherRtp(publisher, p.bytes, now);
    now += std::chrono::milliseconds(5);
  }
  now += std::chrono::seconds(2);
  EXPECT_FALSE(rec->tick(now));
  EXPECT_EQ(io.plis[publisher], 2) << "the file has its keyframe: nothing more asked";
  rec->stop("stopped");
  auto t = manifest(*rec)["tracks"].as_array()[0].as_object();
  EXPECT_EQ(t["codec"].as_string(), "H264");
  EXPECT_EQ(t["status"].as_string(), "done");
  EXPECT_EQ(t["file"].as_string(), "t1-video.mkv");
  EXPECT_EQ(t["frames"].as_int64(), 60);
  auto f = record::test::readWebm(readAll(fs::path(rec->directory()) / "t1-video.mkv"));
  ASSERT_TRUE(f.parsed);
  EXPECT_EQ(f.docType, "matroska");
  EXPECT_EQ(f.codecId, "V_MPEG4/ISO/AVC");
  EXPECT_EQ(f.width, 120u);
  EXPECT_EQ(f.height, 90u);
  EXPECT_EQ(f.blocks.size(), 60u);
}

TEST_F(RecordingTest, StoppingClosesEveryFileAndAFreshTrackIsNotTappedTwice) {
  auto rec = start();
  ASSERT_TRUE(rec);
  rec->addTrack(vp8(track), TimePoint{});
  rec->addTrack(vp8(track), TimePoint{});  // publish again with the same track: one file
  EXPECT_EQ(manifest(*rec)["tracks"].as_array().size(), 1u);
  rec.reset();  // the room ended: the destructor stops it
  const auto dirs = std::vector<fs::path>(fs::directory_iterator(root), fs::directory_iterator());
  ASSERT_EQ(dirs.size(), 1u);
  auto m = readManifest(dirs[0]);
  EXPECT_EQ(m["endReason"].as_string(), "ended");
  EXPECT_EQ(m["tracks"].as_array()[0].as_object()["status"].as_string(), "done");
  auto f = record::test::readWebm(readAll(dirs[0] / "t1-video.webm"));
  EXPECT_TRUE(f.parsed) << "an empty recording is a whole file";
  EXPECT_EQ(recorders.load(), 0u);
  // The router no longer taps anything: a packet goes nowhere.
  auto p = vp8Frame(1, 1, true);
  router.onPublisherRtp(publisher, p, TimePoint{});
}

TEST_F(RecordingTest, LimitsAndUnrecordedCodecsAreListedAsSkipped) {
  sfu::TrackConfig second;
  second.kind = sfu::MediaKind::kVideo;
  second.mid = "2";
  second.ssrc = 0x55667788;
  const sfu::TrackId other = *router.addTrack(publisher, second);
  sfu::TrackConfig third = second;
  third.mid = "3";
  third.ssrc = 0x99;
  const sfu::TrackId vp9 = *router.addTrack(publisher, third);

  auto rec = start({.tracksPerRoom = 1, .tracks = 32});
  ASSERT_TRUE(rec);
  rec->addTrack(vp8(track), TimePoint{});
  rec->addTrack(vp8(other), TimePoint{});
  RecordedSource v = vp8(vp9);
  v.codec = "VP9";
  rec->addTrack(v, TimePoint{});
  auto tracks = manifest(*rec)["tracks"].as_array();
  ASSERT_EQ(tracks.size(), 3u);
  EXPECT_EQ(tracks[0].as_object()["status"].as_string(), "recording");
  EXPECT_EQ(tracks[1].as_object()["status"].as_string(), "skipped");
  EXPECT_NE(std::string(tracks[1].as_object()["note"].as_string()).find("room"), std::string::npos);
  EXPECT_EQ(tracks[2].as_object()["status"].as_string(), "skipped");
  EXPECT_NE(std::string(tracks[2].as_object()["note"].as_string()).find("VP9"), std::string::npos);
  EXPECT_FALSE(tracks[1].as_object().contains("file"));
  EXPECT_EQ(recorders.load(), 1u);

  // The server's bound: another room's recording finds it used up.
  recorders = 32;
  sfu::Router router2{io};
  router2.addPublisher(1, {});
  sfu::TrackConfig c;
  c.ssrc = 5;
  const auto t2 = *router2.addTrack(1, c);
  auto o = options();
  o.room = "other";
  auto made = Recording::start(std::move(o), router2);
  auto& rec2 = std::get<std::unique_ptr<Recording>>(made);
  rec2->addTrack(vp8(t2), TimePoint{});
  EXPECT_EQ(rec2->recording(), 0u);
  EXPECT_EQ(recorders.load(), 32u);
}

TEST_F(RecordingTest, TheFreeSpaceGuardRefusesAStartAndStopsARecording) {
  freeBytes = 10 << 20;
  auto refused = Recording::start(options(), router);
  ASSERT_TRUE(std::holds_alternative<std::string>(refused));
  EXPECT_NE(std::get<std::string>(refused).find("free"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(root));

  freeBytes = uint64_t(1) << 30;
  auto rec = start();
  ASSERT_TRUE(rec);
  rec->addTrack(vp8(track), TimePoint{});
  TimePoint now{};
  EXPECT_FALSE(rec->tick(now));
  freeBytes = 1 << 20;
  // Looked at once a second.
  EXPECT_FALSE(rec->tick(now + std::chrono::milliseconds(500)));
  EXPECT_EQ(rec->tick(now + std::chrono::seconds(1)), std::optional<std::string>("disk-full"));
}

TEST(RecordingNames, RoomNamesBecomeOneSafePathComponent) {
  using namespace std::string_view_literals;
  for (std::string_view room : {".."sv, "."sv, "a/../../etc"sv, "a b"sv, "a_b"sv, "\0x"sv}) {
    const std::string name = safeName(room);
    EXPECT_EQ(name.find('/'), std::string::npos) << name;
    EXPECT_EQ(name.find(".."), std::string::npos) << name;
    EXPECT_NE(name, ".");
    for (char ch : name) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_') << name;
  }
  EXPECT_NE(safeName("a b"), safeName("a_b")) << "names mapped alike still differ by their hash";
  EXPECT_LE(safeName(std::string(64, 'x')).size(), 40u + 9u);
}

}  // namespace
}  // namespace kaiwa::media
