// A worker's objects by generation-checked id: an id whose object is gone finds nothing, even once its slot holds
// another object.
#include "turn/slots.hpp"

#include <gtest/gtest.h>

namespace kaiwa::turn {
namespace {

TEST(Slots, StaleIdsFindNothing) {
  Slots<int> s;
  auto a = s.insert(std::make_unique<int>(1));
  auto b = s.insert(std::make_unique<int>(2));
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(*s.get(a), 1);
  EXPECT_EQ(s.size(), 2u);
  auto gone = s.erase(a);
  ASSERT_TRUE(gone);
  EXPECT_EQ(*gone, 1);
  EXPECT_EQ(s.get(a), nullptr);
  EXPECT_EQ(s.erase(a), nullptr);               // twice: nothing
  auto c = s.insert(std::make_unique<int>(3));  // reuses a's slot
  EXPECT_EQ(uint32_t(c), uint32_t(a));
  EXPECT_NE(c, a);
  EXPECT_EQ(s.get(a), nullptr);
  EXPECT_EQ(*s.get(c), 3);
  EXPECT_EQ(s.get(0), nullptr);
  EXPECT_EQ(s.get(~0ull), nullptr);
  int sum = 0;
  s.forEach([&](uint64_t, int& v) { sum += v; });
  EXPECT_EQ(sum, 5);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(c >> 63, 0u);  // the top bit is the caller's
}

}  // namespace
}  // namespace kaiwa::turn
