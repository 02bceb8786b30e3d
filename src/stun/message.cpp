#include "stun/message.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>

#include "common/bytes.hpp"

namespace kaiwa::stun {

namespace {

constexpr uint32_t kFingerprintXor = 0x5354554e;

using common::be16;
using common::be32;
using common::put16;
using common::put32;

constexpr std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = makeCrcTable();

// One HMAC context per thread and digest, re-keyed per use: no allocation after the first call.
class Hmac {
 public:
  explicit Hmac(const char* digest) : digest_(digest) {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac_) ctx_ = EVP_MAC_CTX_new(mac_);
  }
  ~Hmac() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }
  Hmac(const Hmac&) = delete;
  Hmac& operator=(const Hmac&) = delete;

  // HMAC(key, a || b) into out (out.size() bytes at most); false on failure or an empty key.
  bool compute(std::span<const uint8_t> key, std::span<const uint8_t> a, std::span<const uint8_t> b,
               std::span<uint8_t> out) {
    if (!ctx_ || key.empty()) return false;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_), 0),
                           OSSL_PARAM_construct_end()};
    if (!EVP_MAC_init(ctx_, key.data(), key.size(), params)) return false;
    if (!EVP_MAC_update(ctx_, a.data(), a.size()) || !EVP_MAC_update(ctx_, b.data(), b.size())) return false;
    std::array<uint8_t, EVP_MAX_MD_SIZE> full{};
    size_t len = 0;
    if (!EVP_MAC_final(ctx_, full.data(), &len, full.size())) return false;
    std::memcpy(out.data(), full.data(), std::min(len, out.size()));
    return true;
  }

 private:
  const char* digest_;
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
};

bool hmac(bool sha256, std::span<const uint8_t> key, std::span<const uint8_t> a, std::span<const uint8_t> b,
          std::span<uint8_t> out) {
  if (sha256) {
    thread_local Hmac h("SHA256");
    return h.compute(key, a, b, out);
  }
  thread_local Hmac h("SHA1");
  return h.compute(key, a, b, out);
}

size_t padded(size_t n) { return (n + 3) & ~size_t(3); }

}  // namespace

uint16_t messageType(Method m, Class c) {
  auto mv = static_cast<uint16_t>(m);
  auto cv = static_cast<uint16_t>(c);
  return uint16_t((mv & 0x000F) | ((mv & 0x0070) << 1) | ((mv & 0x0F80) << 2) | ((cv & 1) << 4) | ((cv & 2) << 7));
}

uint32_t crc32(std::span<const uint8_t> bytes) {
  uint32_t c = 0xFFFFFFFFu;
  for (uint8_t b : bytes) c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::optional<size_t> Message::framedLength(std::span<const uint8_t> bytes) {
  if (bytes.size() < 4 || (bytes[0] & 0xC0) != 0) return std::nullopt;
  size_t len = be16(bytes.data() + 2);
  if (len % 4) return std::nullopt;
  return kHeaderSize + len;
}

std::optional<Message> Message::parse(std::span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderSize || (bytes[0] & 0xC0) != 0) return std::nullopt;
  size_t len = be16(bytes.data() + 2);
  if (len % 4 || kHeaderSize + len != bytes.size()) return std::nullopt;
  if (be32(bytes.data() + 4) != kMagicCookie) return std::nullopt;
  Message m;
  m.bytes_ = bytes;
  m.type_ = be16(bytes.data());
  std::memcpy(m.txid_.data(), bytes.data() + 8, 12);
  size_t pos = kHeaderSize;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 4) return std::nullopt;
    uint16_t type = be16(bytes.data() + pos);
    uint16_t alen = be16(bytes.data() + pos + 2);
    size_t value = pos + 4;
    if (bytes.size() - value < padded(alen)) return std::nullopt;
    if (m.fingerprint_ >= 0) return std::nullopt;  // nothing may follow FINGERPRINT
    bool afterIntegrity = m.integrity_ >= 0 || m.integritySha256_ >= 0;
    bool keep = !afterIntegrity || type == attr::kMessageIntegritySha256 || type == attr::kFingerprint;
    if (afterIntegrity && m.integritySha256_ >= 0 && type == attr::kMessageIntegritySha256) keep = false;
    if (keep) {
      if (m.count_ == kMaxAttributes) return std::nullopt;
      int index = int(m.count_);
      m.attrs_[m.count_++] = AttributeRef{type, alen, uint32_t(value)};
      if (type == attr::kMessageIntegrity && m.integrity_ < 0) {
        if (alen != 20) return std::nullopt;
        m.integrity_ = index;
      } else if (type == attr::kMessageIntegritySha256 && m.integritySha256_ < 0) {
        if (alen < 16 || alen > 32 || alen % 4) return std::nullopt;
        m.integritySha256_ = index;
      } else if (type == attr::kFingerprint) {
        if (alen != 4) return std::nullopt;
        m.fingerprint_ = index;
        uint32_t want = crc32(bytes.subspan(0, pos)) ^ kFingerprintXor;
        if (be32(bytes.data() + value) != want) return std::nullopt;
      }
    }
    pos = value + padded(alen);
  }
  return m;
}

Method Message::method() const {
  return static_cast<Method>((type_ & 0x000F) | ((type_ & 0x00E0) >> 1) | ((type_ & 0x3E00) >> 2));
}

Class Message::messageClass() const { return static_cast<Class>(((type_ >> 4) & 1) | ((type_ >> 7) & 2)); }

std::optional<std::span<const uint8_t>> Message::find(uint16_t type) const {
  for (size_t i = 0; i < count_; ++i) {
    if (attrs_[i].type == type) return bytes_.subspan(attrs_[i].offset, attrs_[i].length);
  }
  return std::nullopt;
}

std::optional<std::string_view> Message::text(uint16_t type) const {
  auto v = find(type);
  if (!v) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(v->data()), v->size());
}

std::optional<uint32_t> Message::u32(uint16_t type) const {
  auto v = find(type);
  if (!v || v->size() != 4) return std::nullopt;
  return be32(v->data());
}

std::optional<Address> Message::xorAddressAt(const AttributeRef& a) const {
  auto v = bytes_.subspan(a.offset, a.length);
  if (v.size() < 4) return std::nullopt;
  Address out;
  out.port = uint16_t(be16(v.data() + 2) ^ (kMagicCookie >> 16));
  uint8_t mask[16];
  put32(mask, kMagicCookie);
  std::memcpy(mask + 4, txid_.data(), 12);
  if (v[1] == uint8_t(Family::kV4) && v.size() == 8) {
    out.family = Family::kV4;
    for (int i = 0; i < 4; ++i) out.ip[i] = v[4 + i] ^ mask[i];
    return out;
  }
  if (v[1] == uint8_t(Family::kV6) && v.size() == 20) {
    out.family = Family::kV6;
    for (int i = 0; i < 16; ++i) out.ip[i] = v[4 + i] ^ mask[i];
    return out;
  }
  return std::nullopt;
}

std::optional<Address> Message::xorAddress(uint16_t type) const {
  for (size_t i = 0; i < count_; ++i) {
    if (attrs_[i].type == type) return xorAddressAt(attrs_[i]);
  }
  return std::nullopt;
}

std::optional<int> Message::errorCode() const {
  auto v = find(attr::kErrorCode);
  if (!v || v->size() < 4) return std::nullopt;
  int cls = (*v)[2] & 0x07, num = (*v)[3];
  if (cls < 3 || cls > 6 || num > 99) return std::nullopt;
  return cls * 100 + num;
}

namespace {
bool verify(std::span<const uint8_t> bytes, const AttributeRef& a, std::span<const uint8_t> key, bool sha256) {
  uint8_t header[kHeaderSize];
  std::memcpy(header, bytes.data(), kHeaderSize);
  put16(header + 2, uint16_t(a.offset + a.length - kHeaderSize));
  std::array<uint8_t, 32> mac{};
  auto body = bytes.subspan(kHeaderSize, a.offset - 4 - kHeaderSize);
  if (!hmac(sha256, key, {header, kHeaderSize}, body, {mac.data(), a.length})) return false;
  // Constant-time compare.
  uint8_t diff = 0;
  for (size_t i = 0; i < a.length; ++i) diff |= uint8_t(mac[i] ^ bytes[a.offset + i]);
  return diff == 0;
}
}  // namespace

bool Message::verifyIntegrity(std::span<const uint8_t> key) const {
  return integrity_ >= 0 && verify(bytes_, attrs_[integrity_], key, false);
}

bool Message::verifyIntegritySha256(std::span<const uint8_t> key) const {
  return integritySha256_ >= 0 && verify(bytes_, attrs_[integritySha256_], key, true);
}

Builder::Builder(std::span<uint8_t> out, uint16_t type, const TransactionId& txid) : out_(out) {
  if (out.size() < kHeaderSize) {
    ok_ = false;
    return;
  }
  put16(out.data(), type);
  put16(out.data() + 2, 0);
  put32(out.data() + 4, kMagicCookie);
  std::memcpy(out.data() + 8, txid.data(), 12);
  size_ = kHeaderSize;
}

void Builder::setLength(size_t bodyLength) { put16(out_.data() + 2, uint16_t(bodyLength)); }

uint8_t* Builder::reserve(uint16_t type, size_t length) {
  if (!ok_ || length > 0xFFFF || out_.size() - size_ < 4 + padded(length) || size_ + 4 + padded(length) > 0xFFFF) {
    ok_ = false;
    return nullptr;
  }
  uint8_t* p = out_.data() + size_;
  put16(p, type);
  put16(p + 2, uint16_t(length));
  std::memset(p + 4 + length, 0, padded(length) - length);
  size_ += 4 + padded(length);
  setLength(size_ - kHeaderSize);
  return p + 4;
}

Builder& Builder::attribute(uint16_t type, std::span<const uint8_t> value) {
  if (uint8_t* p = reserve(type, value.size()); p && !value.empty()) std::memcpy(p, value.data(), value.size());
  return *this;
}

Builder& Builder::text(uint16_t type, std::string_view value) { return attribute(type, asBytes(value)); }

Builder& Builder::u32(uint16_t type, uint32_t value) {
  if (uint8_t* p = reserve(type, 4)) put32(p, value);
  return *this;
}

Builder& Builder::xorAddress(uint16_t type, const Address& a) {
  size_t n = a.ipLength();
  uint8_t* p = reserve(type, 4 + n);
  if (!p) return *this;
  uint8_t mask[16];
  put32(mask, kMagicCookie);
  std::memcpy(mask + 4, out_.data() + 8, 12);
  p[0] = 0;
  p[1] = uint8_t(a.family);
  put16(p + 2, uint16_t(a.port ^ (kMagicCookie >> 16)));
  for (size_t i = 0; i < n; ++i) p[4 + i] = a.ip[i] ^ mask[i];
  return *this;
}

Builder& Builder::errorCode(int code, std::string_view reason) {
  uint8_t* p = reserve(attr::kErrorCode, 4 + reason.size());
  if (!p) return *this;
  p[0] = p[1] = 0;
  p[2] = uint8_t(code / 100);
  p[3] = uint8_t(code % 100);
  if (!reason.empty()) std::memcpy(p + 4, reason.data(), reason.size());
  return *this;
}

Builder& Builder::unknownAttributes(std::span<const uint16_t> types) {
  uint8_t* p = reserve(attr::kUnknownAttributes, 2 * types.size());
  if (!p) return *this;
  for (size_t i = 0; i < types.size(); ++i) put16(p + 2 * i, types[i]);
  return *this;
}

Builder& Builder::messageIntegrity(std::span<const uint8_t> key) {
  size_t start = size_;
  uint8_t* p = reserve(attr::kMessageIntegrity, 20);
  if (!p) return *this;
  // The length already counts this attribute, as the HMAC must see it.
  if (!hmac(false, key, out_.subspan(0, start), {}, {p, 20})) ok_ = false;
  return *this;
}

Builder& Builder::messageIntegritySha256(std::span<const uint8_t> key) {
  size_t start = size_;
  uint8_t* p = reserve(attr::kMessageIntegritySha256, 32);
  if (!p) return *this;
  if (!hmac(true, key, out_.subspan(0, start), {}, {p, 32})) ok_ = false;
  return *this;
}

Builder& Builder::fingerprint() {
  size_t start = size_;
  uint8_t* p = reserve(attr::kFingerprint, 4);
  if (!p) return *this;
  put32(p, crc32(out_.subspan(0, start)) ^ kFingerprintXor);
  return *this;
}

namespace {
template <size_t N>
std::array<uint8_t, N> digestOf(const EVP_MD* md, std::string_view a, std::string_view b, std::string_view c) {
  std::array<uint8_t, N> out{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned len = 0;
  if (ctx && EVP_DigestInit_ex(ctx, md, nullptr)) {
    EVP_DigestUpdate(ctx, a.data(), a.size());
    EVP_DigestUpdate(ctx, ":", 1);
    EVP_DigestUpdate(ctx, b.data(), b.size());
    EVP_DigestUpdate(ctx, ":", 1);
    EVP_DigestUpdate(ctx, c.data(), c.size());
    EVP_DigestFinal_ex(ctx, out.data(), &len);
  }
  EVP_MD_CTX_free(ctx);
  return out;
}
}  // namespace

std::array<uint8_t, 16> longTermKeyMd5(std::string_view username, std::string_view realm, std::string_view password) {
  return digestOf<16>(EVP_md5(), username, realm, password);
}

std::array<uint8_t, 32> longTermKeySha256(std::string_view username, std::string_view realm,
                                          std::string_view password) {
  return digestOf<32>(EVP_sha256(), username, realm, password);
}

}  // namespace kaiwa::stun
