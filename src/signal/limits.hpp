#pragma once
// The limits every front door enforces through the room core, all configurable (see docs/configuration.md).
#include <algorithm>
#include <chrono>
#include <cstddef>

#include "common/clock.hpp"
#include "common/limits.hpp"

namespace kaiwa::signal {

// The client ping interval hello advertises, unless configured (--heartbeat).
inline constexpr Millis kHeartbeat{10000};

struct Limits {
  std::size_t maxMessageBytes = 64 * 1024;  // one incoming message
  double messagesPerSecond = 50;            // per connection, token bucket
  double burst = 100;                       // bucket size
  std::size_t peersPerRoom = 50;
  std::size_t maxRooms = 10000;                          // on this server
  std::size_t maxQueuedBytes = common::kMaxQueuedBytes;  // outgoing bytes queued for one slow connection
  Millis resumeGrace{15000};                             // how long a dropped peer keeps its place
  std::size_t resumeQueueMessages = 256;                 // kept for a detached peer
  std::size_t resumeQueueBytes = 1024 * 1024;
};

// Token bucket: `rate` tokens per second, at most `burst` saved up. One message costs one token. The rate and the
// burst come with each call, so that objects there are many of (one per connection), all with the same settings,
// hold 16 bytes and not 32.
class TokenBucket {
 public:
  TokenBucket(double burst, TimePoint now) : tokens_(burst), last_(now) {}

  // True if the message may pass; false if it must be dropped.
  bool allow(TimePoint now, double rate, double burst) {
    if (rate <= 0) return true;  // unlimited
    double elapsed = std::chrono::duration<double>(now - last_).count();
    if (elapsed > 0) {
      tokens_ = std::min(burst, tokens_ + elapsed * rate);
      last_ = now;
    }
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  double tokens_;
  TimePoint last_;
};

// A TokenBucket with its settings.
class RateLimiter {
 public:
  RateLimiter(double rate, double burst, TimePoint now) : rate_(rate), burst_(burst), bucket_(burst, now) {}

  // True if the message may pass; false if it must be dropped.
  bool allow(TimePoint now) { return bucket_.allow(now, rate_, burst_); }

 private:
  double rate_;
  double burst_;
  TokenBucket bucket_;
};

}  // namespace kaiwa::signal
