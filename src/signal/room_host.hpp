#pragma once
// The rooms one worker owns. Rooms are created on first join and destroyed when the last peer is gone; the count
// across all workers is bounded by Limits::maxRooms through one shared atomic.
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "signal/room.hpp"

namespace kaiwa::signal {

class RoomHost {
 public:
  RoomHost(const Limits& limits, std::atomic<std::size_t>& roomCount) : limits_(limits), roomCount_(roomCount) {}
  ~RoomHost();

  // The room, or nullptr.
  Room* find(std::string_view name);
  // The room, created if needed (with `policy`); nullptr when the server already holds maxRooms rooms.
  Room* findOrCreate(std::string_view name, const RoomPolicy& policy = {});
  // Destroys the room if nobody is left in it.
  void reapIfEmpty(std::string_view name);
  // Expires detached peers in every room; destroys rooms left empty.
  void tick(TimePoint now, Outbox& out);

  std::size_t size() const { return rooms_.size(); }

 private:
  const Limits& limits_;
  std::atomic<std::size_t>& roomCount_;
  std::unordered_map<std::string_view, std::unique_ptr<Room>> rooms_;  // keyed by a view of the room's own name
};

}  // namespace kaiwa::signal
