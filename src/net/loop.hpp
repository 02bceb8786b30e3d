#pragma once
// A worker's event loop (docs/architecture.md, "The loop"). Every worker thread runs one `Loop`:
// - the worker's `io_context` (Asio's reactor: acceptors, Beast's HTTP sessions and TLS handshakes, RFC 6062 pipes);
// - one epoll set for every descriptor kaiwa reads itself — WebSockets (plain and TLS), TURN's UDP sockets and
//   TCP/TLS connections, and later the SFU's media sockets. The io_context watches that set as one descriptor;
//   each wake-up takes up to `kBatch` ready events, and when a batch comes back full the rest is taken by a posted
//   continuation, after the io_context's other work had its turn;
// - one timer queue that every periodic or one-shot job of the worker registers with, on one Asio timer;
// - one task queue: `post` (the io_context's), the only way another thread reaches the worker's objects.
// Registrations are identified by a `WatchId` carrying a generation: after `unwatch`, events already taken for the
// descriptor in the running batch are dropped, and the id is never reused for another registration.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "common/clock.hpp"

namespace kaiwa::net {

class Loop {
 public:
  static constexpr uint32_t kNotAWorker = std::numeric_limits<uint32_t>::max();
  static constexpr int kBatch = 256;  // ready events taken per wake-up

  // What a registration asks to hear about (EPOLL* bits, combined).
  static constexpr uint32_t kReadable = EPOLLIN | EPOLLRDHUP;
  static constexpr uint32_t kWritable = EPOLLOUT;
  static constexpr uint32_t kEdge = EPOLLET;  // edge-triggered; without it, level-triggered

  // Hears of readiness. Called on the loop's thread with the EPOLL* bits that are set.
  class Watcher {
   public:
    virtual void onReady(uint32_t events) = 0;
    // `onReady` threw: the registration is gone already; the watcher ends what it serves (a connection closes).
    virtual void onFailure() noexcept {}

   protected:
    ~Watcher() = default;
  };
  using WatchId = uint64_t;  // (generation << 32) | slot; 0 is no registration

  using TimerId = uint64_t;  // (generation << 32) | slot; 0 is no timer
  using TimerFn = std::function<void(TimePoint)>;

  Loop(boost::asio::io_context& context, uint32_t worker);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uint32_t worker() const { return worker_; }
  boost::asio::io_context& context() { return context_; }

  // The loop of the calling thread, or nullptr off the workers (set by WorkerPool for its threads). Setting a loop
  // as a thread's claims it: from then on only that thread is its owner.
  static Loop* current();
  static void setCurrent(Loop* loop);
  // True on this loop's thread: the thread that runs it (the one that claimed it with setCurrent) or, while no
  // thread has claimed it, the thread that constructed it — a test or fuzzer that drives a WorkerPool it never
  // started, by polling its io_context from its own thread, is that loop's owner. Debug builds assert it on every
  // path that must run on the owner (KAIWA_ON_LOOP).
  bool onThread() const;

  // --- readiness ---
  // Registers `fd` (not owned) with `interest`. A descriptor that is ready already is reported at the next wake-up.
  // Returns 0 on failure (errno is set).
  WatchId watch(int fd, uint32_t interest, Watcher& watcher);
  bool rewatch(WatchId id, int fd, uint32_t interest);
  // Takes `fd` out of the set (call before closing it) and forgets the id.
  void unwatch(WatchId id, int fd);
  std::size_t watching() const { return watches_.size() - 1 - freeWatches_.size(); }  // (slot 0 is never used)

  // --- timers ---
  // `fn(now)` once at `when`, or every `period` from now (the next run is scheduled from when a run starts, so a
  // slow run does not make the next ones catch up). `fn` may cancel its own or any other timer, or add new ones.
  TimerId at(TimePoint when, TimerFn fn);
  TimerId every(Millis period, TimerFn fn);
  // Moves a timer (one-shot or periodic) to `when`; false if it is gone.
  bool reschedule(TimerId id, TimePoint when);
  void cancel(TimerId id);
  std::size_t timers() const { return timers_.size() - 1 - freeTimers_.size(); }
  std::size_t queuedEntries() const { return heap_.size(); }  // live and stale: bounded by about twice the live ones

  // --- tasks ---
  template <typename F>
  void post(F&& task) {
    boost::asio::post(context_, std::forward<F>(task));
  }

  // Counters for /metrics and tests (read on the loop's thread).
  struct Stats {
    uint64_t wakeups = 0;        // epoll_wait calls on the set
    uint64_t events = 0;         // events dispatched
    uint64_t continuations = 0;  // full batches followed by a posted continuation
    uint64_t failures = 0;       // watchers or timers that threw
  };
  const Stats& stats() const { return stats_; }

  // Debug builds abort at a handler that threw (none may); tests of that path turn it off. Release builds never do.
  static void setAbortOnFailure(bool abort);

 private:
  // The registrations and timers keep their own slot tables beside net::Slots<T> (same id scheme): Slots owns each
  // item through a unique_ptr, one heap block and one more pointer hop per lookup, and a watch is looked up for every
  // ready event; a watcher is not the loop's to own, and a timer's slot is reused in place (its heap entries name it
  // by slot, generation and sequence). So the slots are stored inline here.
  struct WatchSlot {
    Watcher* watcher = nullptr;
    uint32_t generation = 1;
  };
  struct TimerSlot {
    TimerFn fn;
    TimePoint when{};
    Millis period{0};
    uint32_t generation = 1;
    uint32_t sequence = 0;  // changes when it is rescheduled: heap entries of an older sequence are stale
    bool live = false;
  };
  struct HeapEntry {
    TimePoint when;
    uint32_t slot;
    uint32_t generation;
    uint32_t sequence;
  };

  void arm();
  void onSetReadable();
  TimerSlot* findTimer(TimerId id);
  void push(uint32_t slot);
  void armTimer();
  void runTimers();
  void failed(const char* what, const std::exception* e);

  boost::asio::io_context& context_;
  uint32_t worker_;
  const std::thread::id constructedOn_ = std::this_thread::get_id();
  std::atomic<bool> claimed_{false};  // a thread made it its current loop (relaxed: read by the asserts only)
  boost::asio::posix::stream_descriptor set_;
  std::vector<WatchSlot> watches_;
  std::vector<uint32_t> freeWatches_;
  epoll_event ready_[kBatch];

  boost::asio::steady_timer timer_;
  TimePoint timerArmedFor_ = TimePoint::max();
  std::vector<TimerSlot> timers_;
  std::vector<uint32_t> freeTimers_;
  std::vector<HeapEntry> heap_;  // min-heap on `when`; may hold stale entries (checked when they come up)
  std::size_t staleEntries_ = 0;
  Stats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kaiwa::net

// Debug builds (the ASan and TSan builds of scripts/test.sh, which run the unit and integration tests) and the fuzz
// build (KAIWA_CHECK_ON_LOOP): aborts unless the caller runs on `loop`'s thread (the owner of what it touches).
#if !defined(NDEBUG) || defined(KAIWA_CHECK_ON_LOOP)
#include <cstdio>
#include <cstdlib>
#define KAIWA_ON_LOOP(loop)                                                                          \
  do {                                                                                               \
    if (!(loop).onThread()) {                                                                        \
      std::fprintf(stderr, "%s:%d: called off its owner's thread (worker %u)\n", __FILE__, __LINE__, \
                   static_cast<unsigned>((loop).worker()));                                          \
      std::abort();                                                                                  \
    }                                                                                                \
  } while (0)
#else
#define KAIWA_ON_LOOP(loop) ((void)0)
#endif
