#pragma once
// The signaling service across workers. A room is owned by worker hash(name) % N; a connection lives on the worker
// that accepted it. Front doors call Hub::onRoom to run room-core code on the owner, and the resulting Outbox is
// dispatched back to the connections' workers, one posted batch per worker.
#include <atomic>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common/address_limits.hpp"
#include "net/worker_pool.hpp"
#include "signal/limits.hpp"
#include "signal/room_host.hpp"
#include "signal/types.hpp"

namespace kaiwa::signal {

// A front door's connection, as the hub sees it: somewhere to deliver events.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual void deliver(const EventPtr& event) = 0;
};

struct HubOptions {
  Limits limits;
  // Per-client-address limits shared by the whole server (rooms created per minute here; the front doors use it for
  // handshakes and sessions too). nullptr: none. Outlives the hub.
  common::AddressLimits* addressLimits = nullptr;
  std::optional<std::string> authSecret;  // set: joins need a room token
  Millis heartbeat = kHeartbeat;          // advertised to clients
  Millis tickInterval{250};               // how often detached peers are checked for expiry
  // Where the native and PeerJS doors and the room tasks they run take the time from (Hub::now). Empty: Clock::now(),
  // and start() ticks the rooms from each worker's loop. A test or fuzzer that sets it drives time itself: it calls
  // tick(worker, now) instead of start().
  std::function<TimePoint()> clock;
};

// A room task borrowed for one call: a pointer to the callable and a function that invokes it. What the hub runs on
// the owner, without owning, copying or allocating.
class RoomTaskRef {
 public:
  template <typename F>
  requires(!std::same_as<std::remove_cvref_t<F>, RoomTaskRef> && std::invocable<F&, RoomHost&, Outbox&>)
      RoomTaskRef(F& task)  // NOLINT(google-explicit-constructor): a view, like std::string_view
      : task_(const_cast<void*>(static_cast<const void*>(&task))),
        call_([](void* t, RoomHost& rooms, Outbox& out) { (*static_cast<F*>(t))(rooms, out); }) {}
  void operator()(RoomHost& rooms, Outbox& out) const { call_(task_, rooms, out); }

 private:
  void* task_;
  void (*call_)(void*, RoomHost&, Outbox&);
};

class Hub {
 public:
  Hub(net::WorkerPool& pool, HubOptions options);
  ~Hub();

  const HubOptions& options() const { return options_; }
  const Limits& limits() const { return options_.limits; }
  uint32_t ownerOf(std::string_view room) const;
  // The time for the sessions and room tasks: the options' clock if given, else Clock::now().
  TimePoint now() const { return options_.clock ? options_.clock() : Clock::now(); }

  // Called on the connection's worker.
  Endpoint attach(uint32_t worker, Connection* connection);
  void detach(Endpoint endpoint);

  // Runs `task(RoomHost&, Outbox&)` on the worker owning `room`, then dispatches what it produced. Call from any
  // worker. On the owner the task runs at once, where it is; for another worker it is moved into the posted handler.
  // Either way its captures get no heap block of their own (a std::function needs one for most of them).
  template <typename Task>
  requires std::invocable < std::decay_t<Task>
  &, RoomHost&, Outbox& > void onRoom(std::string_view room, Task&& task) {
    uint32_t owner = ownerOf(room);
    if (net::WorkerPool::current() == owner) {
      run(owner, task);
    } else {
      pool_.post(owner, [this, owner, task = std::forward<Task>(task)]() mutable { run(owner, task); });
    }
  }
  // The rooms `worker` owns. Call on that worker: the cluster lists them to keep their placement (docs/cluster.md).
  RoomHost& rooms(uint32_t worker);
  // Sends each delivery to its connection's worker. Call from any worker.
  void dispatch(Outbox&& out);

  // Starts the periodic expiry of detached peers on every worker (a tick every tickInterval of each worker's loop).
  void start();
  // One tick of `worker`'s rooms at `now` (detached peers expire, idle addresses are forgotten): what start()'s timer
  // runs. Call on the worker (a test: on the thread that drives the pool, without start()).
  void tick(uint32_t worker, TimePoint now);
  // Tells every connection `bye` with `reason` (front doors close after it) and stops the timers.
  void shutdown(ByeReason reason);

 private:
  struct Shard;
  void run(uint32_t owner, RoomTaskRef task);  // on the owner: runs the task, dispatches its outbox
  void deliverLocal(uint32_t worker, Outbox& out);
  void recycle(uint32_t worker, Outbox&& out);

  net::WorkerPool& pool_;
  HubOptions options_;
  std::atomic<std::size_t> roomCount_{0};
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace kaiwa::signal
