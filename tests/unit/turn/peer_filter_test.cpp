// The peer filter: every default-refused range and every IPv6 form that embeds a refused IPv4 address.
#include "turn/peer_filter.hpp"

#include <gtest/gtest.h>

namespace kaiwa::turn {
namespace {

bool allowed(const PeerFilter& f, std::string_view text) {
  auto a = stun::Address::parse(text, true);
  EXPECT_TRUE(a) << text;
  return a && f.allowed(*a);
}

TEST(PeerFilter, PublicAddressesAreAllowed) {
  PeerFilter f;
  EXPECT_TRUE(allowed(f, "8.8.8.8:53"));
  EXPECT_TRUE(allowed(f, "[2001:4860:4860::8888]:53"));
  EXPECT_TRUE(allowed(f, "[::ffff:8.8.8.8]:53"));
}

TEST(PeerFilter, SpecialIPv4RangesAreRefused) {
  PeerFilter f;
  for (auto a : {"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                 "169.254.169.254", "100.64.0.1", "224.0.0.1", "239.255.255.250", "255.255.255.255", "0.0.0.0",
                 "0.1.2.3", "240.0.0.1", "198.18.0.1", "192.0.0.8"})
    EXPECT_FALSE(allowed(f, a)) << a;
  EXPECT_TRUE(allowed(f, "172.32.0.1"));
  EXPECT_TRUE(allowed(f, "11.0.0.1"));
}

TEST(PeerFilter, SpecialIPv6RangesAreRefused) {
  PeerFilter f;
  for (auto a : {"::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1", "ff05::2", "100::1",
                 "64:ff9b:1::a00:1"})
    EXPECT_FALSE(allowed(f, a)) << a;
}

// One test per bypass form: each embeds 127.0.0.1 (or 10.0.0.1) and must be judged as that address.
TEST(PeerFilter, IPv4MappedLoopbackIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:127.0.0.1")); }
TEST(PeerFilter, IPv4MappedPrivateIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:10.0.0.1")); }
TEST(PeerFilter, IPv4CompatibleLoopbackIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::127.0.0.1")); }
TEST(PeerFilter, Nat64LoopbackIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "64:ff9b::7f00:1")); }
TEST(PeerFilter, Nat64PrivateIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "64:ff9b::c0a8:101")); }
TEST(PeerFilter, SixToFourLoopbackIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "2002:7f00:1::1")); }
TEST(PeerFilter, SiitLoopbackIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:0:127.0.0.1")); }
TEST(PeerFilter, SiitPrivateIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:0:a00:1")); }
TEST(PeerFilter, SiitMetadataIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:0:169.254.169.254")); }
TEST(PeerFilter, SiitOfAPublicAddressIsJudgedAsIt) {
  EXPECT_TRUE(allowed(PeerFilter{}, "::ffff:0:8.8.8.8"));
  EXPECT_EQ(normalizePeer(*stun::Address::parse("[::ffff:0:7f00:1]:9")).toString(), "127.0.0.1:9");
  PeerFilter own({}, {}, {*stun::Address::parse("203.0.113.7", true)});
  EXPECT_FALSE(allowed(own, "::ffff:0:203.0.113.7"));
}
// Teredo: server 65.54.227.120, client 127.0.0.1 (obfuscated: 80ff:fffe), and one for a public client.
TEST(PeerFilter, TeredoIsRefused) {
  EXPECT_FALSE(allowed(PeerFilter{}, "2001:0:4136:e378:8000:63bf:80ff:fffe"));
  EXPECT_FALSE(allowed(PeerFilter{}, "2001:0:4136:e378:8000:63bf:3fff:fdd2"));
  EXPECT_FALSE(allowed(PeerFilter{}, "2001::1"));
  EXPECT_TRUE(allowed(PeerFilter{}, "2001:1::1"));  // outside 2001::/32
  PeerFilter f({*Cidr::parse("2001::/32")}, {}, {});
  EXPECT_TRUE(allowed(f, "2001:0:4136:e378:8000:63bf:3fff:fdd2"));  // an operator may allow it
}
TEST(PeerFilter, IPv4MappedUnspecifiedIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:0.0.0.0")); }
TEST(PeerFilter, IPv4MappedBroadcastIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:255.255.255.255")); }
TEST(PeerFilter, IPv4MappedMulticastIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:224.0.0.251")); }
TEST(PeerFilter, IPv4MappedLinkLocalIsRefused) { EXPECT_FALSE(allowed(PeerFilter{}, "::ffff:169.254.169.254")); }

TEST(PeerFilter, NormalizeGivesTheReachedAddress) {
  auto n = normalizePeer(*stun::Address::parse("[::ffff:127.0.0.1]:80"));
  EXPECT_EQ(n.toString(), "127.0.0.1:80");
  EXPECT_EQ(normalizePeer(*stun::Address::parse("[64:ff9b::808:808]:1")).toString(), "8.8.8.8:1");
  EXPECT_EQ(normalizePeer(*stun::Address::parse("[::1]:1")).toString(), "[::1]:1");
}

TEST(PeerFilter, OwnAddressesAreRefused) {
  PeerFilter f({}, {}, {*stun::Address::parse("203.0.113.7", true)});
  EXPECT_FALSE(allowed(f, "203.0.113.7:3478"));
  EXPECT_FALSE(allowed(f, "::ffff:203.0.113.7"));
  EXPECT_TRUE(allowed(f, "203.0.113.8"));
}

TEST(PeerFilter, AllowAndDenyLists) {
  PeerFilter f({*Cidr::parse("127.0.0.0/8"), *Cidr::parse("10.0.0.0/8")},
               {*Cidr::parse("10.9.0.0/16"), *Cidr::parse("8.8.8.8")}, {*stun::Address::parse("127.0.0.1", true)});
  EXPECT_TRUE(allowed(f, "127.0.0.1:5000"));    // allowed even though it is the server's own address
  EXPECT_TRUE(allowed(f, "::ffff:127.0.0.1"));  // judged as 127.0.0.1
  EXPECT_TRUE(allowed(f, "10.1.1.1"));
  EXPECT_FALSE(allowed(f, "10.9.1.1"));  // deny wins
  EXPECT_FALSE(allowed(f, "8.8.8.8"));
  EXPECT_FALSE(allowed(f, "::ffff:8.8.8.8"));
  EXPECT_FALSE(allowed(f, "192.168.0.1"));
}

TEST(Cidr, Parse) {
  EXPECT_TRUE(Cidr::parse("10.0.0.0/8"));
  EXPECT_TRUE(Cidr::parse("::1/128"));
  EXPECT_TRUE(Cidr::parse("1.2.3.4"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/"));
  EXPECT_FALSE(Cidr::parse("nonsense/8"));
  EXPECT_TRUE(Cidr::parse("fc00::/7")->contains(*stun::Address::parse("fd00::1", true)));
}

}  // namespace
}  // namespace kaiwa::turn
