#pragma once
// SASLprep (RFC 4013), the stringprep profile RFC 5389/8489 long-term credentials use for the username, the realm
// and the password: non-ASCII spaces become U+0020, "commonly mapped to nothing" characters (soft hyphen, zero-width
// joiners, variation selectors, …) are removed, the result is NFKC-normalized, and prohibited output (control
// characters, private use, surrogates, non-characters, …) or a bidi violation is refused. libidn's stringprep does
// the work; printable ASCII, which SASLprep leaves as it is, never reaches it (no allocation, no library call).
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa::stun {

enum class PrepMode {
  kQuery,   // a received string: unassigned code points are let through (RFC 3454 section 7)
  kStored,  // a configured string: unassigned code points are refused
};

// The prepared UTF-8 string, or nothing when `in` is not UTF-8 or holds prohibited output.
std::optional<std::string> saslprep(std::string_view in, PrepMode mode = PrepMode::kQuery);

// True when SASLprep maps `in` to itself without looking it up: printable ASCII (0x20–0x7E).
bool saslprepIdentity(std::string_view in);

}  // namespace kaiwa::stun
