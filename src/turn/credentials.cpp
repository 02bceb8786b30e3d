#include "turn/credentials.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <cstring>

#include "common/base64.hpp"
#include "stun/saslprep.hpp"

namespace kaiwa::turn {

namespace {

std::array<uint8_t, 32> hmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  std::array<uint8_t, 32> out{};
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), int(key.size()), data.data(), data.size(), out.data(), &len);
  return out;
}

constexpr char kHex[] = "0123456789abcdef";

Key toKey(std::span<const uint8_t> bytes) {
  Key k;
  k.size = uint8_t(bytes.size());
  std::memcpy(k.bytes.data(), bytes.data(), bytes.size());
  return k;
}

Key keyFor(std::string_view user, std::string_view realm, std::string_view password, stun::PasswordAlgorithm alg) {
  if (alg == stun::PasswordAlgorithm::kSha256) return toKey(stun::longTermKeySha256(user, realm, password));
  return toKey(stun::longTermKeyMd5(user, realm, password));
}

}  // namespace

Credentials::Credentials(std::string realm, const std::vector<std::pair<std::string, std::string>>& users,
                         std::vector<std::string> secrets, std::chrono::seconds nonceLifetime)
    : realm_(stun::saslprep(realm, stun::PrepMode::kStored).value_or(realm)), secrets_(std::move(secrets)),
      nonceLifetime_(nonceLifetime) {
  for (const auto& [rawName, rawPassword] : users) {
    auto name = stun::saslprep(rawName, stun::PrepMode::kStored);
    auto password = stun::saslprep(rawPassword, stun::PrepMode::kStored);
    if (!name || !password) continue;  // refused at start-up (app/server.cpp); here such a user cannot log in
    users_[*name] = User{*password, stun::longTermKeyMd5(*name, realm_, *password)};
  }
  RAND_bytes(nonceKey_.data(), int(nonceKey_.size()));
}

std::string Credentials::restPassword(std::string_view secret, std::string_view username) {
  std::array<uint8_t, 20> mac{};
  unsigned len = 0;
  HMAC(EVP_sha1(), secret.data(), int(secret.size()), reinterpret_cast<const uint8_t*>(username.data()),
       username.size(), mac.data(), &len);
  return common::base64Encode(mac);
}

std::shared_ptr<const Credentials> Credentials::withUsers(const std::vector<std::pair<std::string, std::string>>& users,
                                                          std::vector<std::string> secrets) const {
  auto next = std::make_shared<Credentials>(realm_, users, std::move(secrets), nonceLifetime_);
  next->nonceKey_ = nonceKey_;
  return next;
}

size_t Credentials::keys(std::string_view username, int64_t nowUnix, stun::PasswordAlgorithm algorithm,
                         std::span<Key, kMaxKeys> out) const {
  size_t n = 0;
  if (auto it = users_.find(std::string(username)); it != users_.end()) {
    out[n++] = algorithm == stun::PasswordAlgorithm::kMd5 ? toKey(it->second.md5)
                                                          : keyFor(username, realm_, it->second.password, algorithm);
  }
  if (secrets_.empty() || username.empty()) return n;
  // "EXPIRY" or "EXPIRY:USER" with EXPIRY in Unix seconds.
  auto colon = username.find(':');
  auto expiryText = username.substr(0, colon);
  int64_t expiry = 0;
  auto [end, ec] = std::from_chars(expiryText.data(), expiryText.data() + expiryText.size(), expiry);
  if (ec != std::errc() || end != expiryText.data() + expiryText.size() || expiry < nowUnix) return n;
  for (const auto& secret : secrets_) {
    if (n == kMaxKeys) break;
    out[n++] = keyFor(username, realm_, restPassword(secret, username), algorithm);
  }
  return n;
}

std::string Credentials::makeNonce(const stun::Address& client, TimePoint now) const {
  auto secs = uint64_t(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  uint8_t data[4 + 16];
  for (int i = 0; i < 4; ++i) data[i] = uint8_t(secs >> (24 - 8 * i));
  std::memcpy(data + 4, client.ip.data(), 16);
  auto mac = hmacSha256(nonceKey_, data);
  std::string nonce(kNonceCookie);
  for (int i = 0; i < 4; ++i) {
    nonce += kHex[data[i] >> 4];
    nonce += kHex[data[i] & 15];
  }
  for (int i = 0; i < 8; ++i) {
    nonce += kHex[mac[i] >> 4];
    nonce += kHex[mac[i] & 15];
  }
  return nonce;
}

bool Credentials::nonceValid(std::string_view nonce, const stun::Address& client, TimePoint now) const {
  if (nonce.size() != kNonceCookie.size() + 24 || !nonce.starts_with(kNonceCookie)) return false;
  auto body = nonce.substr(kNonceCookie.size());
  uint32_t stamp = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + 8, stamp, 16);
  if (ec != std::errc() || end != body.data() + 8) return false;
  // 32-bit seconds: compare modulo 2^32.
  auto nowSecs = uint64_t(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  uint32_t age = uint32_t(nowSecs) - stamp;
  if (age >= uint64_t(nonceLifetime_.count())) return false;
  uint64_t secs = nowSecs - age;
  // Recompute and compare in constant time.
  auto expected = makeNonce(client, TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(secs))));
  uint8_t diff = 0;
  for (size_t i = 0; i < nonce.size(); ++i) diff |= uint8_t(nonce[i] ^ expected[i]);
  return diff == 0;
}

}  // namespace kaiwa::turn
