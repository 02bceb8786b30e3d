#include "rtp/keyframe_throttle.hpp"

namespace kaiwa::rtp {

void KeyframeRequestThrottle::send(TimePoint now) {
  lastSent_ = now;
  pending_ = false;
  ++stats_.sent;
}

bool KeyframeRequestThrottle::request(TimePoint now) {
  if (open(now)) {
    send(now);
    return true;
  }
  pending_ = true;
  ++stats_.deferred;
  return false;
}

bool KeyframeRequestThrottle::poll(TimePoint now) {
  if (!pending_ || !open(now)) return false;
  send(now);
  return true;
}

std::optional<TimePoint> KeyframeRequestThrottle::pendingAt() const {
  if (!pending_) return std::nullopt;
  return *lastSent_ + interval_;
}

}  // namespace kaiwa::rtp
