// VP8 payload descriptors (RFC 7741) and keyframe headers (RFC 6386 section 9.1): every optional field, the
// keyframe bit only where it means something, and truncation at each field.
#include "rtp/payload.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace kaiwa::rtp {
namespace {

TEST(Vp8DescriptorTest, MinimalDescriptorOnAKeyframeStart) {
  const std::vector<uint8_t> p{0x10, 0x00, 0x00};  // S=1 PID=0, frame tag with P=0
  auto d = parseVp8(p);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->start);
  EXPECT_TRUE(d->frameStart());
  EXPECT_EQ(d->size, 1u);
  EXPECT_TRUE(d->keyframe);
  EXPECT_FALSE(d->pictureId);
}

TEST(Vp8DescriptorTest, EveryOptionalField) {
  // X; I (15-bit id 0x1234), L, T and K; then an inter frame's tag.
  const std::vector<uint8_t> p{0x90, 0xF0, 0x92, 0x34, 0x05, 0x40, 0x01};
  auto d = parseVp8(p);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->size, 6u);
  EXPECT_EQ(d->pictureId, 0x1234);
  EXPECT_FALSE(d->keyframe);
  const std::vector<uint8_t> seven{0x90, 0x80, 0x12, 0x00};  // a 7-bit picture id, keyframe tag
  d = parseVp8(seven);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->pictureId, 0x12);
  EXPECT_TRUE(d->keyframe);
}

TEST(Vp8DescriptorTest, TheKeyframeBitCountsOnlyAtTheStartOfPartitionZero) {
  EXPECT_FALSE(parseVp8(std::vector<uint8_t>{0x00, 0x00})->keyframe);  // a continuation packet
  EXPECT_FALSE(parseVp8(std::vector<uint8_t>{0x11, 0x00})->keyframe);  // the start of partition 1
}

TEST(Vp8DescriptorTest, TruncatedAtEachFieldIsRefused) {
  EXPECT_FALSE(parseVp8({}));
  EXPECT_FALSE(parseVp8(std::vector<uint8_t>{0x90}));
  EXPECT_FALSE(parseVp8(std::vector<uint8_t>{0x90, 0x80}));
  EXPECT_FALSE(parseVp8(std::vector<uint8_t>{0x90, 0x80, 0x92}));
  EXPECT_FALSE(parseVp8(std::vector<uint8_t>{0x90, 0xC0, 0x12}));
  EXPECT_FALSE(parseVp8(std::vector<uint8_t>{0x10}));  // a descriptor and no data
}

TEST(Vp8KeyframeSizeTest, ReadsTheSizeAndIgnoresTheScaleBits) {
  // Frame tag (keyframe), start code, width 640 with scale bits set, height 480.
  const std::vector<uint8_t> f{0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0xC2, 0xE0, 0x01};
  auto s = vp8KeyframeSize(f);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->width, 640);
  EXPECT_EQ(s->height, 480);
  auto inter = f;
  inter[0] |= 0x01;
  EXPECT_FALSE(vp8KeyframeSize(inter));
  auto badStart = f;
  badStart[4] = 0x02;
  EXPECT_FALSE(vp8KeyframeSize(badStart));
  EXPECT_FALSE(vp8KeyframeSize(std::span(f).first(9)));
}

}  // namespace
}  // namespace kaiwa::rtp
