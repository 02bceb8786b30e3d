#include "net/loop.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "common/metrics.hpp"

namespace kaiwa::net {
namespace {
thread_local Loop* tCurrent = nullptr;
#ifdef NDEBUG
bool gAbortOnFailure = false;
#else
bool gAbortOnFailure = true;
#endif

bool later(const auto& a, const auto& b) { return a.when > b.when; }  // for a min-heap with std::push_heap
}  // namespace

Loop* Loop::current() { return tCurrent; }
void Loop::setCurrent(Loop* loop) {
  tCurrent = loop;
  if (loop) loop->claimed_.store(true, std::memory_order_relaxed);
}
bool Loop::onThread() const {
  if (tCurrent == this) return true;
  return !claimed_.load(std::memory_order_relaxed) && std::this_thread::get_id() == constructedOn_;
}
void Loop::setAbortOnFailure(bool abort) { gAbortOnFailure = abort; }

Loop::Loop(boost::asio::io_context& context, uint32_t worker)
    : context_(context), worker_(worker), set_(context), timer_(context) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  set_.assign(ep);
  watches_.resize(1);  // slot 0 is never used: a WatchId of 0 means none
  timers_.resize(1);
  arm();
}

Loop::~Loop() {
  *alive_ = false;
  boost::system::error_code ignored;
  timer_.cancel();
  set_.close(ignored);
}

// ---------------------------------------------------------------------------------------------------------------
// Readiness

Loop::WatchId Loop::watch(int fd, uint32_t interest, Watcher& watcher) {
  uint32_t slot;
  if (!freeWatches_.empty()) {
    slot = freeWatches_.back();
    freeWatches_.pop_back();
  } else {
    slot = static_cast<uint32_t>(watches_.size());
    watches_.emplace_back();
  }
  WatchSlot& s = watches_[slot];
  s.watcher = &watcher;
  WatchId id = (uint64_t(s.generation) << 32) | slot;
  epoll_event ev{};
  ev.events = interest;
  ev.data.u64 = id;
  if (::epoll_ctl(set_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    int error = errno;
    s.watcher = nullptr;
    ++s.generation;
    freeWatches_.push_back(slot);
    errno = error;
    return 0;
  }
  return id;
}

bool Loop::rewatch(WatchId id, int fd, uint32_t interest) {
  auto slot = static_cast<uint32_t>(id);
  if (id == 0 || slot >= watches_.size() || watches_[slot].generation != uint32_t(id >> 32)) return false;
  epoll_event ev{};
  ev.events = interest;
  ev.data.u64 = id;
  return ::epoll_ctl(set_.native_handle(), EPOLL_CTL_MOD, fd, &ev) == 0;
}

void Loop::unwatch(WatchId id, int fd) {
  auto slot = static_cast<uint32_t>(id);
  if (id == 0 || slot >= watches_.size() || watches_[slot].generation != uint32_t(id >> 32)) return;
  ::epoll_ctl(set_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
  watches_[slot].watcher = nullptr;
  ++watches_[slot].generation;  // events of this batch for it no longer match
  freeWatches_.push_back(slot);
}

// Asio's wait on the set's descriptor re-arms it with one epoll_ctl per wait (a wait is never speculative); the set
// is readable while any registration in it is ready (its own ready list is not empty).
void Loop::arm() {
  set_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                  [this, alive = alive_](const boost::system::error_code& ec) {
                    if (ec || !*alive) return;
                    onSetReadable();
                  });
}

void Loop::onSetReadable() {
  int n = ::epoll_wait(set_.native_handle(), ready_, kBatch, 0);
  ++stats_.wakeups;
  for (int i = 0; i < n; ++i) {
    WatchId id = ready_[i].data.u64;
    auto slot = static_cast<uint32_t>(id);
    if (slot >= watches_.size() || watches_[slot].generation != uint32_t(id >> 32)) continue;  // unwatched meanwhile
    Watcher* w = watches_[slot].watcher;
    ++stats_.events;
    try {
      w->onReady(ready_[i].events);
    } catch (const std::exception& e) {
      // The watcher's registration goes (its descriptor stays the watcher's to close) and the watcher ends what it
      // serves; the loop and the worker's other connections go on.
      if (watches_[slot].generation == uint32_t(id >> 32)) {
        watches_[slot].watcher = nullptr;
        ++watches_[slot].generation;
        freeWatches_.push_back(slot);
      }
      failed("a watcher", &e);
      w->onFailure();
    }
  }
  if (n == kBatch) {
    // More may be ready: take them after what else the io_context has queued (acceptors, timers, posted tasks),
    // without waiting on the set again.
    ++stats_.continuations;
    post([this, alive = alive_] {
      if (*alive) onSetReadable();
    });
    return;
  }
  arm();
}

// ---------------------------------------------------------------------------------------------------------------
// Timers

Loop::TimerSlot* Loop::findTimer(TimerId id) {
  auto slot = static_cast<uint32_t>(id);
  if (id == 0 || slot >= timers_.size()) return nullptr;
  TimerSlot& t = timers_[slot];
  return t.live && t.generation == uint32_t(id >> 32) ? &t : nullptr;
}

Loop::TimerId Loop::at(TimePoint when, TimerFn fn) {
  uint32_t slot;
  if (!freeTimers_.empty()) {
    slot = freeTimers_.back();
    freeTimers_.pop_back();
  } else {
    slot = static_cast<uint32_t>(timers_.size());
    timers_.emplace_back();
  }
  TimerSlot& t = timers_[slot];
  t.fn = std::move(fn);
  t.when = when;
  t.period = Millis(0);
  t.live = true;
  push(slot);
  return (uint64_t(t.generation) << 32) | slot;
}

Loop::TimerId Loop::every(Millis period, TimerFn fn) {
  if (period.count() <= 0) period = Millis(1);
  TimerId id = at(Clock::now() + period, std::move(fn));
  timers_[static_cast<uint32_t>(id)].period = period;
  return id;
}

bool Loop::reschedule(TimerId id, TimePoint when) {
  TimerSlot* t = findTimer(id);
  if (!t) return false;
  t->when = when;
  ++staleEntries_;  // its current heap entry
  push(static_cast<uint32_t>(id));
  return true;
}

void Loop::cancel(TimerId id) {
  TimerSlot* t = findTimer(id);
  if (!t) return;
  auto slot = static_cast<uint32_t>(id);
  t->live = false;
  t->fn = nullptr;
  ++t->generation;
  ++staleEntries_;
  freeTimers_.push_back(slot);
}

void Loop::push(uint32_t slot) {
  TimerSlot& t = timers_[slot];
  ++t.sequence;
  // Stale entries (cancelled or moved timers) are dropped when they come up; when they outnumber the live ones the
  // heap is rebuilt, so a job that reschedules often does not grow it.
  if (staleEntries_ > 64 && staleEntries_ > heap_.size() / 2) {
    std::erase_if(heap_, [this](const HeapEntry& e) {
      const TimerSlot& s = timers_[e.slot];
      return !s.live || s.generation != e.generation || s.sequence != e.sequence;
    });
    std::make_heap(heap_.begin(), heap_.end(), [](const HeapEntry& a, const HeapEntry& b) { return later(a, b); });
    staleEntries_ = 0;
  }
  heap_.push_back(HeapEntry{t.when, slot, t.generation, t.sequence});
  std::push_heap(heap_.begin(), heap_.end(), [](const HeapEntry& a, const HeapEntry& b) { return later(a, b); });
  armTimer();
}

// One Asio timer for the whole queue, set for its earliest entry (stale ones included: they cost a wake-up at most).
void Loop::armTimer() {
  if (heap_.empty()) return;
  TimePoint first = heap_.front().when;
  if (first >= timerArmedFor_) return;
  timerArmedFor_ = first;
  timer_.expires_at(first);
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;          // (cancelled by a re-arm for an earlier time: that wait takes over)
    timerArmedFor_ = TimePoint::min();  // nothing re-arms while the due timers run
    runTimers();
    timerArmedFor_ = TimePoint::max();
    armTimer();
  });
}

void Loop::runTimers() {
  auto cmp = [](const HeapEntry& a, const HeapEntry& b) { return later(a, b); };
  TimePoint now = Clock::now();
  while (!heap_.empty() && heap_.front().when <= now) {
    HeapEntry e = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), cmp);
    heap_.pop_back();
    TimerSlot& t = timers_[e.slot];
    if (!t.live || t.generation != e.generation || t.sequence != e.sequence) {
      if (staleEntries_ > 0) --staleEntries_;
      continue;
    }
    TimerId id = (uint64_t(t.generation) << 32) | e.slot;
    // The function runs from a copy of the slot's: it may cancel its own timer or add timers (which can move
    // timers_ in memory).
    TimerFn fn = t.fn;
    if (t.period.count() > 0) {
      t.when = now + t.period;
      push(e.slot);
    } else {
      t.live = false;
      t.fn = nullptr;
      ++t.generation;
      freeTimers_.push_back(e.slot);
    }
    try {
      fn(now);
    } catch (const std::exception& ex) {
      failed("a timer", &ex);
      cancel(id);
    }
  }
}

void Loop::failed(const char* what, const std::exception* e) {
  ++stats_.failures;
  metrics::add(metrics::registry().handlerFailures);
  spdlog::error("worker {}: {} threw: {}", worker_, what, e ? e->what() : "?");
  if (gAbortOnFailure) std::abort();  // debug builds stop at the first one: a handler must not throw
}

}  // namespace kaiwa::net
