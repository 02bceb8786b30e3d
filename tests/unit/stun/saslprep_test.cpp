// SASLprep (RFC 4013) of TURN credentials: the RFC's examples, the mappings and the prohibited output.
#include "stun/saslprep.hpp"

#include <gtest/gtest.h>

namespace kaiwa::stun {
namespace {

using namespace std::string_literals;

// RFC 4013 section 3.
TEST(Saslprep, Rfc4013Examples) {
  EXPECT_EQ(saslprep("I\u00ADX"), "IX");   // 1: SOFT HYPHEN mapped to nothing
  EXPECT_EQ(saslprep("user"), "user");     // 2: no transformation
  EXPECT_EQ(saslprep("USER"), "USER");     // 3: case preserved, will not match #2
  EXPECT_EQ(saslprep("\u00AA"), "a");      // 4: output is NFKC
  EXPECT_EQ(saslprep("\u2168"), "IX");     // 5: output is NFKC, will match #1
  EXPECT_FALSE(saslprep("\u0007"));        // 6: prohibited character
  EXPECT_FALSE(saslprep("\u0627\u0031"));  // 7: bidirectional check
}

TEST(Saslprep, NonAsciiSpacesBecomeSpaces) {
  EXPECT_EQ(saslprep("pass\u00A0word"), "pass word");  // NO-BREAK SPACE
  EXPECT_EQ(saslprep("a\u2003b\u3000c"), "a b c");     // EM SPACE, IDEOGRAPHIC SPACE
}

TEST(Saslprep, CommonlyMappedToNothingIsRemoved) {
  EXPECT_EQ(saslprep("a\u200Cb\u2060c\uFEFFd\u034Fe\uFE0Ff\u200D"), "abcdef");
  // ZERO WIDTH SPACE is in both tables; libidn (like most SASLprep implementations) maps it to a space.
  EXPECT_EQ(saslprep("a\u200Bb"), "a b");
}

TEST(Saslprep, ProhibitedOutputIsRefused) {
  EXPECT_FALSE(saslprep("al\x01ice"));
  EXPECT_FALSE(saslprep("alice\x7F"));
  EXPECT_FALSE(saslprep("alice\u0085"));   // C1 control
  EXPECT_FALSE(saslprep("ali\0ce"s));      // NUL
  EXPECT_FALSE(saslprep("\uE000"));        // private use
  EXPECT_FALSE(saslprep("a\u200Eb"));      // LEFT-TO-RIGHT MARK (change display properties)
  EXPECT_FALSE(saslprep("\xED\xA0\x80"));  // an encoded surrogate: not UTF-8
  EXPECT_FALSE(saslprep("\xC3"));          // truncated UTF-8
  EXPECT_FALSE(saslprep("\xFF\xFE"));      // not UTF-8
}

TEST(Saslprep, UnassignedCodePointsOnlyInQueries) {
  // U+0221 was unassigned in Unicode 3.2, the version stringprep is fixed to.
  EXPECT_EQ(saslprep("a\u0221", PrepMode::kQuery), "a\u0221");
  EXPECT_FALSE(saslprep("a\u0221", PrepMode::kStored));
  EXPECT_EQ(saslprep("I\u00ADX", PrepMode::kStored), "IX");
}

TEST(Saslprep, PrintableAsciiIsTheIdentity) {
  EXPECT_TRUE(saslprepIdentity("1700000000:kaiwa"));
  EXPECT_TRUE(saslprepIdentity(" ~"));
  EXPECT_FALSE(saslprepIdentity("tab\there"));
  EXPECT_FALSE(saslprepIdentity("caf\u00E9"));
  EXPECT_EQ(saslprep(""), "");
  EXPECT_EQ(saslprep("p@ss w0rd!"), "p@ss w0rd!");
  EXPECT_EQ(saslprep("caf\u00E9"), "caf\u00E9");   // NFKC keeps the precomposed é
  EXPECT_EQ(saslprep("cafe\u0301"), "caf\u00E9");  // and composes e + COMBINING ACUTE
}

}  // namespace
}  // namespace kaiwa::stun
