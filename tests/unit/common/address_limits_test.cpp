#include "common/address_limits.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kaiwa::common {
namespace {

using namespace std::chrono_literals;

TimePoint t0() { return TimePoint{} + 1000s; }

TEST(AddressLimitsTest, ParsesAddressesAndNetworks) {
  EXPECT_TRUE(parseAddress16("192.0.2.1"));
  EXPECT_TRUE(parseAddress16("2001:db8::1"));
  EXPECT_FALSE(parseAddress16(""));
  EXPECT_FALSE(parseAddress16("[::1]"));
  EXPECT_FALSE(parseAddress16("example.org"));
  EXPECT_FALSE(parseAddress16(std::string(100, '1')));

  auto lan = parseCidr("10.0.0.0/8");
  ASSERT_TRUE(lan);
  EXPECT_TRUE(lan->contains(*parseAddress16("10.200.3.4")));
  EXPECT_TRUE(lan->contains(*parseAddress16("::ffff:10.1.1.1")));  // the same address, mapped
  EXPECT_FALSE(lan->contains(*parseAddress16("11.0.0.1")));
  auto host = parseCidr("::1");
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->contains(*parseAddress16("::1")));
  EXPECT_FALSE(host->contains(*parseAddress16("::2")));
  auto odd = parseCidr("2001:db8:80::/41");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains(*parseAddress16("2001:db8:80::5")));
  EXPECT_FALSE(odd->contains(*parseAddress16("2001:db8:0::5")));
  EXPECT_FALSE(parseCidr("10.0.0.0/33"));
  EXPECT_FALSE(parseCidr("10.0.0.0/"));
  EXPECT_FALSE(parseCidr("10.0.0.0/8x"));
  EXPECT_FALSE(parseCidr("nonsense/8"));
}

TEST(AddressLimitsTest, ConcurrentConnectionsPerAddress) {
  AddressLimitOptions o;
  o.connections = 3;
  o.connectsPerSecond = 0;
  AddressLimits limits(o);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limits.openConnection("198.51.100.7", t0()));
  EXPECT_FALSE(limits.openConnection("198.51.100.7", t0()));
  EXPECT_TRUE(limits.openConnection("198.51.100.8", t0()));  // another address is not affected
  EXPECT_EQ(limits.connections("198.51.100.7"), 3u);
  limits.closeConnection("198.51.100.7");
  EXPECT_TRUE(limits.openConnection("198.51.100.7", t0()));
  EXPECT_EQ(limits.refusals(AddressRefusal::kConnections), 1u);
}

TEST(AddressLimitsTest, AnIpv6HostIsCountedByItsSlash64) {
  AddressLimitOptions o;
  o.connections = 2;
  o.connectsPerSecond = 0;
  AddressLimits limits(o);
  EXPECT_TRUE(limits.openConnection("2001:db8:1:2::1", t0()));
  EXPECT_TRUE(limits.openConnection("2001:db8:1:2:ffff::9", t0()));
  EXPECT_FALSE(limits.openConnection("2001:db8:1:2:abcd::1", t0()));  // same /64
  EXPECT_TRUE(limits.openConnection("2001:db8:1:3::1", t0()));        // the next /64
}

TEST(AddressLimitsTest, NewConnectionsPerSecondRefillOverTime) {
  AddressLimitOptions o;
  o.connections = 0;
  o.connectsPerSecond = 2;
  o.connectBurst = 4;
  AddressLimits limits(o);
  int allowed = 0;
  for (int i = 0; i < 10; ++i) {
    if (limits.openConnection("203.0.113.1", t0())) ++allowed;
  }
  EXPECT_EQ(allowed, 4);
  EXPECT_TRUE(limits.openConnection("203.0.113.1", t0() + 500ms));  // one token back
  EXPECT_FALSE(limits.openConnection("203.0.113.1", t0() + 500ms));
  EXPECT_EQ(limits.refusals(AddressRefusal::kConnectRate), 7u);
}

TEST(AddressLimitsTest, HandshakesAndRoomsAreRateLimited) {
  AddressLimitOptions o;
  o.handshakesPerSecond = 1;
  o.handshakeBurst = 2;
  o.roomsPerMinute = 6;  // one each 10 s
  o.roomBurst = 1;
  AddressLimits limits(o);
  EXPECT_TRUE(limits.allowHandshake("192.0.2.5", t0()));
  EXPECT_TRUE(limits.allowHandshake("192.0.2.5", t0()));
  EXPECT_FALSE(limits.allowHandshake("192.0.2.5", t0()));
  EXPECT_TRUE(limits.allowHandshake("192.0.2.5", t0() + 1s));
  EXPECT_TRUE(limits.allowRoomCreation("192.0.2.5", t0()));
  EXPECT_FALSE(limits.allowRoomCreation("192.0.2.5", t0() + 9s));
  EXPECT_TRUE(limits.allowRoomCreation("192.0.2.5", t0() + 10s));
  EXPECT_TRUE(limits.allowRoomCreation("192.0.2.6", t0()));
}

TEST(AddressLimitsTest, PollingSessionsPerAddressAndInTotal) {
  AddressLimitOptions o;
  o.pollingSessions = 2;
  o.pollingSessionsTotal = 3;
  o.exempt = {*parseCidr("127.0.0.0/8")};
  AddressLimits limits(o);
  EXPECT_TRUE(limits.openPollingSession("192.0.2.1"));
  EXPECT_TRUE(limits.openPollingSession("192.0.2.1"));
  EXPECT_FALSE(limits.openPollingSession("192.0.2.1"));
  EXPECT_EQ(limits.refusals(AddressRefusal::kPollingSessions), 1u);
  EXPECT_TRUE(limits.openPollingSession("127.0.0.1"));   // exempt from the per-address limit...
  EXPECT_FALSE(limits.openPollingSession("127.0.0.1"));  // ...but not from the total
  EXPECT_EQ(limits.refusals(AddressRefusal::kPollingSessionsTotal), 1u);
  EXPECT_EQ(limits.pollingSessionsTotal(), 3u);
  limits.closePollingSession("192.0.2.1");
  EXPECT_EQ(limits.pollingSessions("192.0.2.1"), 1u);
  EXPECT_TRUE(limits.openPollingSession("198.51.100.1"));
}

TEST(AddressLimitsTest, ExemptAndUnparsableAddressesAreNotLimited) {
  AddressLimitOptions o;
  o.connections = 1;
  o.exempt = {*parseCidr("10.0.0.0/8"), *parseCidr("::1")};
  AddressLimits limits(o);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(limits.openConnection("10.1.2.3", t0()));
    EXPECT_TRUE(limits.openConnection("::1", t0()));
    EXPECT_TRUE(limits.openConnection("", t0()));
  }
  EXPECT_EQ(limits.tracked(), 0u);
  EXPECT_TRUE(limits.openConnection("::2", t0()));
  EXPECT_FALSE(limits.openConnection("::2", t0()));
}

TEST(AddressLimitsTest, SweepForgetsOnlyIdleRefilledAddresses) {
  AddressLimitOptions o;
  o.connectsPerSecond = 1;
  o.connectBurst = 2;
  AddressLimits limits(o);
  ASSERT_TRUE(limits.openConnection("192.0.2.1", t0()));  // held open
  ASSERT_TRUE(limits.openConnection("192.0.2.2", t0()));
  limits.closeConnection("192.0.2.2");  // idle, bucket not yet full
  limits.sweep(t0());
  EXPECT_EQ(limits.tracked(), 2u);  // forgetting 192.0.2.2 now would refill its bucket early
  limits.sweep(t0() + 2s);
  EXPECT_EQ(limits.tracked(), 1u);
  EXPECT_EQ(limits.connections("192.0.2.1"), 1u);
}

TEST(AddressLimitsTest, TheTableIsBoundedAndAFullTableLimitsNoOne) {
  AddressLimitOptions o;
  o.connections = 1;
  o.connectsPerSecond = 0;
  o.maxTracked = 16;  // one per shard
  AddressLimits limits(o);
  for (int i = 0; i < 200; ++i) {
    std::string ip = "192.0.2." + std::to_string(i);
    EXPECT_TRUE(limits.openConnection(ip, t0()));  // each its first: allowed, tracked or not
  }
  EXPECT_LE(limits.tracked(), 16u);
}

// A cluster (docs/cluster.md): a node shares its busiest addresses, and the others' counts count here.
TEST(AddressLimitsTest, TheBusiestAddressesAndConnectionsElsewhere) {
  AddressLimitOptions o;
  o.connections = 4;
  o.connectsPerSecond = 0;
  AddressLimits limits(o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(limits.openConnection("192.0.2.1", t0()));
  ASSERT_TRUE(limits.openConnection("192.0.2.2", t0()));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(limits.openConnection("2001:db8::1", t0()));
  auto busiest = limits.busiest(2, 10);  // the ones with two or more, the busiest first
  ASSERT_EQ(busiest.size(), 2u);
  EXPECT_EQ(busiest[0].first, *parseAddress16("192.0.2.1"));
  EXPECT_EQ(busiest[0].second, 3u);
  EXPECT_EQ(busiest[1].first, *parseAddress16("2001:db8::"));  // counted by its /64
  EXPECT_EQ(busiest[1].second, 2u);
  ASSERT_EQ(limits.busiest(1, 1).size(), 1u);  // at most `most`, the busiest kept
  EXPECT_EQ(limits.busiest(1, 1)[0].second, 3u);

  // Three held on other nodes: 192.0.2.2 has one here, so one more reaches the limit of four.
  limits.setElsewhere({{*parseAddress16("192.0.2.2"), 3}, {*parseAddress16("198.51.100.9"), 4}});
  EXPECT_EQ(limits.connectionsElsewhere("192.0.2.2"), 3u);
  EXPECT_FALSE(limits.openConnection("192.0.2.2", t0()));
  EXPECT_FALSE(limits.openConnection("198.51.100.9", t0()));  // none here, four elsewhere
  EXPECT_EQ(limits.refusals(AddressRefusal::kConnections), 2u);
  EXPECT_EQ(limits.busiest(1, 10).size(), 3u);  // only this node's own connections are reported
  limits.sweep(t0() + std::chrono::hours(1));
  EXPECT_EQ(limits.connectionsElsewhere("198.51.100.9"), 4u);  // not forgotten while others report it
  // The next report replaces this one: what is not in it counts no more.
  limits.setElsewhere({{*parseAddress16("192.0.2.2"), 2}});
  EXPECT_EQ(limits.connectionsElsewhere("198.51.100.9"), 0u);
  EXPECT_TRUE(limits.openConnection("198.51.100.9", t0()));
  EXPECT_TRUE(limits.openConnection("192.0.2.2", t0()));  // 2 here + 2 elsewhere
  EXPECT_FALSE(limits.openConnection("192.0.2.2", t0()));
  limits.setElsewhere({});
  EXPECT_TRUE(limits.openConnection("192.0.2.2", t0()));
}

}  // namespace
}  // namespace kaiwa::common
