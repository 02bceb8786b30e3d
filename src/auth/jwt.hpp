#pragma once
// Room access tokens: JWT (RFC 7519) signed with HS256 (HMAC-SHA256), claims {room, sub, exp, iat}.
// `room` may be "*" for any room.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa::auth {

struct RoomClaims {
  std::string room;      // a room name or "*"
  std::string user;      // `sub`
  int64_t expires = 0;   // `exp`, seconds since the epoch
  int64_t issuedAt = 0;  // `iat`
  bool record = false;   // `record`: true lets the holder start and stop the room's recording
};

enum class TokenError : uint8_t { kMalformed, kBadSignature, kUnsupportedAlgorithm, kExpired, kWrongRoom };
std::string_view toString(TokenError e);

std::string signRoomToken(const RoomClaims& claims, std::string_view secret);

struct Verified {
  std::optional<RoomClaims> claims;
  TokenError error = TokenError::kMalformed;  // meaningful when !claims
};

// Checks the signature (constant time), the algorithm (HS256 only; "none" is refused), expiry against `nowSeconds`
// and that the token grants `room`.
Verified verifyRoomToken(std::string_view token, std::string_view secret, std::string_view room, int64_t nowSeconds);

}  // namespace kaiwa::auth
