// fuzz_jwt: room tokens (auth/jwt) and base64url (common/base64).
//  1. verifyRoomToken(input, "fuzz-secret", "demo", now) on the raw input: never crashes (seeds signed with that
//     secret reach the claims), and base64UrlDecode of the input, when it succeeds, re-encodes to the same text.
//  2. base64UrlDecode(base64UrlEncode(x)) == x for the input bytes.
//  3. A token signRoomToken() makes for fuzz-chosen claims and secret verifies, with the same claims, for the
//     room it names (or any room for "*"), and fails with the right error for another room, a later time, another
//     secret, or any single changed character.
//  4. Fuzz-chosen header and payload JSON text, correctly signed with the secret (what an issuer holding the
//     secret could produce): verifyRoomToken never crashes and never accepts an `alg` other than HS256.
#include <fuzzer/FuzzedDataProvider.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/jwt.hpp"
#include "common/base64.hpp"
#include "fuzz_util.hpp"

using namespace kaiwa;
using kaiwa::fuzz::validUtf8;

namespace {

constexpr int64_t kNow = 1700000000;  // a fixed "now": runs are reproducible

std::string hmac(std::string_view secret, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

std::string b64(std::string_view s) { return common::base64UrlEncode(s); }

void checkBase64(std::string_view bytes) {
  std::string enc = b64(bytes);
  FUZZ_CHECK(enc.size() == (bytes.size() * 4 + 2) / 3, "encoded length");
  auto dec = common::base64UrlDecode(enc);
  FUZZ_CHECK(dec && *dec == bytes, enc);
  // Padded input is accepted too.
  std::string padded = enc + std::string((4 - enc.size() % 4) % 4, '=');
  auto dec2 = common::base64UrlDecode(padded);
  FUZZ_CHECK(dec2 && *dec2 == bytes, padded);
  // The standard alphabet's encoding has the same length with padding.
  auto std64 = common::base64Encode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  FUZZ_CHECK(std64.size() == (bytes.size() + 2) / 3 * 4, "base64Encode length");
}

void checkDecodeCanonical(std::string_view text) {
  auto dec = common::base64UrlDecode(text);
  if (!dec) return;
  std::string_view stripped = text;
  while (!stripped.empty() && stripped.back() == '=') stripped.remove_suffix(1);
  // Decoding is canonical: only one text (padding aside) decodes to given bytes.
  FUZZ_CHECK(b64(*dec) == stripped, text);
}

bool sameClaims(const auth::RoomClaims& a, const auth::RoomClaims& b) {
  return a.room == b.room && a.user == b.user && a.expires == b.expires && a.issuedAt == b.issuedAt;
}

void checkSigned(FuzzedDataProvider& fdp) {
  auth::RoomClaims c;
  c.room = fdp.ConsumeRandomLengthString(80);
  c.user = fdp.ConsumeRandomLengthString(80);
  c.expires = fdp.ConsumeIntegral<int64_t>();
  c.issuedAt = fdp.ConsumeIntegral<int64_t>();
  std::string secret = fdp.ConsumeRandomLengthString(80);
  std::string otherRoom = fdp.ConsumeRandomLengthString(80);
  std::size_t flip = fdp.ConsumeIntegral<std::size_t>();
  uint8_t flipTo = fdp.ConsumeIntegral<uint8_t>();
  if (c.expires == INT64_MIN) return;  // no "now" before it
  const int64_t now = c.expires - 1;

  std::string token = auth::signRoomToken(c, secret);
  // Claims that are not UTF-8 are not representable in JSON: such tokens are refused (malformed), not accepted.
  if (!validUtf8(c.room) || !validUtf8(c.user)) {
    FUZZ_CHECK(!auth::verifyRoomToken(token, secret, c.room, now).claims, token);
    return;
  }
  std::string room = c.room == "*" ? otherRoom : c.room;
  auto v = auth::verifyRoomToken(token, secret, room, now);
  FUZZ_CHECK(v.claims.has_value(), token + " " + std::string(auth::toString(v.error)));
  FUZZ_CHECK(sameClaims(*v.claims, c), token);

  auto expired = auth::verifyRoomToken(token, secret, room, c.expires);
  FUZZ_CHECK(!expired.claims && expired.error == auth::TokenError::kExpired, token);
  if (c.room != "*" && otherRoom != c.room) {
    auto wrong = auth::verifyRoomToken(token, secret, otherRoom, now);
    FUZZ_CHECK(!wrong.claims && wrong.error == auth::TokenError::kWrongRoom, token);
  }
  // HMAC zero-pads short keys, so "k" and "k\0" are the same key: compare secrets without NUL bytes only.
  if (secret != otherRoom && secret.find('\0') == std::string::npos && otherRoom.find('\0') == std::string::npos) {
    auto bad = auth::verifyRoomToken(token, otherRoom, room, now);
    FUZZ_CHECK(!bad.claims && bad.error == auth::TokenError::kBadSignature, token);
  }
  std::string tampered = token;
  std::size_t at = flip % tampered.size();
  char to = static_cast<char>(flipTo);
  if (tampered[at] != to) {
    tampered[at] = to;
    FUZZ_CHECK(!auth::verifyRoomToken(tampered, secret, room, now).claims, tampered);
  }
}

void checkForged(FuzzedDataProvider& fdp) {
  std::string header = fdp.ConsumeRandomLengthString(200);
  std::string payload = fdp.ConsumeRandomLengthString(400);
  std::string room = fdp.ConsumeRandomLengthString(70);
  int64_t now = fdp.ConsumeIntegral<int64_t>();
  const std::string secret = "fuzz-secret";
  std::string input = b64(header) + "." + b64(payload);
  std::string token = input + "." + b64(hmac(secret, input));
  auto v = auth::verifyRoomToken(token, secret, room, now);
  if (v.claims) {
    auto h = kaiwa::fuzz::parseJson(header);
    FUZZ_CHECK(h && h->is_object(), header);
    const auto* alg = h->as_object().if_contains("alg");
    FUZZ_CHECK(alg && alg->is_string() && alg->as_string() == "HS256", header);
    FUZZ_CHECK(v.claims->room == "*" || v.claims->room == room, payload);
    FUZZ_CHECK(now < v.claims->expires, payload);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  auto v = auth::verifyRoomToken(in, "fuzz-secret", "demo", kNow);
  // The fuzzer cannot forge a signature; only the committed seeds signed with "fuzz-secret" may verify.
  if (v.claims) FUZZ_CHECK(v.claims->room == "*" || v.claims->room == "demo", in);
  (void)auth::toString(v.error);
  checkDecodeCanonical(in);
  checkBase64(in);

  FuzzedDataProvider fdp(data, size);
  checkSigned(fdp);
  checkForged(fdp);
  return 0;
}
