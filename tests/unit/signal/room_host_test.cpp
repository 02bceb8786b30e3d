#include "signal/room_host.hpp"

#include <gtest/gtest.h>

namespace kaiwa::signal {
namespace {

TEST(RoomHost, CreatesOnDemandAndReapsEmptyRooms) {
  Limits limits;
  std::atomic<std::size_t> count{0};
  RoomHost host(limits, count);
  EXPECT_EQ(host.find("a"), nullptr);
  Room* a = host.findOrCreate("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(host.findOrCreate("a"), a);
  EXPECT_EQ(count.load(), 1u);
  host.reapIfEmpty("a");
  EXPECT_EQ(host.find("a"), nullptr);
  EXPECT_EQ(count.load(), 0u);
}

TEST(RoomHost, MaxRoomsIsSharedAcrossHosts) {
  Limits limits;
  limits.maxRooms = 2;
  std::atomic<std::size_t> count{0};
  RoomHost one(limits, count), two(limits, count);
  EXPECT_NE(one.findOrCreate("a"), nullptr);
  EXPECT_NE(two.findOrCreate("b"), nullptr);
  EXPECT_EQ(one.findOrCreate("c"), nullptr);
  EXPECT_EQ(two.findOrCreate("d"), nullptr);
  EXPECT_NE(one.findOrCreate("a"), nullptr);  // an existing room is still found
  one.reapIfEmpty("a");
  EXPECT_NE(two.findOrCreate("d"), nullptr);
}

TEST(RoomHost, TickExpiresDetachedPeersAndDropsTheEmptyRoom) {
  Limits limits;
  limits.resumeGrace = std::chrono::seconds(1);
  std::atomic<std::size_t> count{0};
  RoomHost host(limits, count);
  Outbox out;
  TimePoint t0{};
  host.findOrCreate("r")->join(JoinRequest{{0, 1}, 1, "A", {}, {}}, t0, out);
  host.find("r")->detach({0, 1}, t0, out);
  host.tick(t0 + std::chrono::milliseconds(500), out);
  EXPECT_NE(host.find("r"), nullptr);
  host.tick(t0 + std::chrono::seconds(2), out);
  EXPECT_EQ(host.find("r"), nullptr);
  EXPECT_EQ(count.load(), 0u);
}

}  // namespace
}  // namespace kaiwa::signal
