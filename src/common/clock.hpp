#pragma once
// Time as protocol cores see it: passed in by the caller, never read inside, so tests drive a fake clock.
#include <chrono>
#include <cstdint>

namespace kaiwa {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

// Wall-clock milliseconds since the Unix epoch, for timestamps shown to users.
inline int64_t wallMillis() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace kaiwa
