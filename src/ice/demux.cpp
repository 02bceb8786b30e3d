#include "ice/demux.hpp"

#include <algorithm>

namespace kaiwa::ice {

bool Demux::addUfrag(std::string_view ufrag, Id id) {
  if (ufrag.empty()) return false;
  if (auto it = ufrags_.find(ufrag); it != ufrags_.end()) return it->second == id;
  Owned& owned = owners_[id];
  if (owned.ufrags.size() >= limits_.maxUfragsPerTransport) {
    if (owned.tuples.empty() && owned.ufrags.empty()) owners_.erase(id);
    return false;
  }
  owned.ufrags.emplace_back(ufrag);
  ufrags_.emplace(std::string(ufrag), id);
  return true;
}

void Demux::removeUfrag(std::string_view ufrag) {
  auto it = ufrags_.find(ufrag);
  if (it == ufrags_.end()) return;
  if (auto owner = owners_.find(it->second); owner != owners_.end()) {
    auto& list = owner->second.ufrags;
    list.erase(std::remove(list.begin(), list.end(), ufrag), list.end());
    if (list.empty() && owner->second.tuples.empty()) owners_.erase(owner);
  }
  ufrags_.erase(it);
}

std::optional<Demux::Id> Demux::byUfrag(std::string_view ufrag) const {
  auto it = ufrags_.find(ufrag);
  return it == ufrags_.end() ? std::nullopt : std::optional<Id>(it->second);
}

void Demux::dropTuple(Owned& owned, const common::Address& remote) {
  auto& list = owned.tuples;
  list.erase(std::remove(list.begin(), list.end(), remote), list.end());
}

bool Demux::bind(const common::Address& remote, Id id) {
  if (auto it = tuples_.find(remote); it != tuples_.end()) {
    if (it->second == id) return true;
    // The address moves to another transport.
    if (auto owner = owners_.find(it->second); owner != owners_.end()) {
      dropTuple(owner->second, remote);
      if (owner->second.tuples.empty() && owner->second.ufrags.empty()) owners_.erase(owner);
    }
    tuples_.erase(it);
  }
  Owned& owned = owners_[id];
  if (owned.tuples.size() >= limits_.maxTuplesPerTransport && !owned.tuples.empty()) {
    tuples_.erase(owned.tuples.front());
    owned.tuples.erase(owned.tuples.begin());
  }
  if (tuples_.size() >= limits_.maxTuples) {
    if (owned.tuples.empty() && owned.ufrags.empty()) owners_.erase(id);
    return false;
  }
  owned.tuples.push_back(remote);
  tuples_.emplace(remote, id);
  return true;
}

void Demux::unbind(const common::Address& remote) {
  auto it = tuples_.find(remote);
  if (it == tuples_.end()) return;
  if (auto owner = owners_.find(it->second); owner != owners_.end()) {
    dropTuple(owner->second, remote);
    if (owner->second.tuples.empty() && owner->second.ufrags.empty()) owners_.erase(owner);
  }
  tuples_.erase(it);
}

void Demux::remove(Id id) {
  auto owner = owners_.find(id);
  if (owner == owners_.end()) return;
  for (const auto& t : owner->second.tuples) tuples_.erase(t);
  for (const auto& u : owner->second.ufrags) ufrags_.erase(u);
  owners_.erase(owner);
}

}  // namespace kaiwa::ice
