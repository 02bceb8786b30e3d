#include "auth/jwt.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <cstdint>

#include "common/base64.hpp"

namespace kaiwa::auth {
namespace json = boost::json;
namespace {

std::string hmacSha256(std::string_view secret, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

std::optional<json::object> parseObject(std::string_view b64) {
  auto raw = common::base64UrlDecode(b64);
  if (!raw) return std::nullopt;
  std::error_code ec;
  json::value v = json::parse(*raw, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

}  // namespace

std::string_view toString(TokenError e) {
  switch (e) {
    case TokenError::kMalformed:
      return "malformed token";
    case TokenError::kBadSignature:
      return "bad signature";
    case TokenError::kUnsupportedAlgorithm:
      return "unsupported algorithm (HS256 expected)";
    case TokenError::kExpired:
      return "token expired";
    case TokenError::kWrongRoom:
      return "token is for another room";
  }
  return "malformed token";
}

std::string signRoomToken(const RoomClaims& claims, std::string_view secret) {
  std::string header = common::base64UrlEncode(std::string_view(R"({"alg":"HS256","typ":"JWT"})"));
  json::object payload{{"room", claims.room}, {"sub", claims.user}, {"exp", claims.expires}};
  if (claims.issuedAt) payload["iat"] = claims.issuedAt;
  if (claims.record) payload["record"] = true;
  std::string signingInput = header + "." + common::base64UrlEncode(json::serialize(payload));
  return signingInput + "." + common::base64UrlEncode(hmacSha256(secret, signingInput));
}

Verified verifyRoomToken(std::string_view token, std::string_view secret, std::string_view room, int64_t nowSeconds) {
  Verified out;
  auto dot1 = token.find('.');
  auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) return out;
  auto header = parseObject(token.substr(0, dot1));
  if (!header) return out;
  const json::value* alg = header->if_contains("alg");
  if (!alg || !alg->is_string() || alg->get_string() != "HS256") {
    out.error = TokenError::kUnsupportedAlgorithm;
    return out;
  }
  auto sig = common::base64UrlDecode(token.substr(dot2 + 1));
  if (!sig) return out;
  std::string expected = hmacSha256(secret, token.substr(0, dot2));
  if (sig->size() != expected.size() || CRYPTO_memcmp(sig->data(), expected.data(), expected.size()) != 0) {
    out.error = TokenError::kBadSignature;
    return out;
  }
  auto payload = parseObject(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload) return out;
  RoomClaims c;
  const json::value* r = payload->if_contains("room");
  const json::value* s = payload->if_contains("sub");
  const json::value* e = payload->if_contains("exp");
  if (!r || !r->is_string() || !e || !(e->is_int64() || e->is_uint64() || e->is_double())) return out;
  c.room = std::string(r->get_string());
  if (s && s->is_string()) c.user = std::string(s->get_string());
  if (e->is_int64()) {
    c.expires = e->get_int64();
  } else if (e->is_uint64()) {
    c.expires = e->get_uint64() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(e->get_uint64());
  } else {
    double d = e->get_double();  // a cast of an out-of-range double is undefined: clamp first
    if (!std::isfinite(d)) return out;
    c.expires = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : static_cast<int64_t>(d);
  }
  if (const json::value* iat = payload->if_contains("iat"); iat && iat->is_int64()) c.issuedAt = iat->get_int64();
  if (const json::value* rec = payload->if_contains("record"); rec && rec->is_bool()) c.record = rec->get_bool();
  if (nowSeconds >= c.expires) {
    out.error = TokenError::kExpired;
    return out;
  }
  if (c.room != "*" && c.room != room) {
    out.error = TokenError::kWrongRoom;
    return out;
  }
  out.claims = std::move(c);
  return out;
}

}  // namespace kaiwa::auth
