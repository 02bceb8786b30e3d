#pragma once
// What one node publishes to another in one round (docs/cluster.md, "Batches"): every item for that node queued
// during the round, in one pub/sub message. A batch is text up to its bodies:
//
//   batch = "K1 " from-node "\n" *item
//   item  = kind link-hex " " body-length "\n" body
//
// The bytes come from Redis, written by another kaiwa; still, a batch that does not parse is dropped and counted,
// never trusted: parseBatch returns nullopt and the caller goes on.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kaiwa::cluster {

enum class ItemKind : char {
  // From a client's node to the room's owner.
  kOpen = 'o',   // a new link: body "door\nroom\naddress"
  kFrame = 'm',  // a client's frame, as it came
  kClose = 'c',  // the client's connection is gone: body "1" when it said it was going away, else "0"
  // From the owner back to the client's node.
  kDeliver = 'f',  // a frame for the client
  kEnd = 'x',      // the owner's session closed: body "code reason"
};

struct Item {
  ItemKind kind;
  uint64_t link;  // named by the client's node (its worker in the top 16 bits)
  std::string_view body;
};

struct Batch {
  std::string_view from;
  std::vector<Item> items;
};

class BatchWriter {
 public:
  explicit BatchWriter(std::string_view from);
  void add(ItemKind kind, uint64_t link, std::string_view body);
  bool empty() const { return items_ == 0; }
  std::size_t size() const { return out_.size(); }
  std::size_t items() const { return items_; }
  // The batch so far; the writer starts a new one.
  std::string take();

 private:
  std::string from_;
  std::string out_;
  std::size_t items_ = 0;
};

// Views into `payload`. nullopt for anything malformed (a bad header, a kind it does not know, a length past the end).
std::optional<Batch> parseBatch(std::string_view payload);

bool validNodeId(std::string_view id);

}  // namespace kaiwa::cluster
