// A node's load record (docs/cluster.md): what encodeLoad writes parses back, and a malformed record is refused.
#include "cluster/load.hpp"

#include <gtest/gtest.h>

namespace kaiwa::cluster {
namespace {

TEST(Load, RoundTrip) {
  Load load;
  load.rooms = 42;
  load.addresses.emplace_back(*common::parseAddress16("192.0.2.7"), 9);
  load.addresses.emplace_back(*common::parseAddress16("2001:db8::"), 130);
  std::string text = encodeLoad(load);
  EXPECT_EQ(text, "L1 42\n00000000000000000000ffffc0000207 9\n20010db8000000000000000000000000 130\n");
  auto back = parseLoad(text, 10);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->rooms, 42u);
  EXPECT_EQ(back->addresses, load.addresses);
  auto empty = parseLoad(encodeLoad(Load{}), 10);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->rooms, 0u);
  EXPECT_TRUE(empty->addresses.empty());
}

TEST(Load, MalformedRecordsAreRefused) {
  const char* bad[] = {
      "",
      "L2 1\n",
      "L1 \n",
      "L1 -1\n",
      "L1 1",                                                  // no end of line
      "L1 1\n00000000000000000000ffffc000020 9\n",             // 31 hex digits
      "L1 1\n00000000000000000000ffffc000020g 9\n",            // not hex
      "L1 1\n00000000000000000000FFFFC0000207 9\n",            // upper case is not what a node writes
      "L1 1\n00000000000000000000ffffc0000207 99999999999\n",  // over 32 bits
      "L1 1\n00000000000000000000ffffc0000207 9",              // no end of line
      "L1 1\n00000000000000000000ffffc0000207  9\n",
  };
  for (const char* text : bad) EXPECT_FALSE(parseLoad(text, 10)) << text;
  // More addresses than the reader takes.
  Load many;
  for (int i = 0; i < 3; ++i) many.addresses.emplace_back(common::Address16{static_cast<uint8_t>(i)}, 1);
  EXPECT_FALSE(parseLoad(encodeLoad(many), 2));
  EXPECT_TRUE(parseLoad(encodeLoad(many), 3));
}

}  // namespace
}  // namespace kaiwa::cluster
