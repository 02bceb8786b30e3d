#include "rtp/keyframe_throttle.hpp"

#include <algorithm>

namespace kaiwa::rtp {

void KeyframeRequestThrottle::send(TimePoint now) {
  lastSent_ = now;
  pendingAt_.reset();
  ++stats_.sent;
}

bool KeyframeRequestThrottle::ask(TimePoint now, Millis interval) {
  if (!lastSent_ || now >= *lastSent_ + interval) {
    send(now);
    return true;
  }
  // An urgent request shortens the wait of one already remembered; a plain one never lengthens it.
  const TimePoint due = *lastSent_ + interval;
  pendingAt_ = pendingAt_ ? std::min(*pendingAt_, due) : due;
  ++stats_.deferred;
  return false;
}

bool KeyframeRequestThrottle::request(TimePoint now) { return ask(now, interval_); }

bool KeyframeRequestThrottle::requestUrgent(TimePoint now) { return ask(now, urgentInterval_); }

bool KeyframeRequestThrottle::poll(TimePoint now) {
  if (!pendingAt_ || now < *pendingAt_) return false;
  send(now);
  return true;
}

std::optional<TimePoint> KeyframeRequestThrottle::pendingAt() const { return pendingAt_; }

}  // namespace kaiwa::rtp
