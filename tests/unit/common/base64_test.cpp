#include "common/base64.hpp"

#include <gtest/gtest.h>

namespace kaiwa::common {
namespace {

std::span<const uint8_t> bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// RFC 4648 section 10 test vectors.
TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(base64Encode(bytes("")), "");
  EXPECT_EQ(base64Encode(bytes("f")), "Zg==");
  EXPECT_EQ(base64Encode(bytes("fo")), "Zm8=");
  EXPECT_EQ(base64Encode(bytes("foo")), "Zm9v");
  EXPECT_EQ(base64Encode(bytes("foob")), "Zm9vYg==");
  EXPECT_EQ(base64Encode(bytes("fooba")), "Zm9vYmE=");
  EXPECT_EQ(base64Encode(bytes("foobar")), "Zm9vYmFy");
}

TEST(Base64, UrlAlphabetWithoutPadding) {
  const std::string raw("\xfb\xff\xfe", 3);
  EXPECT_EQ(base64Encode(bytes(raw)), "+//+");
  EXPECT_EQ(base64UrlEncode(raw), "-__-");
  EXPECT_EQ(base64UrlEncode(std::string_view("f")), "Zg");
}

TEST(Base64, UrlDecodeRoundTripsEveryLength) {
  std::string s;
  for (int i = 0; i < 40; ++i) {
    auto back = base64UrlDecode(base64UrlEncode(s));
    ASSERT_TRUE(back.has_value()) << i;
    EXPECT_EQ(*back, s);
    s.push_back(static_cast<char>(i * 37));
  }
}

TEST(Base64, UrlDecodeRejectsForeignCharactersAndBadLengths) {
  EXPECT_FALSE(base64UrlDecode("Zm9v+").has_value());
  EXPECT_FALSE(base64UrlDecode("Zm/v").has_value());
  EXPECT_FALSE(base64UrlDecode("Z").has_value());
  EXPECT_FALSE(base64UrlDecode("Zm9v YQ").has_value());
  EXPECT_FALSE(base64UrlDecode("Zh").has_value());  // non-zero leftover bits: not canonical
  EXPECT_EQ(base64UrlDecode("Zg==").value(), "f");
}

}  // namespace
}  // namespace kaiwa::common
