#include <gtest/gtest.h>

#include "signal/limits.hpp"

namespace kaiwa::signal {
namespace {

using namespace std::chrono_literals;

TEST(RateLimiter, AllowsTheBurstThenTheRate) {
  TimePoint t{};
  RateLimiter r(10, 5, t);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.allow(t)) << i;
  EXPECT_FALSE(r.allow(t));
  EXPECT_FALSE(r.allow(t + 50ms));  // half a token
  EXPECT_TRUE(r.allow(t + 100ms));  // one token back
  EXPECT_FALSE(r.allow(t + 100ms));
}

TEST(RateLimiter, RefillIsCappedAtTheBurst) {
  TimePoint t{};
  RateLimiter r(10, 3, t);
  for (int i = 0; i < 3; ++i) r.allow(t);
  t += 1h;
  int passed = 0;
  for (int i = 0; i < 10; ++i) passed += r.allow(t);
  EXPECT_EQ(passed, 3);
}

TEST(RateLimiter, ZeroRateMeansUnlimited) {
  TimePoint t{};
  RateLimiter r(0, 1, t);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(r.allow(t));
}

TEST(RateLimiter, SustainedRateMatchesTheConfiguredRate) {
  TimePoint t{};
  RateLimiter r(50, 100, t);
  int passed = 0;
  for (int ms = 0; ms < 10'000; ++ms) {  // 10 s of 1000 attempts/s
    passed += r.allow(t + std::chrono::milliseconds(ms));
  }
  EXPECT_NEAR(passed, 100 + 50 * 10, 2);
}

}  // namespace
}  // namespace kaiwa::signal
