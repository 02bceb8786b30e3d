// fuzz_cluster_load: what a node reads of another's load record (cluster/load).
//  1. parseLoad on the raw input never crashes and keeps to its bound on addresses.
//  2. What parses is encoded again and parses back to the same rooms and addresses.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cluster/load.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr std::size_t kMax = 64;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto load = parseLoad(input, kMax);
  if (!load) return 0;
  if (load->addresses.size() > kMax) std::abort();
  auto back = parseLoad(encodeLoad(*load), kMax);
  if (!back || back->rooms != load->rooms || back->addresses != load->addresses) std::abort();
  return 0;
}
