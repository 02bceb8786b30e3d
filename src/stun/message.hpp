#pragma once
// STUN messages (RFC 8489) and the TURN attributes (RFC 8656, 6156): a bounds-checked view over received bytes and a
// builder that writes into the caller's buffer. Nothing here allocates or throws.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |0 0|     STUN Message Type     |         Message Length        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                         Magic Cookie                          |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                     Transaction ID (96 bits)                  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  then attributes: type (16), length (16), value padded to 4 bytes.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "stun/address.hpp"

namespace kaiwa::stun {

inline constexpr uint32_t kMagicCookie = 0x2112A442;
inline constexpr size_t kHeaderSize = 20;
inline constexpr size_t kMaxAttributes = 40;

enum class Method : uint16_t {
  kBinding = 0x001,
  kAllocate = 0x003,
  kRefresh = 0x004,
  kSend = 0x006,
  kData = 0x007,
  kCreatePermission = 0x008,
  kChannelBind = 0x009,
};
enum class Class : uint8_t { kRequest = 0, kIndication = 1, kSuccess = 2, kError = 3 };

uint16_t messageType(Method m, Class c);

namespace attr {
inline constexpr uint16_t kMappedAddress = 0x0001;
inline constexpr uint16_t kUsername = 0x0006;
inline constexpr uint16_t kMessageIntegrity = 0x0008;
inline constexpr uint16_t kErrorCode = 0x0009;
inline constexpr uint16_t kUnknownAttributes = 0x000A;
inline constexpr uint16_t kChannelNumber = 0x000C;
inline constexpr uint16_t kLifetime = 0x000D;
inline constexpr uint16_t kXorPeerAddress = 0x0012;
inline constexpr uint16_t kData = 0x0013;
inline constexpr uint16_t kRealm = 0x0014;
inline constexpr uint16_t kNonce = 0x0015;
inline constexpr uint16_t kXorRelayedAddress = 0x0016;
inline constexpr uint16_t kRequestedAddressFamily = 0x0017;
inline constexpr uint16_t kEvenPort = 0x0018;
inline constexpr uint16_t kRequestedTransport = 0x0019;
inline constexpr uint16_t kDontFragment = 0x001A;
inline constexpr uint16_t kMessageIntegritySha256 = 0x001C;
inline constexpr uint16_t kPasswordAlgorithm = 0x001D;
inline constexpr uint16_t kUserhash = 0x001E;
inline constexpr uint16_t kXorMappedAddress = 0x0020;
inline constexpr uint16_t kReservationToken = 0x0022;
inline constexpr uint16_t kPriority = 0x0024;
inline constexpr uint16_t kUseCandidate = 0x0025;
inline constexpr uint16_t kAdditionalAddressFamily = 0x8000;
inline constexpr uint16_t kAddressErrorCode = 0x8001;
inline constexpr uint16_t kPasswordAlgorithms = 0x8002;
inline constexpr uint16_t kAlternateDomain = 0x8003;
inline constexpr uint16_t kIcmp = 0x8004;
inline constexpr uint16_t kSoftware = 0x8022;
inline constexpr uint16_t kAlternateServer = 0x8023;
inline constexpr uint16_t kFingerprint = 0x8028;
inline constexpr uint16_t kIceControlled = 0x8029;
inline constexpr uint16_t kIceControlling = 0x802A;
inline constexpr uint16_t kResponseOrigin = 0x802B;
inline constexpr uint16_t kOtherAddress = 0x802C;
// 0x0000-0x7FFF must be understood by the receiver (RFC 8489 section 14).
inline constexpr bool comprehensionRequired(uint16_t type) { return type < 0x8000; }
}  // namespace attr

// PASSWORD-ALGORITHM values (RFC 8489 section 18.5).
enum class PasswordAlgorithm : uint16_t { kMd5 = 0x0001, kSha256 = 0x0002 };

using TransactionId = std::array<uint8_t, 12>;

struct AttributeRef {
  uint16_t type;
  uint16_t length;
  uint32_t offset;  // of the value, from the start of the message
};

// A parsed message: the header fields and where each attribute is; the bytes stay the caller's.
class Message {
 public:
  // `bytes` must hold exactly one message (header + length). nullopt if malformed: wrong leading bits, no magic
  // cookie, length not a multiple of 4 or beyond the buffer, an attribute running past the end, more than
  // kMaxAttributes attributes, anything but MESSAGE-INTEGRITY-SHA256/FINGERPRINT after MESSAGE-INTEGRITY, anything
  // after FINGERPRINT, or a FINGERPRINT that does not match.
  static std::optional<Message> parse(std::span<const uint8_t> bytes);
  // The length a message starting at `bytes` claims (header included), if the first 4 bytes look like STUN.
  static std::optional<size_t> framedLength(std::span<const uint8_t> bytes);

  uint16_t type() const { return type_; }
  Method method() const;
  Class messageClass() const;
  bool is(Method m, Class c) const { return type_ == messageType(m, c); }
  const TransactionId& transactionId() const { return txid_; }
  std::span<const uint8_t> bytes() const { return bytes_; }
  std::span<const AttributeRef> attributes() const { return {attrs_.data(), count_}; }

  // The first attribute of that type (attributes after MESSAGE-INTEGRITY other than the two allowed are ignored).
  std::optional<std::span<const uint8_t>> find(uint16_t type) const;
  bool has(uint16_t type) const { return find(type).has_value(); }
  std::optional<std::string_view> text(uint16_t type) const;
  std::optional<uint32_t> u32(uint16_t type) const;
  // An XOR-*-ADDRESS attribute, decoded (nullopt if absent or malformed).
  std::optional<Address> xorAddress(uint16_t type) const;
  std::optional<Address> xorAddressAt(const AttributeRef& a) const;
  // ERROR-CODE: the number (300..699) if present and well-formed.
  std::optional<int> errorCode() const;

  bool hasIntegrity() const { return integrity_ >= 0; }
  bool hasIntegritySha256() const { return integritySha256_ >= 0; }
  bool hasFingerprint() const { return fingerprint_ >= 0; }
  // Checks MESSAGE-INTEGRITY (HMAC-SHA1) / MESSAGE-INTEGRITY-SHA256 with `key` (RFC 8489 section 14.5, 14.6).
  bool verifyIntegrity(std::span<const uint8_t> key) const;
  bool verifyIntegritySha256(std::span<const uint8_t> key) const;

 private:
  std::span<const uint8_t> bytes_;
  uint16_t type_ = 0;
  TransactionId txid_{};
  std::array<AttributeRef, kMaxAttributes> attrs_{};
  size_t count_ = 0;
  int integrity_ = -1, integritySha256_ = -1, fingerprint_ = -1;
};

// Writes a message into `out`. Every method is a no-op once the buffer is full; ok() then says false.
class Builder {
 public:
  Builder(std::span<uint8_t> out, uint16_t type, const TransactionId& txid);
  Builder(std::span<uint8_t> out, Method m, Class c, const TransactionId& txid)
      : Builder(out, messageType(m, c), txid) {}

  Builder& attribute(uint16_t type, std::span<const uint8_t> value);
  Builder& text(uint16_t type, std::string_view value);
  Builder& u32(uint16_t type, uint32_t value);
  Builder& xorAddress(uint16_t type, const Address& a);
  Builder& errorCode(int code, std::string_view reason);
  Builder& unknownAttributes(std::span<const uint16_t> types);
  // HMAC over everything written so far (RFC 8489 section 14.5); must come after all other attributes but these.
  Builder& messageIntegrity(std::span<const uint8_t> key);
  Builder& messageIntegritySha256(std::span<const uint8_t> key);
  Builder& fingerprint();

  bool ok() const { return ok_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {out_.data(), ok_ ? size_ : 0}; }

 private:
  uint8_t* reserve(uint16_t type, size_t length);
  void setLength(size_t bodyLength);

  std::span<uint8_t> out_;
  size_t size_ = 0;
  bool ok_ = true;
};

uint32_t crc32(std::span<const uint8_t> bytes);
// Short-term key: the password itself; long-term key: MD5(username ":" realm ":" password) (RFC 8489 section 9.2.2)
// or SHA-256 of the same for PASSWORD-ALGORITHM SHA-256. Passwords are used as given (no SASLprep).
std::array<uint8_t, 16> longTermKeyMd5(std::string_view username, std::string_view realm, std::string_view password);
std::array<uint8_t, 32> longTermKeySha256(std::string_view username, std::string_view realm, std::string_view password);

inline std::span<const uint8_t> asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace kaiwa::stun
