#pragma once
// What one client address may hold and how fast it may ask for more: concurrent connections, new connections and
// handshakes per second, Engine.IO polling sessions, rooms created per minute. One table for the whole process,
// shared by every worker (connections from one address land on any worker: SO_REUSEPORT hashes the 4-tuple), so it
// is locked — by shard, and only at a connection's or session's start and end, never per message.
//
// An IPv6 client is counted by its /64: one host is routinely given a whole /64, and would otherwise have 2^64
// addresses to spread its connections over. IPv4-mapped IPv6 addresses count as their IPv4 address.
//
// Sans-I/O: time is passed in. Addresses on the exempt list (e.g. a reverse proxy that all clients come through)
// are never limited.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.hpp"

namespace kaiwa::common {

// An address in 16 bytes, IPv4 as ::ffff:a.b.c.d. nullopt when `ip` is not an IPv4 or IPv6 address in text form
// (brackets and a zone id are not accepted).
using Address16 = std::array<uint8_t, 16>;
std::optional<Address16> parseAddress16(std::string_view ip);

// A network in CIDR notation ("10.0.0.0/8", "::1/128", or a bare address for one host).
struct Cidr {
  Address16 bytes{};   // IPv4 as ::ffff:a.b.c.d
  uint8_t prefix = 0;  // over the 128 bits (an IPv4 /8 is 104)
  bool contains(const Address16& address) const;
};
std::optional<Cidr> parseCidr(std::string_view text);

struct AddressLimitOptions {
  std::size_t connections = 128;  // concurrent TCP connections (HTTP, WebSocket, TLS) per address; 0: no limit
  double connectsPerSecond = 50;  // new TCP connections per address, token bucket; 0: no limit
  double connectBurst = 200;
  double handshakesPerSecond = 20;  // WebSocket upgrades, Engine.IO handshakes, PeerJS ids; 0: no limit
  double handshakeBurst = 100;
  std::size_t pollingSessions = 64;          // Engine.IO polling sessions per address; 0: no limit
  std::size_t pollingSessionsTotal = 20000;  // on the whole server; 0: no limit
  double roomsPerMinute = 60;                // rooms an address may create; 0: no limit
  double roomBurst = 60;
  std::vector<Cidr> exempt;          // never limited
  std::size_t maxTracked = 1 << 20;  // addresses remembered (idle ones are forgotten first); bounds the table
};

// What an address was refused, for metrics and logs.
enum class AddressRefusal : uint8_t {
  kConnections,
  kConnectRate,
  kHandshakeRate,
  kPollingSessions,
  kPollingSessionsTotal,
  kRoomRate,
  kCount
};
std::string_view toString(AddressRefusal r);

class AddressLimits {
 public:
  explicit AddressLimits(AddressLimitOptions options = {});
  ~AddressLimits();
  AddressLimits(const AddressLimits&) = delete;
  AddressLimits& operator=(const AddressLimits&) = delete;

  const AddressLimitOptions& options() const { return options_; }

  // A TCP connection from `ip` was accepted: true if it may stay (then closeConnection must follow once it closes),
  // false if it is over the concurrent or the rate limit (close it at once; nothing to undo). An address that is not
  // an IP address in text form is not limited.
  bool openConnection(std::string_view ip, TimePoint now);
  void closeConnection(std::string_view ip);

  // A handshake (WebSocket upgrade, Engine.IO open, PeerJS id) from `ip`: true if it may go on.
  bool allowHandshake(std::string_view ip, TimePoint now);

  // An Engine.IO polling session for `ip`: true if it may open (then closePollingSession must follow).
  bool openPollingSession(std::string_view ip);
  void closePollingSession(std::string_view ip);

  // `ip` is about to create a room: true if it may.
  bool allowRoomCreation(std::string_view ip, TimePoint now);

  // In a cluster (docs/cluster.md, "Cluster-wide limits"): the addresses holding at least `atLeast` connections on this
  // node, the busiest first, at most `most` of them (one scan of the table: once a heartbeat, not per connection).
  std::vector<std::pair<Address16, uint32_t>> busiest(uint32_t atLeast, std::size_t most) const;
  // The connections each address holds on the other nodes, as they last reported them: counted with this node's own
  // against `connections`. Replaces what the previous call set. From one thread at a time (the cluster's home).
  void setElsewhere(const std::vector<std::pair<Address16, uint32_t>>& counts);

  // Forgets addresses that hold nothing and whose buckets have refilled. Call now and then (each worker's ticker).
  void sweep(TimePoint now);

  // Counts, for metrics and tests.
  std::size_t connections(std::string_view ip) const;
  std::size_t connectionsElsewhere(std::string_view ip) const;
  std::size_t pollingSessions(std::string_view ip) const;
  std::size_t pollingSessionsTotal() const;
  std::size_t tracked() const;
  uint64_t refusals(AddressRefusal why) const;

 private:
  struct Entry;
  struct Shard;
  // The address as counted: IPv6 cut to its /64. nullopt: not limited (exempt, or not an address).
  std::optional<Address16> keyOf(std::string_view ip) const;
  Shard& shardOf(const Address16& key) const;
  // The entry of `key` in its locked shard; created if `create` (nullptr if the table is full: then not limited).
  Entry* lookup(Shard& shard, const Address16& key, bool create) const;
  // `f(Entry&)` on `ip`'s entry, under its shard's lock; `none` when `ip` is not limited or has no entry. (Const:
  // the table lives in shards_, which the limiter's constness does not cover; the counts readers use it too.)
  template <typename R, typename F>
  R withEntry(std::string_view ip, bool create, R none, F&& f) const;
  void refuse(AddressRefusal why) const;

  AddressLimitOptions options_;
  std::unique_ptr<Shard[]> shards_;
  mutable std::array<std::atomic<uint64_t>, static_cast<std::size_t>(AddressRefusal::kCount)> refusals_{};
  std::atomic<std::size_t> pollingTotal_{0};
  std::vector<Address16> elsewhereKeys_;  // the addresses setElsewhere gave a count (its caller's thread only)
};

}  // namespace kaiwa::common
