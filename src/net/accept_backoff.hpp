#pragma once
// What a listener (TURN's TCP/TLS listeners; HTTP's can use it the same way) does when accept() fails (EMFILE/ENFILE
// when the process or the machine is out of file descriptors, ENOBUFS, ...): the pending connection stays in the
// backlog, the socket stays readable, and accepting again at once would spin a core. So each failure pauses
// accepting, `first` after the first failure (TURN: 100 ms, HTTP's 50 ms is a constructor argument) and twice as long
// after each further one up to `max`, back to `first` after a success; and a failure is logged at most once per
// `logEvery`, with the number of those not logged since. Sans-I/O: the caller passes the time, waits and logs.
#include <cstdint>

#include "common/clock.hpp"

namespace kaiwa::net {

class AcceptBackoff {
 public:
  struct Failure {
    Clock::duration pause;    // wait this long before the next accept
    bool log = false;         // write a log line for this failure
    uint64_t suppressed = 0;  // failures since the last line that were not logged (when log)
  };

  explicit AcceptBackoff(Clock::duration first = std::chrono::milliseconds(100),
                         Clock::duration max = std::chrono::seconds(1),
                         Clock::duration logEvery = std::chrono::seconds(10))
      : first_(first), max_(max), logEvery_(logEvery), next_(first) {}

  Failure failed(TimePoint now) {
    Failure f{next_};
    next_ = next_ * 2 > max_ ? max_ : next_ * 2;
    if (!logged_ || now - lastLog_ >= logEvery_) {
      logged_ = true;
      lastLog_ = now;
      f.log = true;
      f.suppressed = suppressed_;
      suppressed_ = 0;
    } else {
      ++suppressed_;
    }
    return f;
  }
  void succeeded() { next_ = first_; }

 private:
  Clock::duration first_, max_, logEvery_, next_;
  TimePoint lastLog_{};
  bool logged_ = false;
  uint64_t suppressed_ = 0;
};

}  // namespace kaiwa::net
