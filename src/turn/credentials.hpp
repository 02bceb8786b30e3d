#pragma once
// Long-term credentials for TURN (RFC 8489 section 9.2): static users from the configuration and, at the same time,
// the TURN REST scheme (coturn's use-auth-secret): username "EXPIRY[:USER]" with EXPIRY in Unix seconds, password
// base64(HMAC-SHA1(secret, username)). Several secrets may be valid at once, for rotation.
// Nonces are stateless: a timestamp and a MAC over it and the client's IP, so any worker can check any nonce.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "stun/address.hpp"
#include "stun/message.hpp"

namespace kaiwa::turn {

struct Key {
  std::array<uint8_t, 32> bytes{};
  uint8_t size = 0;
  std::span<const uint8_t> span() const { return {bytes.data(), size}; }
};

class Credentials {
 public:
  static constexpr size_t kMaxKeys = 8;

  // The realm, user names and passwords are SASLprep'd (stored strings); a user that fails it is left out.
  Credentials(std::string realm, const std::vector<std::pair<std::string, std::string>>& users,
              std::vector<std::string> secrets, std::chrono::seconds nonceLifetime = std::chrono::seconds(600));

  const std::string& realm() const { return realm_; }
  bool empty() const { return users_.empty() && secrets_.empty(); }

  // The candidate keys for `username` (SASLprep'd already; one per static user match and per secret), for
  // `algorithm`; the count.
  // A REST username whose expiry (Unix seconds) is before `nowUnix` gives none.
  size_t keys(std::string_view username, int64_t nowUnix, stun::PasswordAlgorithm algorithm,
              std::span<Key, kMaxKeys> out) const;

  // A fresh nonce for `client` at `now`, and whether a nonce is still valid (false: stale or forged → 438).
  std::string makeNonce(const stun::Address& client, TimePoint now) const;
  bool nonceValid(std::string_view nonce, const stun::Address& client, TimePoint now) const;

  static std::string restPassword(std::string_view secret, std::string_view username);

  // The same realm and nonce key (nonces already handed out stay valid) with these users and secrets instead: what a
  // reload installs. Users are SASLprep'd as in the constructor.
  std::shared_ptr<const Credentials> withUsers(const std::vector<std::pair<std::string, std::string>>& users,
                                               std::vector<std::string> secrets) const;
  const std::vector<std::string>& secrets() const { return secrets_; }

 private:
  std::string realm_;
  struct User {
    std::string password;
    std::array<uint8_t, 16> md5;
  };
  std::unordered_map<std::string, User> users_;
  std::vector<std::string> secrets_;
  std::array<uint8_t, 32> nonceKey_{};
  std::chrono::seconds nonceLifetime_;
};

// The credentials every worker's TurnServer authenticates with, replaceable from any thread (a reload of users and
// secrets without a restart): the next request any worker authenticates after store() returns uses the new ones.
// Readers compare a generation number (one atomic load per authenticated request); a reader that sees a new one takes
// the mutex once to copy the pointer. The relay path never looks at it.
class CredentialsSlot {
 public:
  explicit CredentialsSlot(std::shared_ptr<const Credentials> initial) : current_(std::move(initial)) {}
  void store(std::shared_ptr<const Credentials> next) {
    {
      std::lock_guard lock(mutex_);
      current_ = std::move(next);
    }
    generation_.fetch_add(1, std::memory_order_release);
  }
  std::shared_ptr<const Credentials> load() const {
    std::lock_guard lock(mutex_);
    return current_;
  }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Credentials> current_;
  std::atomic<uint64_t> generation_{0};
};

// The nonce prefix announcing the password-algorithms security feature (RFC 8489 section 9.2).
inline constexpr std::string_view kNonceCookie = "obMatJos2gAAA";

}  // namespace kaiwa::turn
