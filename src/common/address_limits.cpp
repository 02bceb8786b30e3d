#include "common/address_limits.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "common/metrics.hpp"

namespace kaiwa::common {

namespace {

constexpr std::size_t kShards = 16;

// A token bucket whose settings come with each call (every entry of the table has the same ones).
struct Bucket {
  double tokens = -1;  // < 0: full (never used)
  TimePoint last{};

  bool take(TimePoint now, double rate, double burst) {
    if (rate <= 0) return true;
    refill(now, rate, burst);
    if (tokens < 1.0) return false;
    tokens -= 1.0;
    return true;
  }
  void refill(TimePoint now, double rate, double burst) {
    if (tokens < 0) {
      tokens = burst;
      last = now;
      return;
    }
    double elapsed = std::chrono::duration<double>(now - last).count();
    if (elapsed > 0) {
      tokens = std::min(burst, tokens + elapsed * rate);
      last = now;
    }
  }
  bool full(TimePoint now, double rate, double burst) const {
    if (tokens < 0 || rate <= 0) return true;
    double elapsed = std::chrono::duration<double>(now - last).count();
    return tokens + std::max(0.0, elapsed) * rate >= burst;
  }
};

}  // namespace

struct AddressLimits::Entry {
  uint32_t connections = 0;
  uint32_t elsewhere = 0;  // connections on the other nodes of a cluster, as last reported
  uint32_t polling = 0;
  Bucket connects, handshakes, rooms;
};

struct AddressLimits::Shard {
  struct Hash {
    std::size_t operator()(const Address16& a) const noexcept {
      return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(a.data()), a.size()));
    }
  };
  mutable std::mutex mutex;
  std::unordered_map<Address16, Entry, Hash> entries;
};

std::optional<Address16> parseAddress16(std::string_view ip) {
  if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char text[INET6_ADDRSTRLEN];
  std::memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';
  Address16 out{};
  if (ip.find(':') == std::string_view::npos) {
    in_addr v4;
    if (inet_pton(AF_INET, text, &v4) != 1) return std::nullopt;
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text, &v6) != 1) return std::nullopt;
  std::memcpy(out.data(), &v6, 16);
  return out;
}

std::optional<Cidr> parseCidr(std::string_view text) {
  auto slash = text.find('/');
  auto address = parseAddress16(text.substr(0, slash));
  if (!address) return std::nullopt;
  bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  unsigned bits = v4 ? 32 : 128;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || bits > (v4 ? 32u : 128u)) {
      return std::nullopt;
    }
  }
  Cidr c;
  c.bytes = *address;
  c.prefix = static_cast<uint8_t>(v4 ? bits + 96 : bits);
  return c;
}

bool Cidr::contains(const Address16& address) const {
  unsigned full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(bytes.data(), address.data(), full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (bytes[full] & mask) == (address[full] & mask);
}

static_assert(metrics::kAddressRefusalNames.size() == static_cast<std::size_t>(AddressRefusal::kCount));

std::string_view toString(AddressRefusal r) {
  auto i = static_cast<std::size_t>(r);
  return i < metrics::kAddressRefusalNames.size() ? metrics::kAddressRefusalNames[i] : "?";
}

AddressLimits::AddressLimits(AddressLimitOptions options)
    : options_(std::move(options)), shards_(std::make_unique<Shard[]>(kShards)) {}

AddressLimits::~AddressLimits() = default;

std::optional<Address16> AddressLimits::keyOf(std::string_view ip) const {
  auto a = parseAddress16(ip);
  if (!a) return std::nullopt;
  for (const auto& c : options_.exempt) {
    if (c.contains(*a)) return std::nullopt;
  }
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a->data(), kMapped, 12) != 0) std::fill(a->begin() + 8, a->end(), 0);  // IPv6: its /64
  return a;
}

AddressLimits::Shard& AddressLimits::shardOf(const Address16& key) const {
  return shards_[Shard::Hash{}(key) % kShards];
}

AddressLimits::Entry* AddressLimits::lookup(Shard& shard, const Address16& key, bool create) const {
  auto it = shard.entries.find(key);
  if (it != shard.entries.end()) return &it->second;
  if (!create) return nullptr;
  std::size_t perShard = std::max<std::size_t>(1, options_.maxTracked / kShards);
  if (shard.entries.size() >= perShard) {
    // Forget the idle ones first; if every address still holds something, this one goes unlimited rather than
    // unserved (the table's memory is bounded either way).
    for (auto i = shard.entries.begin(); i != shard.entries.end();) {
      const Entry& e = i->second;
      bool idle = e.connections == 0 && e.polling == 0 && e.elsewhere == 0;
      i = idle ? shard.entries.erase(i) : std::next(i);
    }
    if (shard.entries.size() >= perShard) return nullptr;
  }
  return &shard.entries[key];
}

void AddressLimits::refuse(AddressRefusal why) const {
  refusals_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
  metrics::add(metrics::registry().addressRefused[static_cast<std::size_t>(why)]);
}

template <typename R, typename F>
R AddressLimits::withEntry(std::string_view ip, bool create, R none, F&& f) const {
  auto key = keyOf(ip);
  if (!key) return none;
  Shard& shard = shardOf(*key);
  std::lock_guard lock(shard.mutex);
  Entry* e = lookup(shard, *key, create);
  return e ? f(*e) : none;
}

bool AddressLimits::openConnection(std::string_view ip, TimePoint now) {
  return withEntry(ip, true, true, [&](Entry& e) {
    if (options_.connections && std::size_t{e.connections} + e.elsewhere >= options_.connections) {
      refuse(AddressRefusal::kConnections);
      return false;
    }
    if (!e.connects.take(now, options_.connectsPerSecond, options_.connectBurst)) {
      refuse(AddressRefusal::kConnectRate);
      return false;
    }
    ++e.connections;
    return true;
  });
}

void AddressLimits::closeConnection(std::string_view ip) {
  withEntry(ip, false, 0, [](Entry& e) {
    if (e.connections > 0) --e.connections;
    return 0;
  });
}

bool AddressLimits::allowHandshake(std::string_view ip, TimePoint now) {
  return withEntry(ip, true, true, [&](Entry& e) {
    if (e.handshakes.take(now, options_.handshakesPerSecond, options_.handshakeBurst)) return true;
    refuse(AddressRefusal::kHandshakeRate);
    return false;
  });
}

bool AddressLimits::openPollingSession(std::string_view ip) {
  // The total first: it holds for exempt addresses too.
  std::size_t total = pollingTotal_.fetch_add(1, std::memory_order_relaxed);
  if (options_.pollingSessionsTotal && total >= options_.pollingSessionsTotal) {
    pollingTotal_.fetch_sub(1, std::memory_order_relaxed);
    refuse(AddressRefusal::kPollingSessionsTotal);
    return false;
  }
  bool ok = withEntry(ip, true, true, [&](Entry& e) {
    if (options_.pollingSessions && e.polling >= options_.pollingSessions) return false;
    ++e.polling;
    return true;
  });
  if (!ok) {
    pollingTotal_.fetch_sub(1, std::memory_order_relaxed);
    refuse(AddressRefusal::kPollingSessions);
  }
  return ok;
}

void AddressLimits::closePollingSession(std::string_view ip) {
  pollingTotal_.fetch_sub(1, std::memory_order_relaxed);
  withEntry(ip, false, 0, [](Entry& e) {
    if (e.polling > 0) --e.polling;
    return 0;
  });
}

bool AddressLimits::allowRoomCreation(std::string_view ip, TimePoint now) {
  return withEntry(ip, true, true, [&](Entry& e) {
    if (e.rooms.take(now, options_.roomsPerMinute / 60.0, options_.roomBurst)) return true;
    refuse(AddressRefusal::kRoomRate);
    return false;
  });
}

void AddressLimits::sweep(TimePoint now) {
  for (std::size_t s = 0; s < kShards; ++s) {
    Shard& shard = shards_[s];
    std::lock_guard lock(shard.mutex);
    for (auto i = shard.entries.begin(); i != shard.entries.end();) {
      const Entry& e = i->second;
      bool forget = e.connections == 0 && e.polling == 0 && e.elsewhere == 0 &&
                    e.connects.full(now, options_.connectsPerSecond, options_.connectBurst) &&
                    e.handshakes.full(now, options_.handshakesPerSecond, options_.handshakeBurst) &&
                    e.rooms.full(now, options_.roomsPerMinute / 60.0, options_.roomBurst);
      i = forget ? shard.entries.erase(i) : std::next(i);
    }
  }
}

std::size_t AddressLimits::connections(std::string_view ip) const {
  return withEntry(ip, false, std::size_t{0}, [](const Entry& e) { return std::size_t{e.connections}; });
}

std::size_t AddressLimits::connectionsElsewhere(std::string_view ip) const {
  return withEntry(ip, false, std::size_t{0}, [](const Entry& e) { return std::size_t{e.elsewhere}; });
}

std::vector<std::pair<Address16, uint32_t>> AddressLimits::busiest(uint32_t atLeast, std::size_t most) const {
  std::vector<std::pair<Address16, uint32_t>> out;
  if (most == 0) return out;
  atLeast = std::max<uint32_t>(atLeast, 1);
  auto busier = [](const auto& a, const auto& b) { return a.second > b.second; };
  for (std::size_t s = 0; s < kShards; ++s) {
    Shard& shard = shards_[s];
    std::lock_guard lock(shard.mutex);
    for (const auto& [key, e] : shard.entries) {
      if (e.connections < atLeast) continue;
      if (out.size() < most) {
        out.emplace_back(key, e.connections);
        std::push_heap(out.begin(), out.end(), busier);  // a min-heap of the busiest so far
      } else if (e.connections > out.front().second) {
        std::pop_heap(out.begin(), out.end(), busier);
        out.back() = {key, e.connections};
        std::push_heap(out.begin(), out.end(), busier);
      }
    }
  }
  std::sort_heap(out.begin(), out.end(), busier);
  return out;
}

void AddressLimits::setElsewhere(const std::vector<std::pair<Address16, uint32_t>>& counts) {
  for (const Address16& key : elsewhereKeys_) {
    Shard& shard = shardOf(key);
    std::lock_guard lock(shard.mutex);
    if (Entry* e = lookup(shard, key, false)) e->elsewhere = 0;
  }
  elsewhereKeys_.clear();
  for (const auto& [address, count] : counts) {
    if (count == 0) continue;
    // Counted like a connection from that address here: exempt addresses and IPv6 beyond its /64 as keyOf says.
    bool exempt = false;
    for (const auto& c : options_.exempt) exempt = exempt || c.contains(address);
    if (exempt) continue;
    Shard& shard = shardOf(address);
    std::lock_guard lock(shard.mutex);
    if (Entry* e = lookup(shard, address, true)) {
      e->elsewhere = count;
      elsewhereKeys_.push_back(address);
    }
  }
}

std::size_t AddressLimits::pollingSessions(std::string_view ip) const {
  return withEntry(ip, false, std::size_t{0}, [](const Entry& e) { return std::size_t{e.polling}; });
}

std::size_t AddressLimits::pollingSessionsTotal() const { return pollingTotal_.load(std::memory_order_relaxed); }

std::size_t AddressLimits::tracked() const {
  std::size_t n = 0;
  for (std::size_t s = 0; s < kShards; ++s) {
    std::lock_guard lock(shards_[s].mutex);
    n += shards_[s].entries.size();
  }
  return n;
}

uint64_t AddressLimits::refusals(AddressRefusal why) const {
  return refusals_[static_cast<std::size_t>(why)].load(std::memory_order_relaxed);
}

}  // namespace kaiwa::common
