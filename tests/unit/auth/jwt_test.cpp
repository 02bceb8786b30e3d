#include "auth/jwt.hpp"

#include <gtest/gtest.h>

#include "common/base64.hpp"

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
