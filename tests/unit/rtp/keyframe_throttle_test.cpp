// Keyframe request throttling on a fake clock: one request per 500 ms, the last one inside a window is not lost.
#include "rtp/keyframe_throttle.hpp"

#include <gtest/gtest.h>

namespace kaiwa::rtp {
namespace {

using namespace std::chrono_literals;

TEST(KeyframeRequestThrottle, OnePerIntervalAndTheLastIsKept) {
  KeyframeRequestThrottle t;
  TimePoint now{std::chrono::seconds(50)};
  EXPECT_FALSE(t.pendingAt());
  EXPECT_TRUE(t.request(now));  // the first goes at once
  EXPECT_FALSE(t.poll(now));
  EXPECT_FALSE(t.request(now + 100ms));  // subscribers 2, 3 and 4 ask inside the window
  EXPECT_FALSE(t.request(now + 200ms));
  EXPECT_FALSE(t.request(now + 499ms));
  ASSERT_TRUE(t.pendingAt());
  EXPECT_EQ(*t.pendingAt(), now + 500ms);
  EXPECT_FALSE(t.poll(now + 499ms));
  EXPECT_TRUE(t.poll(now + 500ms));  // one request for all three
  EXPECT_FALSE(t.poll(now + 500ms));
  EXPECT_FALSE(t.pendingAt());
  EXPECT_EQ(t.stats().sent, 2u);
  EXPECT_EQ(t.stats().deferred, 3u);
  // The window now runs from the deferred send.
  EXPECT_FALSE(t.request(now + 900ms));
  EXPECT_EQ(*t.pendingAt(), now + 1000ms);
  EXPECT_TRUE(t.poll(now + 1200ms));  // a late timer still sends it
}

TEST(KeyframeRequestThrottle, QuietStreamSendsAtOnce) {
  KeyframeRequestThrottle t;
  TimePoint now{std::chrono::seconds(50)};
  EXPECT_TRUE(t.request(now));
  EXPECT_TRUE(t.request(now + 500ms));
  EXPECT_TRUE(t.request(now + 5s));
  EXPECT_EQ(t.stats().deferred, 0u);
}

TEST(KeyframeRequestThrottle, RequestAfterTheWindowTakesThePendingOneAlong) {
  KeyframeRequestThrottle t(200ms);
  TimePoint now{std::chrono::seconds(50)};
  EXPECT_TRUE(t.request(now));
  EXPECT_FALSE(t.request(now + 50ms));
  EXPECT_TRUE(t.request(now + 250ms));  // the timer has not fired yet: this send covers the remembered one
  EXPECT_FALSE(t.pendingAt());
  EXPECT_FALSE(t.poll(now + 300ms));
  EXPECT_EQ(t.stats().sent, 2u);
}

// A new subscriber does not wait out the 500 ms window: 100 ms after the last request at most.
TEST(KeyframeRequestThrottle, UrgentRequestWaitsOnlyTheShortInterval) {
  KeyframeRequestThrottle t;
  TimePoint now{std::chrono::seconds(50)};
  EXPECT_TRUE(t.request(now));                 // a subscriber's PLI
  EXPECT_TRUE(t.requestUrgent(now + 120ms));   // a new subscriber 120 ms later: at once
  EXPECT_FALSE(t.requestUrgent(now + 150ms));  // another 30 ms after that: held until 100 ms after the last
  ASSERT_TRUE(t.pendingAt());
  EXPECT_EQ(*t.pendingAt(), now + 220ms);
  EXPECT_FALSE(t.poll(now + 219ms));
  EXPECT_TRUE(t.poll(now + 220ms));
  EXPECT_EQ(t.stats().sent, 3u);
  // A plain request after it still waits the whole window, and an urgent one shortens that wait, never lengthens it.
  EXPECT_FALSE(t.request(now + 250ms));
  EXPECT_EQ(*t.pendingAt(), now + 720ms);
  EXPECT_FALSE(t.requestUrgent(now + 260ms));
  EXPECT_EQ(*t.pendingAt(), now + 320ms);
  EXPECT_FALSE(t.request(now + 270ms));
  EXPECT_EQ(*t.pendingAt(), now + 320ms);
  EXPECT_TRUE(t.poll(now + 330ms));
  EXPECT_FALSE(t.pendingAt());
  EXPECT_EQ(t.stats().sent, 4u);
}

}  // namespace
}  // namespace kaiwa::rtp
