// net::Loop: readiness dispatch by generation-checked ids, the continuation of a full batch, failures, and the timer
// queue. Runs a real io_context on the test's thread over eventfds.
#include "net/loop.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace kaiwa::net {
namespace {

struct EventFd {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~EventFd() {
    if (fd >= 0) ::close(fd);
  }
  void signal() const {
    uint64_t one = 1;
    ASSERT_EQ(::write(fd, &one, sizeof one), 8);
  }
  void drain() const {
    uint64_t v;
    (void)!::read(fd, &v, sizeof v);
  }
};

struct Probe final : Loop::Watcher {
  std::function<void(uint32_t)> fn;
  int calls = 0, failures = 0;
  void onReady(uint32_t events) override {
    ++calls;
    if (fn) fn(events);
  }
  void onFailure() noexcept override { ++failures; }
};

class LoopTest : public ::testing::Test {
 protected:
  LoopTest() : loop(context, 0) { Loop::setCurrent(&loop); }
  ~LoopTest() override { Loop::setCurrent(nullptr); }
  // Runs the io_context until `done` or until nothing is left to do within a bounded number of rounds.
  void runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 2000 && !done(); ++i) {
      context.run_for(std::chrono::milliseconds(5));
      context.restart();
    }
  }
  boost::asio::io_context context;
  Loop loop;
};

// A loop no thread has claimed belongs to the thread that made it (a test driving an unstarted pool); once a thread
// claims it (WorkerPool's), only that one.
TEST(LoopOwner, UnclaimedLoopBelongsToItsConstructingThreadUntilClaimed) {
  boost::asio::io_context context;
  Loop loop(context, 0);
  EXPECT_TRUE(loop.onThread());
  bool elsewhere = true;
  std::thread([&] { elsewhere = loop.onThread(); }).join();
  EXPECT_FALSE(elsewhere);
  bool claimer = false;
  std::thread([&] {
    Loop::setCurrent(&loop);
    claimer = loop.onThread();
    Loop::setCurrent(nullptr);
  }).join();
  EXPECT_TRUE(claimer);
  EXPECT_FALSE(loop.onThread());
}

TEST_F(LoopTest, ReportsReadinessToTheWatcherUntilUnwatched) {
  EventFd e;
  Probe p;
  p.fn = [&](uint32_t events) {
    EXPECT_TRUE(events & EPOLLIN);
    e.drain();
  };
  Loop::WatchId id = loop.watch(e.fd, Loop::kReadable, p);
  ASSERT_NE(id, 0u);
  EXPECT_TRUE(loop.onThread());
  e.signal();
  runUntil([&] { return p.calls == 1; });
  EXPECT_EQ(p.calls, 1);
  loop.unwatch(id, e.fd);
  EXPECT_EQ(loop.watching(), 0u);
  e.signal();
  context.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(p.calls, 1);
}

TEST_F(LoopTest, IdsAreNotReusedAcrossRegistrations) {
  EventFd a;
  Probe p;
  Loop::WatchId first = loop.watch(a.fd, Loop::kReadable, p);
  loop.unwatch(first, a.fd);
  Loop::WatchId second = loop.watch(a.fd, Loop::kReadable, p);
  EXPECT_NE(first, second);
  EXPECT_EQ(static_cast<uint32_t>(first), static_cast<uint32_t>(second));  // the same slot, a new generation
  EXPECT_FALSE(loop.rewatch(first, a.fd, Loop::kReadable | Loop::kWritable));
  EXPECT_TRUE(loop.rewatch(second, a.fd, Loop::kReadable));
  loop.unwatch(first, a.fd);  // a stale id changes nothing
  EXPECT_EQ(loop.watching(), 1u);
}

TEST_F(LoopTest, AWatcherUnwatchedInTheSameBatchIsNotCalled) {
  EventFd a, b;
  Probe pa, pb;
  Loop::WatchId ida = 0, idb = 0;
  // Whichever runs first takes the other out: only one of them is called.
  pa.fn = [&](uint32_t) {
    a.drain();
    loop.unwatch(idb, b.fd);
  };
  pb.fn = [&](uint32_t) {
    b.drain();
    loop.unwatch(ida, a.fd);
  };
  ida = loop.watch(a.fd, Loop::kReadable, pa);
  idb = loop.watch(b.fd, Loop::kReadable, pb);
  a.signal();
  b.signal();
  runUntil([&] { return pa.calls + pb.calls >= 1; });
  context.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(pa.calls + pb.calls, 1);
}

TEST_F(LoopTest, MoreReadyThanABatchAreAllServedThroughAContinuation) {
  constexpr int kCount = Loop::kBatch * 2 + 17;
  std::vector<EventFd> fds(kCount);
  std::vector<Probe> probes(kCount);
  int served = 0;
  for (int i = 0; i < kCount; ++i) {
    probes[i].fn = [&, i](uint32_t) {
      fds[i].drain();
      ++served;
    };
    ASSERT_NE(loop.watch(fds[i].fd, Loop::kReadable, probes[i]), 0u);
    fds[i].signal();
  }
  runUntil([&] { return served == kCount; });
  EXPECT_EQ(served, kCount);
  EXPECT_GE(loop.stats().continuations, 2u);
  for (const auto& p : probes) EXPECT_EQ(p.calls, 1);
}

TEST_F(LoopTest, AWatcherThatThrowsLosesItsRegistrationAndOthersGoOn) {
  Loop::setAbortOnFailure(false);
  EventFd a, b;
  Probe bad, good;
  bad.fn = [](uint32_t) { throw std::runtime_error("boom"); };
  good.fn = [&](uint32_t) { b.drain(); };
  Loop::WatchId id = loop.watch(a.fd, Loop::kReadable, bad);  // level-triggered: would be reported again and again
  loop.watch(b.fd, Loop::kReadable, good);
  a.signal();
  b.signal();
  runUntil([&] { return bad.failures == 1 && good.calls == 1; });
  context.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(bad.calls, 1);
  EXPECT_EQ(bad.failures, 1);
  EXPECT_EQ(good.calls, 1);
  EXPECT_EQ(loop.stats().failures, 1u);
  EXPECT_FALSE(loop.rewatch(id, a.fd, Loop::kReadable));
  Loop::setAbortOnFailure(true);
}

TEST_F(LoopTest, TimersRunInOrderAndOneShotsOnce) {
  std::vector<int> order;
  auto now = Clock::now();
  loop.at(now + std::chrono::milliseconds(30), [&](TimePoint) { order.push_back(3); });
  loop.at(now + std::chrono::milliseconds(10), [&](TimePoint) { order.push_back(1); });
  loop.at(now + std::chrono::milliseconds(20), [&](TimePoint) { order.push_back(2); });
  EXPECT_EQ(loop.timers(), 3u);
  runUntil([&] { return order.size() == 3; });
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(loop.timers(), 0u);
}

TEST_F(LoopTest, PeriodicTimersRepeatUntilCancelledFromInside) {
  int runs = 0;
  Loop::TimerId id = 0;
  id = loop.every(Millis(2), [&](TimePoint) {
    if (++runs == 5) loop.cancel(id);
  });
  runUntil([&] { return runs >= 5; });
  context.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(runs, 5);
  EXPECT_EQ(loop.timers(), 0u);
}

TEST_F(LoopTest, RescheduleMovesATimerAndCancelStopsIt) {
  std::vector<int> order;
  auto now = Clock::now();
  Loop::TimerId late = loop.at(now + std::chrono::hours(1), [&](TimePoint) { order.push_back(1); });
  Loop::TimerId gone = loop.at(now + std::chrono::milliseconds(5), [&](TimePoint) { order.push_back(9); });
  loop.at(now + std::chrono::milliseconds(15), [&](TimePoint) { order.push_back(2); });
  EXPECT_TRUE(loop.reschedule(late, now + std::chrono::milliseconds(10)));
  loop.cancel(gone);
  EXPECT_FALSE(loop.reschedule(gone, now));
  runUntil([&] { return order.size() == 2; });
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST_F(LoopTest, ManyReschedulesDoNotGrowTheQueueWithoutBound) {
  int runs = 0;
  Loop::TimerId id = loop.at(Clock::now() + std::chrono::hours(1), [&](TimePoint) { ++runs; });
  for (int i = 0; i < 10000; ++i) loop.reschedule(id, Clock::now() + std::chrono::hours(1) + Millis(i));
  EXPECT_LT(loop.queuedEntries(), 200u);
  loop.reschedule(id, Clock::now());
  runUntil([&] { return runs == 1; });
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(loop.timers(), 0u);
}

}  // namespace
}  // namespace kaiwa::net
