#pragma once
// Keyframe requests (PLI, FIR) towards one published stream, at most one per interval (500 ms, issue 14): every
// subscriber that joins or loses packets asks, and a publisher that answers each request with a keyframe floods the
// room with the biggest frames there are. A request inside the interval is remembered and sent when the interval
// ends, so the last subscriber to ask still gets its keyframe. Sans-I/O: the caller passes `now` and runs a timer
// for pendingAt().
#include <cstdint>
#include <optional>

#include "common/clock.hpp"

namespace kaiwa::rtp {

class KeyframeRequestThrottle {
 public:
  struct Stats {
    uint64_t sent = 0;      // requests that went to the publisher
    uint64_t deferred = 0;  // requests that arrived inside the interval (each window sends at most one of them)
  };

  explicit KeyframeRequestThrottle(Millis interval = Millis(500), Millis urgentInterval = Millis(100))
      : interval_(interval), urgentInterval_(urgentInterval) {}

  // A request for a keyframe. True: send one to the publisher now. False: it is remembered for pendingAt().
  bool request(TimePoint now);
  // The same for a new subscriber: held back only while the last request sent is less than urgentInterval old.
  bool requestUrgent(TimePoint now);
  // On the caller's timer: true when a remembered request is due; it then counts as sent.
  bool poll(TimePoint now);
  // When poll() will have a request to send; nullopt when none is remembered.
  std::optional<TimePoint> pendingAt() const;

  const Stats& stats() const { return stats_; }

 private:
  bool ask(TimePoint now, Millis interval);
  void send(TimePoint now);

  Millis interval_;
  Millis urgentInterval_;
  std::optional<TimePoint> lastSent_;
  std::optional<TimePoint> pendingAt_;  // the earliest time a remembered request may go
  Stats stats_;
};

}  // namespace kaiwa::rtp
