// The VP8 descriptor's layer fields: read from hand-laid descriptors (RFC 7741 section 4.2) and rewritten in place.
#include "rtp/vp8_layers.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace kaiwa::rtp {
namespace {

TEST(Vp8Layers, AllFields) {
  // X S, then I L T K; a 15-bit picture id 0x1234; TL0PICIDX 9; TID 2, Y set, KEYIDX 0; then VP8 data.
  std::vector<uint8_t> p{0x90, 0xF0, 0x92, 0x34, 0x09, 0xA0, 0x00};
  auto l = parseVp8Layers(p);
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->frameStart);
  EXPECT_EQ(l->pictureId, 0x1234);
  EXPECT_TRUE(l->longPictureId);
  EXPECT_EQ(l->tl0PicIdx, 9);
  EXPECT_EQ(l->temporalId, 2);
  EXPECT_TRUE(l->layerSync);
  ASSERT_TRUE(writeVp8PictureId(p, *l, 0x7FFF));
  ASSERT_TRUE(writeVp8Tl0PicIdx(p, *l, 200));
  auto again = parseVp8Layers(p);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->pictureId, 0x7FFF);
  EXPECT_EQ(again->tl0PicIdx, 200);
  EXPECT_EQ(again->temporalId, 2);
}

TEST(Vp8Layers, ShortPictureIdAndNoExtension) {
  std::vector<uint8_t> p{0x80, 0x80, 0x05, 0x00};  // X, I: a 7-bit picture id 5; not a frame start
  auto l = parseVp8Layers(p);
  ASSERT_TRUE(l);
  EXPECT_FALSE(l->frameStart);
  EXPECT_EQ(l->pictureId, 5);
  EXPECT_FALSE(l->tl0PicIdx);
  ASSERT_TRUE(writeVp8PictureId(p, *l, 130));  // written modulo 128
  EXPECT_EQ(p[2], 2);
  EXPECT_FALSE(writeVp8Tl0PicIdx(p, *l, 1));
  std::vector<uint8_t> bare{0x10, 0x00};
  l = parseVp8Layers(bare);
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->frameStart);
  EXPECT_FALSE(l->pictureId);
  EXPECT_EQ(l->temporalId, 0);
}

TEST(Vp8Layers, TruncatedIsRefused) {
  for (auto p :
       std::vector<std::vector<uint8_t>>{{0x80}, {0x80, 0x80}, {0x80, 0x80, 0x80}, {0x80, 0x40}, {0x80, 0x20}}) {
    EXPECT_FALSE(parseVp8Layers(p));
  }
  EXPECT_FALSE(parseVp8Layers({}));
}

}  // namespace
}  // namespace kaiwa::rtp
