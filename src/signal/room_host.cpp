#include "signal/room_host.hpp"

#include <vector>

#include "common/metrics.hpp"

namespace kaiwa::signal {

RoomHost::~RoomHost() {
  roomCount_.fetch_sub(rooms_.size(), std::memory_order_relaxed);
  metrics::add(metrics::registry().rooms, -static_cast<int64_t>(rooms_.size()));
}

Room* RoomHost::find(std::string_view name) {
  auto it = rooms_.find(name);
  return it == rooms_.end() ? nullptr : it->second.get();
}

Room* RoomHost::findOrCreate(std::string_view name, const RoomPolicy& policy, const RoomCreator& creator,
                             ErrorCode* refused) {
  if (Room* r = find(name)) return r;
  std::size_t count = roomCount_.fetch_add(1, std::memory_order_relaxed);
  if (count >= limits_.maxRooms) {
    roomCount_.fetch_sub(1, std::memory_order_relaxed);
    if (refused) *refused = ErrorCode::kTooManyRooms;
    return nullptr;
  }
  // After the total: a refusal for the total does not use up the creator's rate.
  if (addressLimits_ && !creator.address.empty() && !addressLimits_->allowRoomCreation(creator.address, creator.now)) {
    roomCount_.fetch_sub(1, std::memory_order_relaxed);
    if (refused) *refused = ErrorCode::kRateLimited;
    return nullptr;
  }
  auto room = std::make_unique<Room>(std::string(name), limits_, policy);
  Room* raw = room.get();
  rooms_.emplace(raw->name(), std::move(room));
  metrics::add(metrics::registry().rooms, 1);
  return raw;
}

void RoomHost::reapIfEmpty(std::string_view name) {
  auto it = rooms_.find(name);
  if (it == rooms_.end() || !it->second->empty()) return;
  rooms_.erase(it);
  roomCount_.fetch_sub(1, std::memory_order_relaxed);
  metrics::add(metrics::registry().rooms, -1);
}

void RoomHost::tick(TimePoint now, Outbox& out) {
  std::vector<std::string> empty;
  for (auto& [name, room] : rooms_) {
    room->tick(now, out);
    if (room->empty()) empty.emplace_back(name);
  }
  for (const auto& name : empty) reapIfEmpty(name);
}

}  // namespace kaiwa::signal
