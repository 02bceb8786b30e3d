#pragma once
// The signaling service across workers. A room is owned by worker hash(name) % N; a connection lives on the worker
// that accepted it. Front doors call Hub::onRoom to run room-core code on the owner, and the resulting Outbox is
// dispatched back to the connections' workers, one posted batch per worker.
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
  std::optional<std::string> authSecret;  // set: joins need a room token
  Millis heartbeat{10000};                // advertised to clients
  Millis tickInterval{250};               // how often detached peers are checked for expiry
};

class Hub {
 public:
  using RoomTask = std::function<void(RoomHost& rooms, Outbox& out)>;

  Hub(net::WorkerPool& pool, HubOptions options);
  ~Hub();

  const HubOptions& options() const { return options_; }
  const Limits& limits() const { return options_.limits; }
  uint32_t ownerOf(std::string_view room) const;

  // Called on the connection's worker.
  Endpoint attach(uint32_t worker, Connection* connection);
  void detach(Endpoint endpoint);

  // Runs `task` on the worker owning `room`, then dispatches what it produced. Call from any worker.
  void onRoom(std::string_view room, RoomTask task);
  // Sends each delivery to its connection's worker. Call from any worker.
  void dispatch(Outbox&& out);

  // Starts the periodic expiry of detached peers on every worker.
  void start();
  // Tells every connection `bye` with `reason` (front doors close after it) and stops the timers.
  void shutdown(const std::string& reason);

 private:
  struct Shard;
  void deliverLocal(uint32_t worker, Outbox& out);
  void armTick(uint32_t worker);

  net::WorkerPool& pool_;
  HubOptions options_;
  std::atomic<std::size_t> roomCount_{0};
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace kaiwa::signal
