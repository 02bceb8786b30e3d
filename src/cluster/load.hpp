#pragma once
// What a node tells the others once a heartbeat (docs/cluster.md, "The cluster's view and cluster-wide limits"), in
// its key kaiwa:load:<id>: how many rooms it holds and the client addresses that hold the most connections on it.
//
//   load    = "L1 " rooms "\n" *address
//   address = 32HEXDIG " " count "\n"          (the 16 bytes of common::Address16, lower-case hex)
//
// The bytes come from Redis, written by another kaiwa; still, a load that does not parse is ignored (parseLoad
// returns nullopt), never trusted.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/address_limits.hpp"

namespace kaiwa::cluster {

struct Load {
  uint64_t rooms = 0;
  std::vector<std::pair<common::Address16, uint32_t>> addresses;
};

std::string encodeLoad(const Load& load);
// nullopt for anything malformed, or for more than `maxAddresses` addresses.
std::optional<Load> parseLoad(std::string_view text, std::size_t maxAddresses);

}  // namespace kaiwa::cluster
