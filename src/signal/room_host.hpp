#pragma once
// The rooms one worker owns. Rooms are created on first join and destroyed when the last peer is gone; the count
// across all workers is bounded by Limits::maxRooms through one shared atomic.
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/address_limits.hpp"
#include "signal/room.hpp"

namespace kaiwa::signal {

// Who asks for a room to be made: their address, for the per-address room rate (common::AddressLimits).
struct RoomCreator {
  std::string_view address;  // empty: not limited (a server-made room, a test)
  TimePoint now{};
};

class RoomHost {
 public:
  RoomHost(const Limits& limits, std::atomic<std::size_t>& roomCount, common::AddressLimits* addressLimits = nullptr)
      : limits_(limits), roomCount_(roomCount), addressLimits_(addressLimits) {}
  ~RoomHost();

  // The room, or nullptr.
  Room* find(std::string_view name);
  // The room, created if needed (with `policy`); nullptr when the server already holds maxRooms rooms (`*refused`
  // = kTooManyRooms) or `creator`'s address made too many rooms lately (kRateLimited).
  Room* findOrCreate(std::string_view name, const RoomPolicy& policy = {}, const RoomCreator& creator = {},
                     ErrorCode* refused = nullptr);
  // Destroys the room if nobody is left in it.
  void reapIfEmpty(std::string_view name);
  // Expires detached peers in every room; destroys rooms left empty.
  void tick(TimePoint now, Outbox& out);

  std::size_t size() const { return rooms_.size(); }
  // Calls `fn(name)` for every room.
  template <typename F>
  void forEachName(F&& fn) const {
    for (const auto& entry : rooms_) fn(entry.first);
  }

 private:
  const Limits& limits_;
  std::atomic<std::size_t>& roomCount_;
  common::AddressLimits* addressLimits_;
  std::unordered_map<std::string_view, std::unique_ptr<Room>> rooms_;  // keyed by a view of the room's own name
};

}  // namespace kaiwa::signal
