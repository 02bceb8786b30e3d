// DATA_CHANNEL_OPEN (RFC 8832 section 5.1): every channel type both ways, the example bytes of a browser's open,
// and refusals of what is not one.
#include "sctp/dcep.hpp"

#include <gtest/gtest.h>

namespace kaiwa::sctp {
namespace {

TEST(DcepTest, ParsesABrowsersOpen) {
  // Chromium's open for createDataChannel('chat', {ordered: false, maxRetransmits: 2, protocol: 'x'}).
  const std::vector<uint8_t> m{0x03, 0x81, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
                               0x04, 0x00, 0x01, 'c',  'h',  'a',  't',  'x'};
  auto p = parseOpen(m);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->ordered);
  EXPECT_EQ(p->reliability, Reliability::kMaxRetransmits);
  EXPECT_EQ(p->reliabilityParameter, 2u);
  EXPECT_EQ(p->priority, 256);
  EXPECT_EQ(p->label, "chat");
  EXPECT_EQ(p->protocol, "x");
}

TEST(DcepTest, EveryChannelTypeRoundTrips) {
  for (bool ordered : {true, false}) {
    for (auto r : {Reliability::kReliable, Reliability::kMaxRetransmits, Reliability::kMaxLifetime}) {
      ChannelParams p{ordered, r, r == Reliability::kReliable ? 0u : 1234u, 512, "label", "proto"};
      auto back = parseOpen(writeOpen(p));
      ASSERT_TRUE(back);
      EXPECT_EQ(back->ordered, ordered);
      EXPECT_EQ(back->reliability, r);
      EXPECT_EQ(back->reliabilityParameter, p.reliabilityParameter);
      EXPECT_EQ(back->priority, 512);
      EXPECT_EQ(back->label, "label");
      EXPECT_EQ(back->protocol, "proto");
    }
  }
}

TEST(DcepTest, RefusesWhatIsNotAnOpen) {
  auto good = writeOpen({.label = "ab", .protocol = "c"});
  EXPECT_TRUE(parseOpen(good));
  auto wrongType = good;
  wrongType[0] = 0x02;
  EXPECT_FALSE(parseOpen(wrongType));
  auto unknownChannelType = good;
  unknownChannelType[1] = 0x03;
  EXPECT_FALSE(parseOpen(unknownChannelType));
  EXPECT_FALSE(parseOpen(std::span(good).first(good.size() - 1))) << "protocol cut short";
  EXPECT_FALSE(parseOpen(std::span(good).first(11)));
  auto longLabel = good;
  longLabel[8] = 0xFF;
  EXPECT_FALSE(parseOpen(longLabel));
  EXPECT_TRUE(isAck(std::vector<uint8_t>{0x02}));
  EXPECT_FALSE(isAck(std::vector<uint8_t>{}));
}

}  // namespace
}  // namespace kaiwa::sctp
