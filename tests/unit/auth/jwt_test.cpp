#include "auth/jwt.hpp"

#include <gtest/gtest.h>

#include "common/base64.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace kaiwa::auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;

TEST(Jwt, SignedTokenVerifiesForItsRoom) {
  std::string t = signRoomToken({"demo", "alice", kNow + 60, kNow}, "s3cret");
  auto v = verifyRoomToken(t, "s3cret", "demo", kNow);
  ASSERT_TRUE(v.claims.has_value());
  EXPECT_EQ(v.claims->room, "demo");
  EXPECT_EQ(v.claims->user, "alice");
  EXPECT_EQ(v.claims->expires, kNow + 60);
}

TEST(Jwt, WildcardRoomGrantsAnyRoom) {
  std::string t = signRoomToken({"*", "ops", kNow + 60, kNow}, "k");
  EXPECT_TRUE(verifyRoomToken(t, "k", "anything", kNow).claims.has_value());
}

TEST(Jwt, RefusesWrongSecretWrongRoomAndExpiry) {
  std::string t = signRoomToken({"demo", "alice", kNow + 60, kNow}, "s3cret");
  EXPECT_EQ(verifyRoomToken(t, "other", "demo", kNow).error, TokenError::kBadSignature);
  EXPECT_EQ(verifyRoomToken(t, "s3cret", "elsewhere", kNow).error, TokenError::kWrongRoom);
  EXPECT_EQ(verifyRoomToken(t, "s3cret", "demo", kNow + 60).error, TokenError::kExpired);
  EXPECT_FALSE(verifyRoomToken(t, "s3cret", "demo", kNow + 60).claims.has_value());
}

TEST(Jwt, RefusesTamperedPayload) {
  std::string t = signRoomToken({"demo", "alice", kNow + 60, kNow}, "s3cret");
  auto dot1 = t.find('.');
  auto dot2 = t.find('.', dot1 + 1);
  std::string forged = common::base64UrlEncode(std::string_view(R"({"room":"*","sub":"mallory","exp":9999999999})"));
  std::string tampered = t.substr(0, dot1 + 1) + forged + t.substr(dot2);
  EXPECT_EQ(verifyRoomToken(tampered, "s3cret", "demo", kNow).error, TokenError::kBadSignature);
}

TEST(Jwt, RefusesAlgNone) {
  std::string header = common::base64UrlEncode(std::string_view(R"({"alg":"none","typ":"JWT"})"));
  std::string payload = common::base64UrlEncode(std::string_view(R"({"room":"demo","sub":"x","exp":9999999999})"));
  auto v = verifyRoomToken(header + "." + payload + ".", "s3cret", "demo", kNow);
  EXPECT_FALSE(v.claims.has_value());
  EXPECT_EQ(v.error, TokenError::kUnsupportedAlgorithm);
}

TEST(Jwt, MalformedInputIsRefusedNotThrown) {
  for (std::string_view bad : {"", ".", "..", "a.b.c", "a.b.c.d", "eyJhbGciOiJIUzI1NiJ9..", "%%%.%%%.%%%"}) {
    EXPECT_FALSE(verifyRoomToken(bad, "s", "demo", kNow).claims.has_value()) << bad;
  }
}

}  // namespace
}  // namespace kaiwa::auth

namespace kaiwa::auth {
namespace {

// A token with a hand-written payload, signed with HS256 like kaiwa signs.
std::string signPayload(std::string_view payload, std::string_view secret) {
  std::string input = common::base64UrlEncode(std::string_view(R"({"alg":"HS256","typ":"JWT"})")) + "." +
                      common::base64UrlEncode(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + common::base64UrlEncode(std::span<const uint8_t>(mac, len));
}

TEST(Jwt, OutOfRangeExpiryIsClampedNotUndefined) {
  EXPECT_TRUE(verifyRoomToken(signPayload(R"({"room":"r","exp":1e300})", "k"), "k", "r", kNow).claims.has_value());
  EXPECT_EQ(verifyRoomToken(signPayload(R"({"room":"r","exp":-1e300})", "k"), "k", "r", kNow).error,
            TokenError::kExpired);
  EXPECT_TRUE(verifyRoomToken(signPayload(R"({"room":"r","exp":18446744073709551615})", "k"), "k", "r", kNow)
                  .claims.has_value());
  // A fractional exp is truncated: 1800000000.5 has passed at 1800000000.
  EXPECT_EQ(verifyRoomToken(signPayload(R"({"room":"r","exp":1800000000.5})", "k"), "k", "r", kNow).error,
            TokenError::kExpired);
}

}  // namespace
}  // namespace kaiwa::auth
