// The retransmission buffer: store and find, the window and its bounds, answering NACKs, and the wrap at 65535.
#include "rtp/retransmission_buffer.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace kaiwa::rtp {
namespace {

using R = RetransmissionBuffer::StoreResult;

std::vector<uint8_t> packet(uint16_t seq, size_t size = 100) {
  std::vector<uint8_t> p(size, uint8_t(seq * 7));
  if (size >= 4) {
    p[2] = uint8_t(seq >> 8);
    p[3] = uint8_t(seq);
  }
  return p;
}

bool holds(const RetransmissionBuffer& b, uint16_t seq, size_t size = 100) {
  auto p = b.find(seq);
  if (!p) return false;
  auto want = packet(seq, size);
  return std::equal(p->begin(), p->end(), want.begin(), want.end());
}

TEST(RetransmissionBuffer, DefaultSize) {
  RetransmissionBuffer b;
  EXPECT_EQ(b.capacity(), 512u);
  // The byte bound wins over the count.
  RetransmissionBuffer small(RetransmissionConfig{512, 10 * RetransmissionBuffer::kSlotSize});
  EXPECT_EQ(small.capacity(), 10u);
  RetransmissionBuffer tiny(RetransmissionConfig{0, 0});
  EXPECT_EQ(tiny.capacity(), 1u);
}

TEST(RetransmissionBuffer, StoresAndFindsAcrossTheWrap) {
  RetransmissionBuffer b(RetransmissionConfig{16, 1 << 20});
  for (uint16_t s = 65530; s != 6; ++s) ASSERT_EQ(b.store(s, packet(s)), R::kStored);
  for (uint16_t s = 65530; s != 6; ++s) EXPECT_TRUE(holds(b, s)) << s;
  EXPECT_FALSE(b.find(65529));  // never stored
  EXPECT_FALSE(b.find(6));      // not yet
}

TEST(RetransmissionBuffer, OldPacketsLeaveTheWindow) {
  RetransmissionBuffer b(RetransmissionConfig{8, 1 << 20});
  for (uint16_t s = 100; s < 120; ++s) b.store(s, packet(s));
  for (uint16_t s = 100; s < 112; ++s) EXPECT_FALSE(b.find(s)) << s;
  for (uint16_t s = 112; s < 120; ++s) EXPECT_TRUE(holds(b, s)) << s;
  EXPECT_EQ(b.store(111, packet(111)), R::kTooOld);
  EXPECT_TRUE(holds(b, 112));
}

TEST(RetransmissionBuffer, LateStoreInsideTheWindow) {
  RetransmissionBuffer b(RetransmissionConfig{8, 1 << 20});
  b.store(10, packet(10));
  b.store(13, packet(13));
  EXPECT_FALSE(b.find(11));
  EXPECT_EQ(b.store(11, packet(11)), R::kStored);
  EXPECT_TRUE(holds(b, 11));
  EXPECT_TRUE(holds(b, 13));
  EXPECT_FALSE(b.find(12));
}

TEST(RetransmissionBuffer, AJumpForgetsWhatItSkipped) {
  RetransmissionBuffer b(RetransmissionConfig{8, 1 << 20});
  for (uint16_t s = 0; s < 8; ++s) b.store(s, packet(s));
  b.store(1000, packet(1000));
  for (uint16_t s = 0; s < 8; ++s) EXPECT_FALSE(b.find(s)) << s;
  EXPECT_TRUE(holds(b, 1000));
  // Slot reuse: 1008 lands where 1000 was.
  b.store(1008, packet(1008));
  EXPECT_FALSE(b.find(1000));
}

TEST(RetransmissionBuffer, PacketSizes) {
  RetransmissionBuffer b;
  EXPECT_EQ(b.store(1, packet(1, RetransmissionBuffer::kSlotSize)), R::kStored);
  EXPECT_TRUE(holds(b, 1, RetransmissionBuffer::kSlotSize));
  EXPECT_EQ(b.store(2, packet(2, RetransmissionBuffer::kSlotSize + 1)), R::kTooLarge);
  EXPECT_FALSE(b.find(2));
  EXPECT_EQ(b.store(3, packet(3, 12)), R::kStored);
  EXPECT_EQ(b.find(3)->size(), 12u);
  EXPECT_EQ(b.stats().tooLarge, 1u);
}

TEST(RetransmissionBuffer, AnswersANackAndCountsMisses) {
  RetransmissionBuffer b(RetransmissionConfig{64, 1 << 20});
  for (uint16_t s = 65500; s != 20; ++s) {
    if (s % 10 != 0) b.store(s, packet(s));  // some never sent through here
  }
  const uint16_t asked[] = {65535, 0, 1, 10, 19, 65000};
  std::vector<uint16_t> sent;
  size_t found = b.answer(asked, [&](uint16_t seq, std::span<const uint8_t> p) {
    EXPECT_EQ(p[3], uint8_t(seq));
    sent.push_back(seq);
  });
  EXPECT_EQ(found, 3u);
  EXPECT_EQ(sent, (std::vector<uint16_t>{65535, 1, 19}));
  EXPECT_EQ(b.stats().hits, 3u);
  EXPECT_EQ(b.stats().misses, 3u);  // 0 and 10 were never stored; 65000 is out of the window
}

TEST(RetransmissionBuffer, EmptyFindsNothing) {
  RetransmissionBuffer b;
  EXPECT_FALSE(b.find(0));
  EXPECT_FALSE(b.find(65535));
}

}  // namespace
}  // namespace kaiwa::rtp
