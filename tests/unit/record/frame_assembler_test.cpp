// RTP back into frames for a recording: VP8 frames from their packets (descriptors removed), reordering, a loss
// that a retransmission repairs in time, a loss given up on (audio skips it, video waits for a keyframe and asks for
// one), wrap-around of sequence numbers and timestamps, and the bound on what is held.
#include "record/frame_assembler.hpp"

#include <gtest/gtest.h>

#include "record/rtp_header.hpp"

namespace kaiwa::record {
namespace {

struct Built {
  std::vector<uint8_t> bytes;
  rtp::Packet packet() const { return *rtp::Packet::parse(bytes); }
};

Built rtpPacket(uint16_t seq, uint32_t ts, bool marker, std::vector<uint8_t> payload) {
  Built b;
  b.bytes = test::rtpHeader(seq, ts, marker);
  b.bytes.insert(b.bytes.end(), payload.begin(), payload.end());
  return b;
}

// A VP8 packet: the descriptor (X, I with a 15-bit picture id; S on the frame's first packet), then `data`. The
// first data byte of a frame's first packet is its frame tag: bit 0 clear on a keyframe.
Built vp8(uint16_t seq, uint32_t ts, bool first, bool last, bool key, uint8_t fill, size_t size = 20) {
  std::vector<uint8_t> p{static_cast<uint8_t>(0x80 | (first ? 0x10 : 0)), 0x80, 0x80 | 0x12, 0x34};
  std::vector<uint8_t> data(size, fill);
  if (first) data[0] = key ? 0x10 : 0x11;
  p.insert(p.end(), data.begin(), data.end());
  return rtpPacket(seq, ts, last, p);
}

struct Out {
  int64_t ts;
  bool key;
  std::vector<uint8_t> data;
};

class FrameAssemblerTest : public ::testing::Test {
 protected:
  FrameAssembler make(Codec codec) {
    return FrameAssembler(codec, [this](const Frame& f) {
      out.push_back({f.timestamp, f.keyframe, std::vector<uint8_t>(f.data.begin(), f.data.end())});
    });
  }
  // Pushes a frame of `n` packets starting at `seq`, in order.
  void frame(FrameAssembler& a, uint16_t seq, uint32_t ts, int n, bool key, uint8_t fill = 7) {
    for (int i = 0; i < n; ++i)
      a.push(vp8(static_cast<uint16_t>(seq + i), ts, i == 0, i == n - 1, key, fill).packet(), now);
  }
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  std::vector<Out> out;
};

TEST_F(FrameAssemblerTest, Vp8FramesComeOutWholeWithoutDescriptors) {
  auto a = make(Codec::kVp8);
  EXPECT_TRUE(a.keyframeWanted());
  frame(a, 100, 9000, 3, true, 0xAA);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].key);
  EXPECT_EQ(out[0].ts, 9000);
  ASSERT_EQ(out[0].data.size(), 60u);  // three packets of 20 data bytes, the 4-byte descriptors gone
  EXPECT_EQ(out[0].data[0], 0x10);     // the keyframe's frame tag
  EXPECT_EQ(out[0].data[1], 0xAA);
  EXPECT_FALSE(a.keyframeWanted());
  frame(a, 103, 12000, 2, false);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[1].key);
  EXPECT_EQ(out[1].data.size(), 40u);
  EXPECT_EQ(a.counters().frames, 2u);
}

TEST_F(FrameAssemblerTest, ReorderedPacketsMakeOneFrame) {
  auto a = make(Codec::kVp8);
  a.push(vp8(11, 100, false, false, false, 2).packet(), now);
  a.push(vp8(10, 100, true, false, true, 1).packet(), now);
  EXPECT_TRUE(out.empty());
  a.push(vp8(12, 100, false, true, false, 3).packet(), now);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data.size(), 60u);
  EXPECT_EQ(out[0].data[20], 2);  // in sequence order
  EXPECT_EQ(out[0].data[40], 3);
}

TEST_F(FrameAssemblerTest, ALateRetransmissionRepairsTheFrame) {
  auto a = make(Codec::kVp8);
  frame(a, 1, 0, 2, true);
  a.push(vp8(3, 3000, true, false, false, 5).packet(), now);
  a.push(vp8(5, 3000, false, true, false, 5).packet(), now);  // 4 is lost for now
  frame(a, 6, 6000, 1, false);
  EXPECT_EQ(out.size(), 1u) << "the later frame waits behind the incomplete one";
  now += std::chrono::milliseconds(200);
  a.tick(now);
  a.push(vp8(4, 3000, false, false, false, 5).packet(), now);  // the retransmission, in time
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].ts, 3000);
  EXPECT_EQ(out[1].data.size(), 60u);
  EXPECT_EQ(out[2].ts, 6000);
  EXPECT_EQ(a.counters().gaps, 0u);
  EXPECT_FALSE(a.keyframeWanted());
}

TEST_F(FrameAssemblerTest, AVideoGapGivenUpDropsFramesUntilAKeyframe) {
  auto a = make(Codec::kVp8);
  frame(a, 1, 0, 2, true);
  a.push(vp8(3, 3000, true, false, false, 5).packet(), now);  // 4 never comes
  a.push(vp8(5, 3000, false, true, false, 5).packet(), now);
  frame(a, 6, 6000, 2, false);
  now += FrameAssembler::kMaxWait;
  a.tick(now);
  EXPECT_EQ(out.size(), 1u) << "neither the broken frame nor the inter frame after it";
  EXPECT_TRUE(a.keyframeWanted());
  EXPECT_EQ(a.counters().gaps, 1u);
  frame(a, 8, 9000, 2, false);
  EXPECT_EQ(out.size(), 1u);
  frame(a, 10, 12000, 3, true);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].key);
  EXPECT_EQ(out[1].ts, 12000);
  EXPECT_FALSE(a.keyframeWanted());
  a.push(vp8(4, 3000, false, false, false, 5).packet(), now);  // far too late now
  EXPECT_EQ(a.counters().late, 1u);
  EXPECT_EQ(out.size(), 2u);
}

TEST_F(FrameAssemblerTest, AStreamJoinedMidwayStartsAtItsFirstKeyframe) {
  auto a = make(Codec::kVp8);
  a.push(vp8(50, 100, false, true, false, 1).packet(), now);  // the end of a frame whose start we never saw
  frame(a, 51, 200, 2, false);
  EXPECT_TRUE(out.empty());
  frame(a, 53, 300, 2, true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].ts, 300);
}

TEST_F(FrameAssemblerTest, AudioSkipsALostPacketAndKeepsGoing) {
  auto a = make(Codec::kOpus);
  EXPECT_FALSE(a.keyframeWanted());
  a.push(rtpPacket(1, 0, true, {1, 2, 3}).packet(), now);
  a.push(rtpPacket(3, 1920, true, {3}).packet(), now);  // 2 is lost
  a.push(rtpPacket(4, 2880, true, {4}).packet(), now);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, (std::vector<uint8_t>{1, 2, 3}));
  a.tick(now + std::chrono::milliseconds(100));
  EXPECT_EQ(out.size(), 1u) << "waited for less than kMaxWait";
  a.tick(now + FrameAssembler::kMaxWait);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].ts, 1920);
  EXPECT_EQ(out[2].ts, 2880);
  a.push(rtpPacket(4, 2880, true, {4}).packet(), now);  // a duplicate
  EXPECT_EQ(a.counters().late, 1u);
  a.push(rtpPacket(5, 3840, true, {}).packet(), now);  // no TOC byte: not an Opus packet
  EXPECT_EQ(a.counters().malformed, 1u);
  EXPECT_EQ(out.size(), 3u);
  EXPECT_FALSE(a.keyframeWanted());
}

TEST_F(FrameAssemblerTest, SequenceNumbersAndTimestampsWrapAround) {
  auto a = make(Codec::kOpus);
  a.push(rtpPacket(65534, 0xFFFFFC40, true, {1}).packet(), now);
  a.push(rtpPacket(65535, 0xFFFFFFFF - 0x3BF + 0x3C0, true, {2}).packet(), now);
  a.push(rtpPacket(0, 0x000003C0 - 0x40, true, {3}).packet(), now);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_LT(out[0].ts, out[1].ts);
  EXPECT_LT(out[1].ts, out[2].ts);
  EXPECT_EQ(out[2].ts - out[0].ts, 0x3C0 - 0x40 + 0x3C0);
}

TEST_F(FrameAssemblerTest, WhatIsHeldIsBounded) {
  auto a = make(Codec::kOpus);
  a.push(rtpPacket(1, 0, true, {1}).packet(), now);
  // 2 never comes; without a tick, the held packets alone force the gap to be given up.
  for (uint16_t s = 3; s < 3 + FrameAssembler::kMaxPending + 10; ++s)
    a.push(rtpPacket(s, s * 960u, true, {2}).packet(), now);
  EXPECT_EQ(a.counters().gaps, 1u);
  EXPECT_EQ(out.size(), FrameAssembler::kMaxPending + 11);
}

TEST_F(FrameAssemblerTest, MalformedVp8IsCountedAndDropped) {
  auto a = make(Codec::kVp8);
  a.push(rtpPacket(1, 0, true, {0x80}).packet(), now);        // X set, no extension byte
  a.push(rtpPacket(2, 0, true, {0x90, 0x80}).packet(), now);  // I set, no picture id
  a.push(rtpPacket(3, 0, true, {0x10}).packet(), now);        // no VP8 data after the descriptor
  EXPECT_EQ(a.counters().malformed, 3u);
  EXPECT_TRUE(out.empty());
  frame(a, 4, 100, 1, true);
  EXPECT_EQ(out.size(), 1u);
}

TEST_F(FrameAssemblerTest, FlushHandsOutWhatIsCompleteAndSkipsTheRest) {
  auto a = make(Codec::kVp8);
  frame(a, 1, 0, 1, true);
  a.push(vp8(2, 3000, true, false, false, 1).packet(), now);  // its end never comes
  frame(a, 4, 6000, 1, true);
  a.flush();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].ts, 6000);
}

}  // namespace
}  // namespace kaiwa::record
