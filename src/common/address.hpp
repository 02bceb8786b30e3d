#pragma once
// A transport address (IP + port): IPv4 or IPv6, no socket types. It is in common/ because both net/ (which binds
// and sends to it, converting to and from sockaddr) and stun/ and turn/ (which carry it in their messages) use it.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;
struct sockaddr_storage;

namespace kaiwa::common {

enum class Family : uint8_t { kV4 = 0x01, kV6 = 0x02 };

struct Address {
  Family family = Family::kV4;
  std::array<uint8_t, 16> ip{};  // IPv4 uses the first 4 bytes, the rest stays zero
  uint16_t port = 0;

  static Address v4(uint32_t hostOrderIp, uint16_t port);
  static Address v6(const std::array<uint8_t, 16>& ip, uint16_t port);
  // "1.2.3.4:5", "[::1]:5", or without a port ("1.2.3.4", "::1") when allowNoPort.
  static std::optional<Address> parse(std::string_view text, bool allowNoPort = false);
  static std::optional<Address> fromSockaddr(const sockaddr* sa);

  size_t ipLength() const { return family == Family::kV4 ? 4 : 16; }
  uint32_t v4HostOrder() const { return uint32_t(ip[0]) << 24 | uint32_t(ip[1]) << 16 | uint32_t(ip[2]) << 8 | ip[3]; }
  bool sameIp(const Address& o) const { return family == o.family && ip == o.ip; }
  // Fills a sockaddr_in/sockaddr_in6; returns its length.
  unsigned toSockaddr(sockaddr_storage& out) const;
  std::string ipString() const;
  std::string toString() const;  // "1.2.3.4:5" or "[::1]:5"

  friend bool operator==(const Address&, const Address&) = default;
};

struct AddressHash {
  size_t operator()(const Address& a) const noexcept;
};

}  // namespace kaiwa::common
