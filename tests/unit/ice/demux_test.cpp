// The media port's demultiplexer: ufrags, then remote addresses, to transports; moves and bounds.
#include "ice/demux.hpp"

#include <gtest/gtest.h>

namespace kaiwa::ice {
namespace {

common::Address addr(uint16_t port) { return common::Address::v4(0x7F000001, port); }

TEST(IceDemux, RoutesByUfragThenByAddress) {
  Demux d;
  EXPECT_TRUE(d.addUfrag("aaaa", 1));
  EXPECT_TRUE(d.addUfrag("bbbb", 2));
  EXPECT_FALSE(d.addUfrag("aaaa", 2));  // taken by another transport
  EXPECT_TRUE(d.addUfrag("aaaa", 1));   // (already its own)
  EXPECT_FALSE(d.addUfrag("", 3));
  EXPECT_EQ(d.byUfrag("aaaa"), 1u);
  EXPECT_EQ(d.byUfrag("bbbb"), 2u);
  EXPECT_FALSE(d.byUfrag("cccc"));
  EXPECT_FALSE(d.byTuple(addr(1000)));  // media from an address no check came from is not routed
  EXPECT_TRUE(d.bind(addr(1000), 1));
  EXPECT_EQ(d.byTuple(addr(1000)), 1u);
  EXPECT_FALSE(d.byTuple(addr(1001)));
}

TEST(IceDemux, AnAddressMovesToTheTransportThatValidatedItLast) {
  Demux d;
  d.bind(addr(1000), 1);
  d.bind(addr(1000), 2);
  EXPECT_EQ(d.byTuple(addr(1000)), 2u);
  EXPECT_EQ(d.tuples(), 1u);
  d.remove(1);  // transport 1 no longer owns it: removing it leaves 2's route alone
  EXPECT_EQ(d.byTuple(addr(1000)), 2u);
}

TEST(IceDemux, RemovingATransportForgetsItsUfragsAndAddresses) {
  Demux d;
  d.addUfrag("old", 7);
  d.addUfrag("new", 7);                  // during an ICE restart
  EXPECT_FALSE(d.addUfrag("third", 7));  // two at most per transport
  d.bind(addr(1), 7);
  d.bind(addr(2), 7);
  d.addUfrag("other", 8);
  d.bind(addr(3), 8);
  d.removeUfrag("old");
  EXPECT_FALSE(d.byUfrag("old"));
  EXPECT_TRUE(d.addUfrag("third", 7));
  d.remove(7);
  EXPECT_FALSE(d.byUfrag("new"));
  EXPECT_FALSE(d.byUfrag("third"));
  EXPECT_FALSE(d.byTuple(addr(1)));
  EXPECT_FALSE(d.byTuple(addr(2)));
  EXPECT_EQ(d.byTuple(addr(3)), 8u);
  EXPECT_EQ(d.byUfrag("other"), 8u);
  EXPECT_EQ(d.tuples(), 1u);
  EXPECT_EQ(d.ufrags(), 1u);
}

TEST(IceDemux, ATransportKeepsItsNewestAddressesOnly) {
  Demux d({.maxTuples = 100, .maxTuplesPerTransport = 3});
  for (uint16_t p = 1; p <= 10; ++p) EXPECT_TRUE(d.bind(addr(p), 1));
  EXPECT_EQ(d.tuples(), 3u);
  EXPECT_FALSE(d.byTuple(addr(7)));
  for (uint16_t p = 8; p <= 10; ++p) EXPECT_EQ(d.byTuple(addr(p)), 1u);
  d.unbind(addr(9));
  EXPECT_FALSE(d.byTuple(addr(9)));
  EXPECT_EQ(d.tuples(), 2u);
}

TEST(IceDemux, TheTableIsBoundedInAll) {
  Demux d({.maxTuples = 4, .maxTuplesPerTransport = 8});
  for (uint16_t p = 1; p <= 4; ++p) EXPECT_TRUE(d.bind(addr(p), p));
  EXPECT_FALSE(d.bind(addr(5), 5));
  EXPECT_FALSE(d.byTuple(addr(5)));
  EXPECT_TRUE(d.bind(addr(1), 2));  // moving an address needs no new room
  d.remove(3);
  EXPECT_TRUE(d.bind(addr(5), 5));
  EXPECT_EQ(d.tuples(), 4u);
}

}  // namespace
}  // namespace kaiwa::ice
