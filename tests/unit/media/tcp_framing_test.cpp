// The RFC 4571 reader of ICE-TCP (media/tcp_framing.hpp) and the connection rules of media/tcp_port.hpp that need
// no socket: the write queue and the expiry rule, on a fake clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "media/tcp_framing.hpp"
#include "media/tcp_port.hpp"

using namespace kaiwa;
using namespace kaiwa::media;

namespace {

std::vector<uint8_t> framed(const std::vector<std::string>& payloads) {
  std::vector<uint8_t> out;
  for (const auto& p : payloads) {
    uint8_t h[kFrameHeader];
    writeFrameHeader(p.size(), h);
    out.insert(out.end(), h, h + kFrameHeader);
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

// Feeds `bytes` in pieces of `piece` bytes (copied into space() as a recv would) and collects the frames.
std::vector<std::string> read(FrameReader& r, const std::vector<uint8_t>& bytes, size_t piece, bool* tooLarge) {
  std::vector<std::string> frames;
  size_t at = 0;
  *tooLarge = false;
  while (at < bytes.size()) {
    auto space = r.space();
    if (space.empty()) {
      *tooLarge = true;
      break;
    }
    const size_t n = std::min({piece, space.size(), bytes.size() - at});
    std::memcpy(space.data(), bytes.data() + at, n);
    r.commit(n);
    at += n;
    for (;;) {
      auto next = r.next();
      if (next.status == FrameReader::Status::kFrame) {
        frames.emplace_back(next.frame.begin(), next.frame.end());
        continue;
      }
      if (next.status == FrameReader::Status::kTooLarge) *tooLarge = true;
      break;
    }
    if (*tooLarge) break;
  }
  return frames;
}

}  // namespace

TEST(FrameReader, WholeFramesInOneRead) {
  FrameReader r(2048);
  bool tooLarge = false;
  auto frames = read(r, framed({"stun", "dtls", std::string(1200, 'm')}), 1 << 20, &tooLarge);
  EXPECT_FALSE(tooLarge);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], "stun");
  EXPECT_EQ(frames[1], "dtls");
  EXPECT_EQ(frames[2], std::string(1200, 'm'));
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(FrameReader, FramesSplitAtEveryPoint) {
  const std::vector<std::string> payloads = {"a", std::string(300, 'b'), "", "cd", std::string(2048, 'e')};
  const auto bytes = framed(payloads);
  for (size_t piece = 1; piece <= 9; ++piece) {
    FrameReader r(2048, 2050);  // the smallest buffer: every frame of the maximum must still fit after compaction
    bool tooLarge = false;
    auto frames = read(r, bytes, piece, &tooLarge);
    EXPECT_FALSE(tooLarge) << piece;
    // The empty frame carries nothing and is skipped.
    EXPECT_EQ(frames, (std::vector<std::string>{"a", std::string(300, 'b'), "cd", std::string(2048, 'e')})) << piece;
  }
}

TEST(FrameReader, PartialFrameWaitsForTheRest) {
  FrameReader r(2048);
  auto bytes = framed({"hello"});
  auto space = r.space();
  std::memcpy(space.data(), bytes.data(), 4);
  r.commit(4);
  EXPECT_EQ(r.next().status, FrameReader::Status::kNeedMore);
  EXPECT_EQ(r.buffered(), 4u);
  space = r.space();
  std::memcpy(space.data(), bytes.data() + 4, bytes.size() - 4);
  r.commit(bytes.size() - 4);
  auto next = r.next();
  ASSERT_EQ(next.status, FrameReader::Status::kFrame);
  EXPECT_EQ(std::string(next.frame.begin(), next.frame.end()), "hello");
}

TEST(FrameReader, OversizedFrameFailsForGood) {
  FrameReader r(2048);
  bool tooLarge = false;
  std::vector<uint8_t> bytes = framed({"ok"});
  bytes.push_back(0x08);  // 2049 bytes announced
  bytes.push_back(0x01);
  bytes.insert(bytes.end(), 100, 0);
  auto frames = read(r, bytes, 1 << 20, &tooLarge);
  EXPECT_TRUE(tooLarge);
  EXPECT_EQ(frames, std::vector<std::string>{"ok"});
  EXPECT_TRUE(r.failed());
  EXPECT_TRUE(r.space().empty());
  EXPECT_EQ(r.next().status, FrameReader::Status::kTooLarge);
}

TEST(FrameReader, LargestFrameOfRfc4571IsAcceptedWhenAllowed) {
  FrameReader r(65535);
  bool tooLarge = false;
  auto frames = read(r, framed({std::string(65535, 'x')}), 4096, &tooLarge);
  EXPECT_FALSE(tooLarge);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].size(), 65535u);
}

TEST(FrameReader, ReleaseGivesTheBufferBackOnlyWhenEmpty) {
  FrameReader r(2048);
  auto bytes = framed({"abc"});
  auto space = r.space();
  std::memcpy(space.data(), bytes.data(), 3);
  r.commit(3);
  r.release();  // a partial frame is kept
  EXPECT_EQ(r.buffered(), 3u);
  space = r.space();
  std::memcpy(space.data(), bytes.data() + 3, bytes.size() - 3);
  r.commit(bytes.size() - 3);
  EXPECT_EQ(r.next().status, FrameReader::Status::kFrame);
  EXPECT_EQ(r.next().status, FrameReader::Status::kNeedMore);
  r.release();
  EXPECT_EQ(r.buffered(), 0u);
  EXPECT_FALSE(r.space().empty());
}

TEST(FrameQueue, KeepsWhatTheSocketDidNotTakeAndDropsWholeFramesPastTheBound) {
  FrameQueue q(10);
  const uint8_t header[2] = {0, 4};
  const uint8_t payload[4] = {1, 2, 3, 4};
  EXPECT_TRUE(q.push(header, payload, 6));  // all sent: nothing queued
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.push(header, payload, 1));  // one header byte sent
  EXPECT_EQ(q.size(), 5u);
  EXPECT_EQ(q.front()[0], 4);
  EXPECT_EQ(q.front()[1], 1);
  EXPECT_TRUE(q.push(header, payload, 3));  // header and one payload byte sent
  EXPECT_EQ(q.size(), 8u);
  EXPECT_FALSE(q.push(header, payload, 0));  // 6 more would pass 10: dropped whole
  EXPECT_EQ(q.size(), 8u);
  q.consume(5);
  EXPECT_EQ(q.front()[0], 2);
  EXPECT_TRUE(q.push(header, payload, 0));
  EXPECT_EQ(q.size(), 9u);
  q.consume(100);
  EXPECT_TRUE(q.empty());
}

TEST(TcpExpiry, FirstCheckDeadlineThenConsent) {
  TcpLimits limits;
  limits.firstCheck = std::chrono::seconds(10);
  limits.idle = std::chrono::seconds(30);
  const TimePoint t0{std::chrono::seconds(1000)};
  using std::chrono::seconds;
  EXPECT_EQ(tcpExpiry(t0, std::nullopt, t0 + seconds(9), limits), std::nullopt);
  EXPECT_EQ(tcpExpiry(t0, std::nullopt, t0 + seconds(10), limits), TcpClose::kNoCheck);
  // A valid check at 5 s: consent runs from it, for 30 s.
  EXPECT_EQ(tcpExpiry(t0, t0 + seconds(5), t0 + seconds(20), limits), std::nullopt);
  EXPECT_EQ(tcpExpiry(t0, t0 + seconds(5), t0 + seconds(34), limits), std::nullopt);
  EXPECT_EQ(tcpExpiry(t0, t0 + seconds(5), t0 + seconds(35), limits), TcpClose::kIdle);
}
