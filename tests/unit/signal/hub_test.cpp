// The hub across real worker threads: rooms on their owner, deliveries back to each connection's worker.
#include "signal/hub.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <future>
#include <mutex>

namespace kaiwa::signal {
namespace {

using namespace std::chrono_literals;

template <typename F>
auto runOn(net::WorkerPool& pool, uint32_t worker, F fn) {
  std::packaged_task<decltype(fn())()> task(std::move(fn));
  auto result = task.get_future();
  pool.post(worker, [&task] { task(); });
  EXPECT_EQ(result.wait_for(10s), std::future_status::ready);
  return result.get();
}

// An event that tells deliveries apart by its text.
ev::Error note(std::string text) { return ev::Error{0, ErrorCode::kBadMessage, std::move(text)}; }

class FakeConnection : public Connection {
 public:
  explicit FakeConnection(uint32_t worker) : worker_(worker) {}
  void deliver(const EventPtr& e) override {
    EXPECT_EQ(net::WorkerPool::current(), worker_) << "delivered on another worker's thread";
    std::lock_guard lock(m_);
    events_.push_back(e);
    cv_.notify_all();
  }
  std::size_t count() {
    std::lock_guard lock(m_);
    return events_.size();
  }
  // Waits (bounded) until an event of type T arrives; returns it.
  template <typename T>
  std::optional<T> waitFor() {
    std::unique_lock lock(m_);
    std::optional<T> found;
    cv_.wait_for(lock, 10s, [&] {
      for (auto& e : events_) {
        if (auto* t = std::get_if<T>(e.get())) {
          found = *t;
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  uint32_t worker_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<EventPtr> events_;
};

TEST(Hub, RelaysBetweenConnectionsOnDifferentWorkers) {
  net::WorkerPool pool(2);
  pool.start();
  Hub hub(pool, HubOptions{});
  FakeConnection a(0), b(1);
  Endpoint ea = runOn(pool, 0, [&] { return hub.attach(0, &a); });
  Endpoint eb = runOn(pool, 1, [&] { return hub.attach(1, &b); });
  auto join = [&](Endpoint ep, std::string name) {
    pool.post(ep.worker, [&hub, ep, name] {
      hub.onRoom("room", [ep, name](RoomHost& rooms, Outbox& out) {
        rooms.findOrCreate("room")->join(JoinRequest{ep, 1, name, {}, {}}, Clock::now(), out);
      });
    });
  };
  join(ea, "A");
  auto ja = a.waitFor<ev::Joined>();
  ASSERT_TRUE(ja);
  join(eb, "B");
  auto jb = b.waitFor<ev::Joined>();
  ASSERT_TRUE(jb);
  ASSERT_EQ(jb->peers.size(), 1u);
  EXPECT_EQ(jb->peers[0].id, ja->peer);
  ASSERT_TRUE(a.waitFor<ev::PeerJoined>());

  pool.post(1, [&hub, eb, from = jb->peer, to = ja->peer] {
    hub.onRoom("room", [=](RoomHost& rooms, Outbox& out) {
      rooms.find("room")->signal(eb, kNoRequest, from, to, R"({"x":1})", out);
    });
  });
  auto sig = a.waitFor<ev::Signal>();
  ASSERT_TRUE(sig);
  EXPECT_EQ(sig->from, jb->peer);
  EXPECT_EQ(sig->data, R"({"x":1})");

  runOn(pool, 0, [&] {
    hub.detach(ea);
    return 0;
  });
  runOn(pool, 1, [&] {
    hub.detach(eb);
    return 0;
  });
  pool.stop();
}

TEST(Hub, ShutdownSaysByeToEveryConnection) {
  net::WorkerPool pool(2);
  pool.start();
  Hub hub(pool, HubOptions{});
  FakeConnection a(0), b(1);
  runOn(pool, 0, [&] { return hub.attach(0, &a); });
  runOn(pool, 1, [&] { return hub.attach(1, &b); });
  hub.shutdown(ByeReason::kShutdown);
  auto byeA = a.waitFor<ev::Bye>();
  auto byeB = b.waitFor<ev::Bye>();
  ASSERT_TRUE(byeA && byeB);
  EXPECT_EQ(byeA->reason, ByeReason::kShutdown);
  pool.stop();
}

TEST(Hub, DeliveriesToADetachedConnectionAreDropped) {
  net::WorkerPool pool(1);
  pool.start();
  Hub hub(pool, HubOptions{});
  FakeConnection a(0);
  Endpoint ea = runOn(pool, 0, [&] { return hub.attach(0, &a); });
  runOn(pool, 0, [&] {
    hub.detach(ea);
    return 0;
  });
  runOn(pool, 0, [&] {
    Outbox out;
    reply(out, ea, note("x"));
    hub.dispatch(std::move(out));
    return 0;
  });
  // A marker through the same worker proves the dispatch above has run.
  FakeConnection marker(0);
  Endpoint em = runOn(pool, 0, [&] { return hub.attach(0, &marker); });
  runOn(pool, 0, [&] {
    Outbox out;
    reply(out, em, note("marker"));
    hub.dispatch(std::move(out));
    return 0;
  });
  ASSERT_TRUE(marker.waitFor<ev::Error>());
  EXPECT_EQ(a.count(), 0u);
  pool.stop();
}

// Connections reuse the slots of gone ones: an event for a gone connection never reaches the one in its slot.
TEST(Hub, AReusedSlotGetsNoEventsOfItsFormerConnection) {
  net::WorkerPool pool(1);
  pool.start();
  Hub hub(pool, HubOptions{});
  FakeConnection a(0), b(0), c(0);
  Endpoint ea = runOn(pool, 0, [&] { return hub.attach(0, &a); });
  runOn(pool, 0, [&] {
    hub.detach(ea);
    return 0;
  });
  Endpoint eb = runOn(pool, 0, [&] { return hub.attach(0, &b); });
  EXPECT_NE(eb, ea);
  EXPECT_NE(eb.session, 0u);
  runOn(pool, 0, [&] {
    hub.detach(ea);  // twice: no effect on b
    Outbox out;
    reply(out, ea, note("for a"));
    reply(out, eb, note("for b"));
    hub.dispatch(std::move(out));
    return 0;
  });
  auto got = b.waitFor<ev::Error>();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->message, "for b");
  EXPECT_EQ(b.count(), 1u);
  EXPECT_EQ(a.count(), 0u);
  // Many at once, then all gone and back: every endpoint distinct from every earlier one.
  std::vector<Endpoint> seen{ea, eb};
  for (int round = 0; round < 3; ++round) {
    std::vector<Endpoint> now;
    for (int i = 0; i < 50; ++i) now.push_back(runOn(pool, 0, [&] { return hub.attach(0, &c); }));
    for (const auto& e : now) {
      EXPECT_EQ(std::count(seen.begin(), seen.end(), e), 0);
      seen.push_back(e);
    }
    for (const auto& e : now)
      runOn(pool, 0, [&] {
        hub.detach(e);
        return 0;
      });
  }
  runOn(pool, 0, [&] {
    hub.detach(eb);
    return 0;
  });
  pool.stop();
}

// Copies, moves and destructions of a task's captured state.
struct Counts {
  std::atomic<int> copies{0}, moves{0}, destroyed{0};
};
class Tracked {
 public:
  explicit Tracked(Counts& c) : c_(&c) {}
  Tracked(const Tracked& o) : c_(o.c_) { ++c_->copies; }
  Tracked(Tracked&& o) noexcept : c_(o.c_) {
    o.live_ = false;
    ++c_->moves;
  }
  Tracked& operator=(const Tracked&) = delete;
  ~Tracked() {
    if (live_) ++c_->destroyed;  // the state itself, not a moved-from shell
  }

 private:
  Counts* c_;
  bool live_ = true;
};

// A room name owned by `worker`.
std::string roomOn(const Hub& hub, uint32_t worker) {
  for (int i = 0;; ++i) {
    std::string name = "room" + std::to_string(i);
    if (hub.ownerOf(name) == worker) return name;
  }
}

TEST(Hub, OnTheOwnerATaskRunsAtOnceWhereItIs) {
  net::WorkerPool pool(1);
  pool.start();
  Hub hub(pool, HubOptions{});
  Counts counts;
  runOn(pool, 0, [&] {
    bool ran = false;
    hub.onRoom("room", [t = Tracked(counts), &ran](RoomHost&, Outbox&) { ran = true; });
    EXPECT_TRUE(ran);  // before onRoom returned
    return 0;
  });
  EXPECT_EQ(counts.copies, 0);
  EXPECT_EQ(counts.moves, 0);
  EXPECT_EQ(counts.destroyed, 1);
  // A named, mutable task runs on the caller's object: its state changes are the caller's.
  struct CountingTask {
    int n = 0;
    void operator()(RoomHost&, Outbox&) { ++n; }
  };
  int calls = runOn(pool, 0, [&] {
    CountingTask task;
    hub.onRoom("room", task);
    hub.onRoom("room", RoomTaskRef(task));
    return task.n;
  });
  EXPECT_EQ(calls, 2);
  pool.stop();
}

TEST(Hub, ATaskForAnotherWorkerIsMovedThereWithItsCaptures) {
  net::WorkerPool pool(2);
  pool.start();
  Hub hub(pool, HubOptions{});
  const std::string room = roomOn(hub, 0);
  Counts counts;
  std::array<char, 4096> big{};  // far past any small buffer: the lambda itself is this big
  big.fill('x');
  big.back() = 'y';
  std::promise<std::string> seen;
  runOn(pool, 1, [&] {
    hub.onRoom(room, [t = Tracked(counts), big, owned = std::make_unique<int>(7), &seen](RoomHost&, Outbox&) {
      EXPECT_EQ(net::WorkerPool::current(), 0u);
      seen.set_value(std::string(big.begin(), big.end()) + std::to_string(*owned));
    });
    return 0;
  });
  auto result = seen.get_future();
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(result.get(), std::string(4095, 'x') + "y7");
  runOn(pool, 0, [] { return 0; });  // the posted handler, run, is gone after this
  EXPECT_EQ(counts.copies, 0);
  EXPECT_GE(counts.moves, 1);
  EXPECT_EQ(counts.destroyed, 1);
  pool.stop();
}

TEST(Hub, TasksPostedFromOneWorkerRunInOrder) {
  net::WorkerPool pool(2);
  pool.start();
  Hub hub(pool, HubOptions{});
  const std::string room = roomOn(hub, 0);
  std::vector<int> order;  // touched on worker 0 only
  runOn(pool, 1, [&] {
    for (int i = 0; i < 100; ++i) {
      if (i % 2) {
        hub.onRoom(room, [i, &order](RoomHost&, Outbox&) { order.push_back(i); });
      } else {
        hub.onRoom(room, [i, &order, pad = std::array<char, 512>{}](RoomHost&, Outbox&) { order.push_back(i); });
      }
    }
    return 0;
  });
  std::vector<int> got = runOn(pool, 0, [&] { return order; });
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], i);
  pool.stop();
}

// A connection whose delivery makes another room task, as a front door closing on a bye does.
class ReentrantConnection : public Connection {
 public:
  explicit ReentrantConnection(std::function<void()> onDeliver) : onDeliver_(std::move(onDeliver)) {}
  void deliver(const EventPtr& e) override {
    reasons.push_back(std::get<ev::Error>(*e).message);
    if (onDeliver_) onDeliver_();
  }
  std::vector<std::string> reasons;

 private:
  std::function<void()> onDeliver_;
};

TEST(Hub, ATaskRunFromADeliveryHasAnOutboxOfItsOwn) {
  net::WorkerPool pool(1);
  pool.start();
  Hub hub(pool, HubOptions{});
  runOn(pool, 0, [&] {
    ReentrantConnection b({});
    Endpoint eb = hub.attach(0, &b);
    bool nestedRan = false;
    ReentrantConnection a([&] {
      if (nestedRan) return;
      nestedRan = true;
      hub.onRoom("room", [eb](RoomHost&, Outbox& out) {
        EXPECT_TRUE(out.empty());
        reply(out, eb, note("nested"));
      });
    });
    Endpoint ea = hub.attach(0, &a);
    for (int round = 0; round < 3; ++round) {  // later tasks get the emptied outbox of earlier ones
      hub.onRoom("room", [ea, eb](RoomHost&, Outbox& out) {
        EXPECT_TRUE(out.empty());
        reply(out, ea, note("first"));
        reply(out, eb, note("second"));
      });
    }
    EXPECT_EQ(a.reasons, (std::vector<std::string>{"first", "first", "first"}));
    EXPECT_EQ(b.reasons, (std::vector<std::string>{"nested", "second", "second", "second"}));
    hub.detach(ea);
    hub.detach(eb);
    return 0;
  });
  pool.stop();
}

}  // namespace
}  // namespace kaiwa::signal
