#include "srtp/session.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace kaiwa::srtp {

namespace {

constexpr size_t kCmTag = 10;    // HMAC-SHA1 truncated to 80 bits (RFC 3711 section 5.2)
constexpr size_t kGcmTag = 16;   // RFC 7714 section 14.2: the AEAD profiles' 16-byte tag
constexpr size_t kIndex = 4;     // SRTCP's E flag and 31-bit index
constexpr size_t kAuthKey = 20;  // HMAC-SHA1's key (n_a = 160)
constexpr uint32_t kRtcpWindow = 128;
constexpr size_t kMaxInbound = 256;    // SSRCs an inbound session follows (each authenticated first)
constexpr size_t kMaxOutbound = 4096;  // SSRCs kaiwa itself sends on one transport

bool isGcm(Profile p) { return p == Profile::kAeadAes128Gcm || p == Profile::kAeadAes256Gcm; }

uint32_t load32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint16_t load16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
void store32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

// The RTP header's length (fixed part, CSRCs, the extension), or 0 when the packet is shorter than it says.
size_t rtpHeaderLength(const uint8_t* p, size_t size) {
  if (size < 12 || (p[0] >> 6) != 2) return 0;
  size_t n = 12 + 4 * size_t(p[0] & 0x0f);
  if (p[0] & 0x10) {
    if (size < n + 4) return 0;
    n += 4 + 4 * size_t(load16(p + n + 2));
  }
  return n <= size ? n : 0;
}

const EVP_CIPHER* ctr(size_t keyLength) { return keyLength == 32 ? EVP_aes_256_ctr() : EVP_aes_128_ctr(); }
const EVP_CIPHER* gcm(size_t keyLength) { return keyLength == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm(); }

EVP_MAC* hmac() {
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);  // (thread-safe: a function-local static)
  return mac;
}

// RFC 3711 section 4.3 with a key derivation rate of 0, as DTLS-SRTP uses: the AES-CM PRF keyed with the master key,
// its IV the master salt (zero-padded to 112 bits for the AEAD profiles' 96-bit salt) with the label at byte 7,
// times 2^16; the session key is the first bytes of its key stream.
bool derive(std::span<const uint8_t> masterKey, std::span<const uint8_t> masterSalt, uint8_t label,
            std::span<uint8_t> out) {
  std::array<uint8_t, 16> iv{};
  std::memcpy(iv.data(), masterSalt.data(), std::min<size_t>(masterSalt.size(), 14));
  iv[7] ^= label;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::fill(out.begin(), out.end(), uint8_t{0});
  int len = 0;
  const bool ok = ctx != nullptr &&
                  EVP_EncryptInit_ex(ctx, ctr(masterKey.size()), nullptr, masterKey.data(), iv.data()) == 1 &&
                  EVP_EncryptUpdate(ctx, out.data(), &len, out.data(), int(out.size())) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

}  // namespace

// The keys of one half (RTP or RTCP) of a session: a cipher context holding the session key's schedule (the IV set
// per packet), the session salt and, for AES-CM, an HMAC context holding the authentication key.
struct Session::Keys {
  EVP_CIPHER_CTX* cipher = nullptr;
  EVP_MAC_CTX* mac = nullptr;
  std::array<uint8_t, 14> salt{};

  Keys() = default;
  Keys(const Keys&) = delete;
  Keys& operator=(const Keys&) = delete;
  ~Keys() {
    EVP_CIPHER_CTX_free(cipher);
    EVP_MAC_CTX_free(mac);
  }

  bool init(Profile profile, std::span<const uint8_t> masterKey, std::span<const uint8_t> masterSalt, uint8_t labelBase,
            bool encrypt) {
    std::array<uint8_t, 32> key{};
    std::array<uint8_t, kAuthKey> authKey{};
    const size_t saltLength = srtp::saltLength(profile);
    cipher = EVP_CIPHER_CTX_new();
    bool ok = cipher != nullptr && derive(masterKey, masterSalt, labelBase, {key.data(), masterKey.size()}) &&
              derive(masterKey, masterSalt, uint8_t(labelBase + 2), {salt.data(), saltLength});
    if (ok && isGcm(profile)) {
      ok = EVP_CipherInit_ex(cipher, gcm(masterKey.size()), nullptr, key.data(), nullptr, encrypt ? 1 : 0) == 1;
    } else if (ok) {
      ok = EVP_CipherInit_ex(cipher, ctr(masterKey.size()), nullptr, key.data(), nullptr, 1) == 1 &&
           derive(masterKey, masterSalt, uint8_t(labelBase + 1), authKey) && hmac() != nullptr &&
           (mac = EVP_MAC_CTX_new(hmac())) != nullptr;
      if (ok) {
        char digest[] = "SHA1";
        const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                     OSSL_PARAM_construct_end()};
        ok = EVP_MAC_init(mac, authKey.data(), authKey.size(), params) == 1;
      }
    }
    OPENSSL_cleanse(key.data(), key.size());
    OPENSSL_cleanse(authKey.data(), authKey.size());
    return ok;
  }

  // HMAC-SHA1 over `a` then `b`, its first kCmTag bytes to `tag`.
  bool authenticate(std::span<const uint8_t> a, std::span<const uint8_t> b, uint8_t* tag) const {
    std::array<uint8_t, EVP_MAX_MD_SIZE> full{};
    size_t len = 0;
    if (EVP_MAC_init(mac, nullptr, 0, nullptr) != 1 || EVP_MAC_update(mac, a.data(), a.size()) != 1 ||
        EVP_MAC_update(mac, b.data(), b.size()) != 1 || EVP_MAC_final(mac, full.data(), &len, full.size()) != 1 ||
        len < kCmTag) {
      return false;
    }
    std::memcpy(tag, full.data(), kCmTag);
    return true;
  }

  // AES-CM (RFC 3711 section 4.1.1) over data in place: IV = salt * 2^16 XOR ssrc * 2^64 XOR index * 2^16.
  bool counterMode(uint32_t ssrc, uint64_t index, uint8_t* data, size_t size) const {
    std::array<uint8_t, 16> iv{};
    std::memcpy(iv.data(), salt.data(), 14);
    for (int i = 0; i < 4; ++i) iv[4 + i] ^= uint8_t(ssrc >> (24 - 8 * i));
    for (int i = 0; i < 6; ++i) iv[8 + i] ^= uint8_t(index >> (40 - 8 * i));
    int len = 0;
    return EVP_EncryptInit_ex(cipher, nullptr, nullptr, nullptr, iv.data()) == 1 &&
           (size == 0 || EVP_EncryptUpdate(cipher, data, &len, data, int(size)) == 1);
  }

  // AES-GCM (RFC 7714) in place: `aad` authenticated, `data` encrypted or decrypted, the tag written or checked.
  bool aead(const std::array<uint8_t, 12>& nonce, std::span<const uint8_t> aad1, std::span<const uint8_t> aad2,
            uint8_t* data, size_t size, uint8_t* tag, bool encrypt) const {
    std::array<uint8_t, 12> iv{};
    for (size_t i = 0; i < 12; ++i) iv[i] = uint8_t(nonce[i] ^ salt[i]);
    int len = 0;
    if (EVP_CipherInit_ex(cipher, nullptr, nullptr, nullptr, iv.data(), encrypt ? 1 : 0) != 1 ||
        EVP_CipherUpdate(cipher, nullptr, &len, aad1.data(), int(aad1.size())) != 1 ||
        (!aad2.empty() && EVP_CipherUpdate(cipher, nullptr, &len, aad2.data(), int(aad2.size())) != 1) ||
        (size > 0 && EVP_CipherUpdate(cipher, data, &len, data, int(size)) != 1)) {
      return false;
    }
    if (!encrypt && EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_SET_TAG, int(kGcmTag), tag) != 1) return false;
    std::array<uint8_t, 16> rest{};
    if (EVP_CipherFinal_ex(cipher, rest.data(), &len) != 1) return false;  // (a tag that does not verify)
    return !encrypt || EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_GET_TAG, int(kGcmTag), tag) == 1;
  }
};

// One SSRC's indices: RTP's highest index (roll-over counter and sequence number) with a replay window of the
// session's size (inbound only), SRTCP's highest index with a 128-packet window, or the last SRTCP index sent.
struct Session::Stream {
  uint32_t ssrc = 0;
  bool rtpStarted = false, rtcpStarted = false;
  uint64_t rtpHighest = 0;
  uint32_t rtcpHighest = 0;
  std::unique_ptr<uint64_t[]> rtpWindow;  // a ring: bit (index % window) for the last `window` indices
  std::array<uint64_t, kRtcpWindow / 64> rtcpWindow{};
};

namespace {

// Marks `index` in a ring of `bits` bits after clearing what the move of the highest index from `from` passes.
void advance(uint64_t* ring, uint64_t bits, uint64_t from, uint64_t to) {
  if (to - from >= bits) {
    std::fill(ring, ring + bits / 64, uint64_t{0});
  } else {
    for (uint64_t i = from + 1; i <= to; ++i) ring[(i % bits) / 64] &= ~(uint64_t{1} << (i % 64));
  }
}
bool marked(const uint64_t* ring, uint64_t bits, uint64_t index) {
  return (ring[(index % bits) / 64] >> (index % 64)) & 1;
}
void mark(uint64_t* ring, uint64_t bits, uint64_t index) { ring[(index % bits) / 64] |= uint64_t{1} << (index % 64); }

// RFC 3711 appendix A: the packet's index from its sequence number and the highest index so far. While the highest
// index is in the first half of the first roll-over, the sequence number is taken as it is (as libsrtp2 does: a
// stream starts at any sequence number with a roll-over counter of 0). False for an index before 0.
bool guessIndex(uint64_t highest, uint16_t seq, uint64_t& index) {
  if (highest <= 32768) {
    index = seq;
    return true;
  }
  const uint64_t roc = highest >> 16;
  const auto last = uint16_t(highest);
  uint64_t guess = roc;
  if (last < 32768) {
    if (seq > last && seq - last > 32768) {
      if (roc == 0) return false;
      guess = roc - 1;
    }
  } else if (last - 32768 > seq) {
    guess = roc + 1;
  }
  index = guess << 16 | seq;
  return index < (uint64_t{1} << 48);
}

}  // namespace

std::optional<Session> Session::make(Profile profile, std::span<const uint8_t> keySalt, Direction direction,
                                     unsigned replayWindow) {
  if (name(profile).empty() || keySalt.size() != keyLength(profile) + saltLength(profile) || replayWindow < 64 ||
      replayWindow >= 0x8000) {
    return std::nullopt;
  }
  const auto masterKey = keySalt.first(keyLength(profile));
  const auto masterSalt = keySalt.subspan(keyLength(profile));
  const bool encrypt = direction == Direction::kOutbound;
  auto rtp = std::make_unique<Keys>(), rtcp = std::make_unique<Keys>();
  if (!rtp->init(profile, masterKey, masterSalt, 0x00, encrypt) ||
      !rtcp->init(profile, masterKey, masterSalt, 0x03, encrypt)) {
    return std::nullopt;
  }
  Session s(profile, direction);
  s.rtp_ = std::move(rtp);
  s.rtcp_ = std::move(rtcp);
  s.window_ = (replayWindow + 63) / 64 * 64;
  return s;
}

Session::Session(Profile profile, Direction direction) : profile_(profile), direction_(direction) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

Session::Stream* Session::stream(uint32_t ssrc, bool create) {
  if (last_ < streams_.size() && streams_[last_].ssrc == ssrc) return &streams_[last_];
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (streams_[i].ssrc == ssrc) {
      last_ = i;
      return &streams_[i];
    }
  }
  if (!create || streams_.size() >= (direction_ == Direction::kInbound ? kMaxInbound : kMaxOutbound)) return nullptr;
  last_ = streams_.size();
  Stream& s = streams_.emplace_back();
  s.ssrc = ssrc;
  if (direction_ == Direction::kInbound) s.rtpWindow = std::make_unique<uint64_t[]>(window_ / 64);
  return &s;
}

namespace {

bool usable(std::span<uint8_t> buffer, size_t size, size_t room, size_t minimum) {
  return size >= minimum && size <= buffer.size() && buffer.size() - size >= room &&
         reinterpret_cast<uintptr_t>(buffer.data()) % 4 == 0;
}

std::array<uint8_t, 12> rtpNonce(uint32_t ssrc, uint64_t index) {
  std::array<uint8_t, 12> n{};
  store32(n.data() + 2, ssrc);
  store32(n.data() + 6, uint32_t(index >> 16));
  n[10] = uint8_t(index >> 8);
  n[11] = uint8_t(index);
  return n;
}
std::array<uint8_t, 12> rtcpNonce(uint32_t ssrc, uint32_t index) {
  std::array<uint8_t, 12> n{};
  store32(n.data() + 2, ssrc);
  store32(n.data() + 8, index & 0x7fffffff);
  return n;
}

}  // namespace

Result Session::protectRtp(std::span<uint8_t> buffer, size_t& size) {
  if (direction_ != Direction::kOutbound || !rtp_) return Result::kError;
  if (!usable(buffer, size, kMaxTrailer, 12)) return Result::kBadPacket;
  uint8_t* p = buffer.data();
  const size_t header = rtpHeaderLength(p, size);
  if (header == 0) return Result::kBadPacket;
  const uint32_t ssrc = load32(p + 8);
  Stream* s = stream(ssrc, true);
  if (s == nullptr) return Result::kError;
  uint64_t index = 0;
  if (!guessIndex(s->rtpStarted ? s->rtpHighest : 0, load16(p + 2), index)) return Result::kError;
  if (isGcm(profile_)) {
    if (!rtp_->aead(rtpNonce(ssrc, index), {p, header}, {}, p + header, size - header, p + size, true)) {
      return Result::kError;
    }
    size += kGcmTag;
  } else {
    std::array<uint8_t, 4> roc{};
    store32(roc.data(), uint32_t(index >> 16));
    if (!rtp_->counterMode(ssrc, index, p + header, size - header) || !rtp_->authenticate({p, size}, roc, p + size)) {
      return Result::kError;
    }
    size += kCmTag;
  }
  // A packet sent again (a retransmission answering a NACK, as the original) is protected again with its own index.
  if (!s->rtpStarted || index > s->rtpHighest) s->rtpHighest = index;
  s->rtpStarted = true;
  return Result::kOk;
}

Result Session::unprotectRtp(std::span<uint8_t> buffer, size_t& size) {
  if (direction_ != Direction::kInbound || !rtp_) return Result::kError;
  const size_t tag = isGcm(profile_) ? kGcmTag : kCmTag;
  if (!usable(buffer, size, 0, 12 + tag)) return Result::kBadPacket;
  uint8_t* p = buffer.data();
  const size_t header = rtpHeaderLength(p, size - tag);
  if (header == 0) return Result::kBadPacket;
  const uint32_t ssrc = load32(p + 8);
  Stream* s = stream(ssrc, false);
  uint64_t index = 0;
  if (!guessIndex(s != nullptr ? s->rtpHighest : 0, load16(p + 2), index)) return Result::kReplay;
  if (s != nullptr && index <= s->rtpHighest &&
      (s->rtpHighest - index >= window_ || marked(s->rtpWindow.get(), window_, index))) {
    return Result::kReplay;
  }
  const size_t body = size - tag;
  if (isGcm(profile_)) {
    if (!rtp_->aead(rtpNonce(ssrc, index), {p, header}, {}, p + header, body - header, p + body, false)) {
      return Result::kAuthFailed;
    }
  } else {
    std::array<uint8_t, 4> roc{};
    std::array<uint8_t, kCmTag> expected{};
    store32(roc.data(), uint32_t(index >> 16));
    if (!rtp_->authenticate({p, body}, roc, expected.data())) return Result::kError;
    if (CRYPTO_memcmp(expected.data(), p + body, kCmTag) != 0) return Result::kAuthFailed;
    if (!rtp_->counterMode(ssrc, index, p + header, body - header)) return Result::kError;
  }
  if (s == nullptr && (s = stream(ssrc, true)) == nullptr) return Result::kError;
  if (!s->rtpStarted) {
    s->rtpStarted = true;
    s->rtpHighest = index;
  } else if (index > s->rtpHighest) {
    advance(s->rtpWindow.get(), window_, s->rtpHighest, index);
    s->rtpHighest = index;
  }
  mark(s->rtpWindow.get(), window_, index);
  size = body;
  return Result::kOk;
}

Result Session::protectRtcp(std::span<uint8_t> buffer, size_t& size) {
  if (direction_ != Direction::kOutbound || !rtcp_) return Result::kError;
  if (!usable(buffer, size, kMaxTrailer, 8)) return Result::kBadPacket;
  uint8_t* p = buffer.data();
  const uint32_t ssrc = load32(p + 4);
  Stream* s = stream(ssrc, true);
  if (s == nullptr || s->rtcpHighest >= 0x7fffffff) return Result::kError;  // (the index would wrap: a new key)
  const uint32_t index = ++s->rtcpHighest;
  std::array<uint8_t, kIndex> trailer{};
  store32(trailer.data(), 0x80000000U | index);  // E: encrypted
  if (isGcm(profile_)) {
    if (!rtcp_->aead(rtcpNonce(ssrc, index), {p, 8}, trailer, p + 8, size - 8, p + size, true)) return Result::kError;
    std::memcpy(p + size + kGcmTag, trailer.data(), kIndex);
    size += kGcmTag + kIndex;
  } else {
    if (!rtcp_->counterMode(ssrc, index, p + 8, size - 8)) return Result::kError;
    std::memcpy(p + size, trailer.data(), kIndex);
    if (!rtcp_->authenticate({p, size + kIndex}, {}, p + size + kIndex)) return Result::kError;
    size += kIndex + kCmTag;
  }
  return Result::kOk;
}

Result Session::unprotectRtcp(std::span<uint8_t> buffer, size_t& size) {
  if (direction_ != Direction::kInbound || !rtcp_) return Result::kError;
  const bool aead = isGcm(profile_);
  const size_t trailer = (aead ? kGcmTag : kCmTag) + kIndex;
  if (!usable(buffer, size, 0, 8 + trailer)) return Result::kBadPacket;
  uint8_t* p = buffer.data();
  const size_t body = size - trailer;
  const uint8_t* indexAt = aead ? p + size - kIndex : p + body;
  const uint32_t word = load32(indexAt);
  if ((word & 0x80000000U) == 0) return Result::kBadPacket;  // not encrypted: browsers always encrypt SRTCP
  const uint32_t index = word & 0x7fffffff;
  const uint32_t ssrc = load32(p + 4);
  Stream* s = stream(ssrc, false);
  if (s != nullptr && s->rtcpStarted && index <= s->rtcpHighest &&
      (s->rtcpHighest - index >= kRtcpWindow || marked(s->rtcpWindow.data(), kRtcpWindow, index))) {
    return Result::kReplay;
  }
  if (aead) {
    std::array<uint8_t, kIndex> aad{};
    std::memcpy(aad.data(), indexAt, kIndex);
    if (!rtcp_->aead(rtcpNonce(ssrc, index), {p, 8}, aad, p + 8, body - 8, p + body, false)) {
      return Result::kAuthFailed;
    }
  } else {
    std::array<uint8_t, kCmTag> expected{};
    if (!rtcp_->authenticate({p, body + kIndex}, {}, expected.data())) return Result::kError;
    if (CRYPTO_memcmp(expected.data(), p + body + kIndex, kCmTag) != 0) return Result::kAuthFailed;
    if (!rtcp_->counterMode(ssrc, index, p + 8, body - 8)) return Result::kError;
  }
  if (s == nullptr && (s = stream(ssrc, true)) == nullptr) return Result::kError;
  if (!s->rtcpStarted) {
    s->rtcpStarted = true;
    s->rtcpHighest = index;
  } else if (index > s->rtcpHighest) {
    advance(s->rtcpWindow.data(), kRtcpWindow, s->rtcpHighest, index);
    s->rtcpHighest = index;
  }
  mark(s->rtcpWindow.data(), kRtcpWindow, index);
  size = body;
  return Result::kOk;
}

}  // namespace kaiwa::srtp
