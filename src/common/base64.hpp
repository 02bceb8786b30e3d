#pragma once
// Base64 (RFC 4648 section 4) and base64url without padding (section 5), as JWT and TURN REST credentials use.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace kaiwa::common {

std::string base64Encode(std::span<const uint8_t> bytes);
std::string base64UrlEncode(std::span<const uint8_t> bytes);
inline std::string base64UrlEncode(std::string_view s) {
  return base64UrlEncode({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}
// Accepts base64url with or without padding; nullopt on any other character or a bad length.
std::optional<std::string> base64UrlDecode(std::string_view text);

}  // namespace kaiwa::common
