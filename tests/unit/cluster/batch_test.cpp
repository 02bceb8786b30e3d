// cluster batches: what a writer makes parses back item by item, and malformed batches are refused, not trusted.
#include "cluster/batch.hpp"

#include <gtest/gtest.h>

namespace kaiwa::cluster {
namespace {

TEST(Batch, RoundTrip) {
  BatchWriter w("node-a:8080");
  EXPECT_TRUE(w.empty());
  w.add(ItemKind::kOpen, 0x1000000000001, "native\nroom\n127.0.0.1");
  w.add(ItemKind::kFrame, 7, std::string("{\"type\":\"chat\"}\n\0x", 19));
  w.add(ItemKind::kClose, 7, "1");
  w.add(ItemKind::kDeliver, 8, "");
  EXPECT_EQ(w.items(), 4u);
  std::string text = w.take();
  EXPECT_TRUE(w.empty());
  auto b = parseBatch(text);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->from, "node-a:8080");
  ASSERT_EQ(b->items.size(), 4u);
  EXPECT_EQ(b->items[0].kind, ItemKind::kOpen);
  EXPECT_EQ(b->items[0].link, 0x1000000000001u);
  EXPECT_EQ(b->items[0].body, "native\nroom\n127.0.0.1");
  EXPECT_EQ(b->items[1].body, std::string_view("{\"type\":\"chat\"}\n\0x", 19));
  EXPECT_EQ(b->items[2].kind, ItemKind::kClose);
  EXPECT_EQ(b->items[3].body, "");
  // The writer starts a new batch with its header.
  w.add(ItemKind::kEnd, 9, "1001 gone");
  const std::string second = w.take();  // the batch's views point into it
  auto again = parseBatch(second);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->items.at(0).body, "1001 gone");
}

TEST(Batch, RefusesMalformedBatches) {
  for (std::string_view bad :
       {"", "K1", "K1 \n", "K2 a\n", "K1 a b\n", "K1 a\nz1 0\n", "K1 a\nm1 5\nabc", "K1 a\nm 1\nx", "K1 a\nmzz 1\nx",
        "K1 a\nm1 -1\nx", "K1 a\nm1 1", "K1 a\nm1 1x\nx", "K1 a\nm1 99999999999999999999999\nx"}) {
    EXPECT_FALSE(parseBatch(bad)) << bad;
  }
  EXPECT_TRUE(parseBatch("K1 a\n"));  // no items
}

TEST(Batch, NodeIds) {
  EXPECT_TRUE(validNodeId("host:8080"));
  EXPECT_FALSE(validNodeId(""));
  EXPECT_FALSE(validNodeId("a b"));
  EXPECT_FALSE(validNodeId("a\nb"));
  EXPECT_FALSE(validNodeId(std::string(129, 'a')));
}

}  // namespace
}  // namespace kaiwa::cluster
