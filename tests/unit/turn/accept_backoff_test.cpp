// A TURN listener whose accept() fails (out of file descriptors) pauses, 100 ms doubling to 1 s, and logs at most once
// per 10 s with the count of failures it did not log.
#include "net/accept_backoff.hpp"

#include <gtest/gtest.h>

namespace kaiwa::net {
namespace {

using namespace std::chrono_literals;

TEST(AcceptBackoff, PausesDoubleUpToOneSecondAndResetOnSuccess) {
  AcceptBackoff b;
  TimePoint t{1000s};
  std::vector<Clock::duration> pauses;
  for (int i = 0; i < 7; ++i) pauses.push_back(b.failed(t).pause);
  EXPECT_EQ(pauses, (std::vector<Clock::duration>{100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s}));
  b.succeeded();
  EXPECT_EQ(b.failed(t).pause, 100ms);
  EXPECT_EQ(b.failed(t).pause, 200ms);
}

TEST(AcceptBackoff, LogsOncePerTenSecondsWithTheSuppressedCount) {
  AcceptBackoff b;
  TimePoint t{1000s};
  auto first = b.failed(t);
  EXPECT_TRUE(first.log);
  EXPECT_EQ(first.suppressed, 0u);
  for (int i = 1; i < 10; ++i) EXPECT_FALSE(b.failed(t + i * 1s).log) << i;  // 9 failures within 10 s
  b.succeeded();                                                             // a success does not reset the log
  EXPECT_FALSE(b.failed(t + 9900ms).log);
  auto later = b.failed(t + 10s);
  EXPECT_TRUE(later.log);
  EXPECT_EQ(later.suppressed, 10u);
  EXPECT_FALSE(b.failed(t + 15s).log);
  auto third = b.failed(t + 20s);
  EXPECT_TRUE(third.log);
  EXPECT_EQ(third.suppressed, 1u);
}

TEST(AcceptBackoff, OtherPausesForOtherListeners) {
  AcceptBackoff b(50ms, 1s);  // HTTP's listener starts at 50 ms
  TimePoint t{1000s};
  EXPECT_EQ(b.failed(t).pause, 50ms);
  EXPECT_EQ(b.failed(t).pause, 100ms);
  b.succeeded();
  EXPECT_EQ(b.failed(t).pause, 50ms);
}

}  // namespace
}  // namespace kaiwa::net
