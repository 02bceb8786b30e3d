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

TEST(RoomHost, AnAddressCreatesRoomsAtItsRateAndJoinsExistingOnesFreely) {
  Limits limits;
  common::AddressLimitOptions o;
  o.roomsPerMinute = 1;
  o.roomBurst = 2;
  common::AddressLimits addresses(o);
  std::atomic<std::size_t> count{0};
  RoomHost host(limits, count, &addresses);
  TimePoint t0{};
  ErrorCode why = ErrorCode::kInternal;
  EXPECT_NE(host.findOrCreate("a", {}, RoomCreator{"192.0.2.1", t0}, &why), nullptr);
  EXPECT_NE(host.findOrCreate("b", {}, RoomCreator{"192.0.2.1", t0}, &why), nullptr);
  EXPECT_EQ(host.findOrCreate("c", {}, RoomCreator{"192.0.2.1", t0}, &why), nullptr);
  EXPECT_EQ(why, ErrorCode::kRateLimited);
  EXPECT_EQ(count.load(), 2u);  // the refused room is not counted
  EXPECT_NE(host.findOrCreate("a", {}, RoomCreator{"192.0.2.1", t0}, &why), nullptr);  // existing: no creation
  EXPECT_NE(host.findOrCreate("c", {}, RoomCreator{"192.0.2.2", t0}, &why), nullptr);  // another address
  EXPECT_NE(host.findOrCreate("d", {}, RoomCreator{"192.0.2.1", t0 + std::chrono::seconds(60)}, &why), nullptr);
}

TEST(RoomHost, TheTotalIsCheckedBeforeTheCreatorsRate) {
  Limits limits;
  limits.maxRooms = 1;
  common::AddressLimitOptions o;
  o.roomsPerMinute = 1;
  o.roomBurst = 1;
  common::AddressLimits addresses(o);
  std::atomic<std::size_t> count{0};
  RoomHost host(limits, count, &addresses);
  ErrorCode why = ErrorCode::kInternal;
  EXPECT_NE(host.findOrCreate("a", {}, RoomCreator{"192.0.2.9", {}}, &why), nullptr);
  EXPECT_EQ(host.findOrCreate("b", {}, RoomCreator{"192.0.2.1", {}}, &why), nullptr);
  EXPECT_EQ(why, ErrorCode::kTooManyRooms);
  host.reapIfEmpty("a");
  EXPECT_NE(host.findOrCreate("b", {}, RoomCreator{"192.0.2.1", {}}, &why), nullptr);  // its rate was not used up
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
