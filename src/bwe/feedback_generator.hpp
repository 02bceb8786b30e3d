#pragma once
// transport-cc feedback kaiwa sends to a publisher (issue 15: the publisher's own bandwidth estimate runs on it, as
// Chromium's does against any SFU that negotiated transport-cc): the arrival time of every packet carrying the
// transport-wide sequence number is recorded, and every interval the packets since the last message are reported.
// Sans-I/O and bounded: the caller passes arrival times and `now`, and sends what poll() writes.
#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "common/clock.hpp"

namespace kaiwa::bwe {

class FeedbackGenerator {
 public:
  // Packets between two messages, at most: 1024 is 100 ms at 100 Mbit/s of 1200-byte packets. A packet further
  // ahead than that moves the window and the oldest unreported packets go unreported (counted).
  static constexpr size_t kWindow = 1024;

  struct Stats {
    uint64_t recorded = 0;
    uint64_t late = 0;  // arrived after its number was reported (as lost): not reported again
    uint64_t duplicates = 0;
    uint64_t skipped = 0;  // numbers pushed out of the window unreported
    uint64_t messages = 0;
  };

  // Chromium sends feedback every 50–100 ms; kaiwa's default is 100 ms, a message of every packet in it.
  explicit FeedbackGenerator(uint32_t senderSsrc, Millis interval = Millis(100))
      : senderSsrc_(senderSsrc), interval_(interval) {}

  void onPacket(uint32_t mediaSsrc, uint16_t transportSequence, TimePoint arrival);
  // When poll() will have a message (nullopt: nothing to report).
  std::optional<TimePoint> nextDeadline() const;
  // Writes the next due message into `out` and returns its length; nullopt when none is due (or `out` is too small:
  // 1212 bytes always suffice). Call until nullopt: a long interval may need more than one message.
  std::optional<size_t> poll(TimePoint now, std::span<uint8_t> out);

  const Stats& stats() const { return stats_; }

 private:
  struct Slot {
    int64_t arrivalMicros = 0;
    bool received = false;
  };

  uint32_t senderSsrc_;
  Millis interval_;
  std::array<Slot, kWindow> slots_{};
  bool started_ = false;
  int64_t highest_ = 0;   // extended sequence number of the newest packet
  int64_t nextBase_ = 0;  // the first number not reported yet
  uint32_t mediaSsrc_ = 0;
  uint8_t feedbackCount_ = 0;
  std::optional<TimePoint> lastMessage_;
  std::optional<TimePoint> firstPending_;
  Stats stats_;
};

}  // namespace kaiwa::bwe
