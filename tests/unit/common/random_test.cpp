#include "common/random.hpp"

#include <gtest/gtest.h>

#include <set>

namespace kaiwa::common {
namespace {

TEST(RandomToken, HasTheLengthAndAlphabetAsked) {
  for (std::size_t n : {0u, 1u, 12u, 100u}) {
    std::string t = randomToken(n);
    EXPECT_EQ(t.size(), n);
    for (char c : t) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << c;
  }
}

TEST(RandomToken, DoesNotRepeatAndUsesTheWholeAlphabet) {
  std::set<std::string> seen;
  std::set<char> chars;
  for (int i = 0; i < 2000; ++i) {
    std::string t = randomToken(12);
    EXPECT_TRUE(seen.insert(t).second);
    chars.insert(t.begin(), t.end());
  }
  EXPECT_EQ(chars.size(), 62u);
}

}  // namespace
}  // namespace kaiwa::common
