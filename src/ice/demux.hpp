#pragma once
// Which transport a datagram on the SFU's one media port belongs to (the way mediasoup's WebRtcServer and LiveKit
// share one port): a transport is found by the local ICE ufrag of the first Binding request that reaches it, then,
// once a check from a remote address was valid, by that address. Media from an address no valid check came from is
// not routed: the caller drops and counts it. Sans-I/O, no locks: one table per worker that owns the port's socket.
//
// Bounded: the number of remote addresses in all (maxTuples) and per transport (maxTuplesPerTransport; a
// transport's oldest address goes when it binds one more), so a client cannot grow the table by moving around.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/address.hpp"

namespace kaiwa::ice {

struct DemuxLimits {
  size_t maxTuples = 65536;
  size_t maxTuplesPerTransport = 8;
  size_t maxUfragsPerTransport = 2;  // the current one and, during an ICE restart, the previous one
};

class Demux {
 public:
  using Id = uint64_t;  // the caller's name for a transport (a slot id, say)

  explicit Demux(DemuxLimits limits = {}) : limits_(limits) {}

  // Routes Binding requests addressed to `ufrag` to `id`. False when another transport has that ufrag or `id`
  // already has its maximum (remove the old one first).
  bool addUfrag(std::string_view ufrag, Id id);
  void removeUfrag(std::string_view ufrag);
  std::optional<Id> byUfrag(std::string_view ufrag) const;

  // Routes datagrams from `remote` to `id`, after a valid check from there. An address bound to another transport
  // moves (a client that closed one peer connection and opened another from the same port). False when the table
  // is full.
  bool bind(const common::Address& remote, Id id);
  void unbind(const common::Address& remote);
  std::optional<Id> byTuple(const common::Address& remote) const {
    auto it = tuples_.find(remote);
    return it == tuples_.end() ? std::nullopt : std::optional<Id>(it->second);
  }

  // Forgets everything routed to `id` (the transport closed).
  void remove(Id id);

  size_t tuples() const { return tuples_.size(); }
  size_t ufrags() const { return ufrags_.size(); }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Owned {
    std::vector<common::Address> tuples;  // oldest first
    std::vector<std::string> ufrags;
  };
  void dropTuple(Owned& owned, const common::Address& remote);

  DemuxLimits limits_;
  std::unordered_map<common::Address, Id, common::AddressHash> tuples_;
  std::unordered_map<std::string, Id, StringHash, std::equal_to<>> ufrags_;
  std::unordered_map<Id, Owned> owners_;
};

}  // namespace kaiwa::ice
