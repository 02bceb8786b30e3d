#include "common/metrics.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

namespace kaiwa::metrics {
namespace {

// The value of an unlabelled metric in the scrape's text.
uint64_t scraped(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return UINT64_MAX;
  return std::stoull(text.substr(at + name.size() + 2));
}

TEST(ThreadCounts, TwoWorkersCountingAtOnceAddUpExactly) {
  const uint64_t inBefore = total(Count::kMessagesIn);
  const uint64_t bytesBefore = total(Count::kBytesIn);
  constexpr uint64_t kPerThread = 100000;
  std::atomic<bool> done{false};
  // A scrape that reads while the workers count: every sum it sees is between the start and the end, never lower
  // than the one before it.
  std::thread scrape([&] {
    uint64_t last = inBefore;
    while (!done.load()) {
      uint64_t now = total(Count::kMessagesIn);
      EXPECT_GE(now, last);
      EXPECT_LE(now, inBefore + 2 * kPerThread);
      last = now;
    }
  });
  auto work = [] {
    for (uint64_t i = 0; i < kPerThread; ++i) {
      count(Count::kMessagesIn);
      count(Count::kBytesIn, 3);
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  done = true;
  scrape.join();
  EXPECT_EQ(total(Count::kMessagesIn), inBefore + 2 * kPerThread);
  EXPECT_EQ(total(Count::kBytesIn), bytesBefore + 2 * 3 * kPerThread);
}

TEST(ThreadCounts, WhatAThreadCountedStaysAfterItEnds) {
  const uint64_t before = total(Count::kMessagesOut);
  std::thread([] { count(Count::kMessagesOut, 5); }).join();
  EXPECT_EQ(total(Count::kMessagesOut), before + 5);
  // The next thread takes the freed slot over and adds to it.
  std::thread([] { count(Count::kMessagesOut, 7); }).join();
  EXPECT_EQ(total(Count::kMessagesOut), before + 12);
}

TEST(ThreadCounts, TheScrapeShowsTheSumUnderTheSameNames) {
  std::thread([] {
    count(Count::kMessagesIn, 2);
    count(Count::kMessagesOut, 3);
    count(Count::kBytesIn, 40);
    count(Count::kBytesOut, 50);
  }).join();
  count(Count::kBytesOut, 1);
  std::string text = renderPrometheus();
  EXPECT_EQ(scraped(text, "kaiwa_messages_in_total"), total(Count::kMessagesIn));
  EXPECT_EQ(scraped(text, "kaiwa_messages_out_total"), total(Count::kMessagesOut));
  EXPECT_EQ(scraped(text, "kaiwa_bytes_in_total"), total(Count::kBytesIn));
  EXPECT_EQ(scraped(text, "kaiwa_bytes_out_total"), total(Count::kBytesOut));
  EXPECT_NE(text.find("# TYPE kaiwa_bytes_out_total counter\n"), std::string::npos);
  EXPECT_GE(total(Count::kBytesOut), 51u);
}

}  // namespace
}  // namespace kaiwa::metrics
