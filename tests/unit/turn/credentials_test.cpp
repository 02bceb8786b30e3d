#include "turn/credentials.hpp"

#include <gtest/gtest.h>

namespace kaiwa::turn {
namespace {

using namespace std::chrono_literals;
const auto kClient = *stun::Address::parse("192.0.2.1:5000");

TEST(Credentials, RestPasswordIsBase64HmacSha1) {
  // echo -n "1700000000:alice" | openssl dgst -sha1 -hmac s3cr3t -binary | base64
  EXPECT_EQ(Credentials::restPassword("s3cr3t", "1700000000:alice").size(), 28u);
  EXPECT_EQ(Credentials::restPassword("s3cr3t", "a"), Credentials::restPassword("s3cr3t", "a"));
  EXPECT_NE(Credentials::restPassword("s3cr3t", "a"), Credentials::restPassword("other", "a"));
}

TEST(Credentials, StaticUsersAndSecretsAtTheSameTime) {
  Credentials c("kaiwa", {{"alice", "alicepw"}}, {"s1", "s2"});
  std::array<Key, Credentials::kMaxKeys> keys;
  ASSERT_EQ(c.keys("alice", 1000, stun::PasswordAlgorithm::kMd5, keys), 1u);
  auto md5 = stun::longTermKeyMd5("alice", "kaiwa", "alicepw");
  EXPECT_TRUE(std::equal(md5.begin(), md5.end(), keys[0].span().begin()));
  EXPECT_EQ(c.keys("bob", 1000, stun::PasswordAlgorithm::kMd5, keys), 0u);
  // REST: one key per secret while not expired, none after.
  ASSERT_EQ(c.keys("2000:bob", 1000, stun::PasswordAlgorithm::kMd5, keys), 2u);
  auto expect = stun::longTermKeyMd5("2000:bob", "kaiwa", Credentials::restPassword("s2", "2000:bob"));
  EXPECT_TRUE(std::equal(expect.begin(), expect.end(), keys[1].span().begin()));
  EXPECT_EQ(c.keys("2000:bob", 2001, stun::PasswordAlgorithm::kMd5, keys), 0u);
  EXPECT_EQ(c.keys("2000", 1000, stun::PasswordAlgorithm::kMd5, keys), 2u);
  EXPECT_EQ(c.keys("x2000:bob", 1000, stun::PasswordAlgorithm::kMd5, keys), 0u);
  ASSERT_EQ(c.keys("2000:bob", 1000, stun::PasswordAlgorithm::kSha256, keys), 2u);
  EXPECT_EQ(keys[0].size, 32);
}

TEST(Credentials, ConfiguredUsersAndRealmAreSaslprepped) {
  // NO-BREAK SPACE → space, SOFT HYPHEN → nothing, NFKC; a user with a control character is left out.
  Credentials c("kai\u00ADwa", {{"j\u00E9r\u00F4me", "pass\u00A0word"}, {"ev\u0007e", "pw"}}, {});
  EXPECT_EQ(c.realm(), "kaiwa");
  std::array<Key, Credentials::kMaxKeys> keys;
  ASSERT_EQ(c.keys("j\u00E9r\u00F4me", 1000, stun::PasswordAlgorithm::kMd5, keys), 1u);
  auto md5 = stun::longTermKeyMd5("j\u00E9r\u00F4me", "kaiwa", "pass word");
  EXPECT_TRUE(std::equal(md5.begin(), md5.end(), keys[0].span().begin()));
  ASSERT_EQ(c.keys("j\u00E9r\u00F4me", 1000, stun::PasswordAlgorithm::kSha256, keys), 1u);
  auto sha = stun::longTermKeySha256("j\u00E9r\u00F4me", "kaiwa", "pass word");
  EXPECT_TRUE(std::equal(sha.begin(), sha.end(), keys[0].span().begin()));
  EXPECT_EQ(c.keys("ev\u0007e", 1000, stun::PasswordAlgorithm::kMd5, keys), 0u);
}

TEST(Credentials, NoncesExpireAndAreBoundToTheClient) {
  Credentials c("kaiwa", {}, {"s"}, 600s);
  TimePoint t0(1000000s);
  auto n = c.makeNonce(kClient, t0);
  EXPECT_TRUE(n.starts_with(kNonceCookie));
  EXPECT_TRUE(c.nonceValid(n, kClient, t0));
  EXPECT_TRUE(c.nonceValid(n, kClient, t0 + 599s));
  EXPECT_FALSE(c.nonceValid(n, kClient, t0 + 600s));
  EXPECT_FALSE(c.nonceValid(n, *stun::Address::parse("192.0.2.2:5000"), t0));
  auto forged = n;
  forged.back() = forged.back() == 'a' ? 'b' : 'a';
  EXPECT_FALSE(c.nonceValid(forged, kClient, t0));
  EXPECT_FALSE(c.nonceValid("short", kClient, t0));
  Credentials other("kaiwa", {}, {"s"}, 600s);  // another process: another nonce key
  EXPECT_FALSE(other.nonceValid(n, kClient, t0));
}

}  // namespace
}  // namespace kaiwa::turn
