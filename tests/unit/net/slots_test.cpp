// net::Slots: ids with generations, items destroyed or given up by id, iteration that survives erasure.
#include "net/slots.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kaiwa::net {
namespace {

struct Item {
  std::string name;
  int* destroyed;
  ~Item() { ++*destroyed; }
};

TEST(Slots, FindsByIdAndNeverByAStaleOne) {
  Slots<Item> slots;
  int destroyed = 0;
  SlotId a = slots.insert(std::make_unique<Item>(Item{"a", &destroyed}));
  destroyed = 0;  // (the temporary above)
  ASSERT_NE(a, 0u);
  EXPECT_EQ(slots.find(a)->name, "a");
  slots.erase(a);
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(slots.find(a), nullptr);
  SlotId b = slots.insert(std::make_unique<Item>(Item{"b", &destroyed}));
  EXPECT_EQ(static_cast<uint32_t>(a), static_cast<uint32_t>(b));  // the slot is reused...
  EXPECT_NE(a, b);                                                // ... under a new generation
  EXPECT_EQ(slots.find(a), nullptr);
  EXPECT_EQ(slots.find(b)->name, "b");
  slots.erase(a);  // a stale id destroys nothing
  EXPECT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots.find(0), nullptr);
}

TEST(Slots, TakeGivesTheItemUpWithoutDestroyingIt) {
  Slots<Item> slots, other;
  int destroyed = 0;
  SlotId a = slots.insert(std::make_unique<Item>(Item{"a", &destroyed}));
  destroyed = 0;
  std::unique_ptr<Item> item = slots.take(a);
  ASSERT_TRUE(item);
  EXPECT_EQ(destroyed, 0);
  EXPECT_EQ(slots.find(a), nullptr);
  EXPECT_EQ(slots.take(a), nullptr);
  SlotId moved = other.insert(std::move(item));
  EXPECT_EQ(other.find(moved)->name, "a");
  other.clear();
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(other.size(), 0u);
}

TEST(Slots, ForEachSkipsWhatItsCallbackErases) {
  Slots<Item> slots;
  int destroyed = 0;
  std::vector<SlotId> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(slots.insert(std::make_unique<Item>(Item{std::to_string(i), &destroyed})));
  destroyed = 0;
  std::vector<std::string> seen;
  slots.forEach([&](SlotId id, Item& item) {
    std::string name = item.name;
    seen.push_back(name);
    if (name == "1") slots.erase(ids[2]);  // a later one goes
    if (name == "3") slots.erase(id);      // itself goes (`item` with it)
    if (name == "4") slots.insert(std::make_unique<Item>(Item{"new", &destroyed}));
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1", "3", "4", "5"}));
  EXPECT_EQ(slots.size(), 5u);  // 6 - 2 + 1
}

}  // namespace
}  // namespace kaiwa::net
