// fuzz_cluster_batch: the batches one node publishes to another (cluster/batch).
//  1. parseBatch on the raw input never crashes, and its views lie inside the input.
//  2. What parses is written again by a BatchWriter (same sender, same items) and parses back to the same items.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cluster/batch.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto batch = parseBatch(input);
  if (!batch) return 0;
  auto inside = [&](std::string_view v) {
    return v.empty() || (v.data() >= input.data() && v.data() + v.size() <= input.data() + input.size());
  };
  if (!inside(batch->from)) std::abort();
  BatchWriter writer(batch->from);
  for (const Item& item : batch->items) {
    if (!inside(item.body)) std::abort();
    writer.add(item.kind, item.link, item.body);
  }
  std::string again = writer.take();
  if (batch->items.empty()) return 0;  // a writer with no items writes nothing, not even the header
  auto back = parseBatch(again);
  if (!back || back->from != batch->from || back->items.size() != batch->items.size()) std::abort();
  for (size_t i = 0; i < back->items.size(); ++i) {
    const Item& a = batch->items[i];
    const Item& b = back->items[i];
    if (a.kind != b.kind || a.link != b.link || a.body != b.body) std::abort();
  }
  return 0;
}
