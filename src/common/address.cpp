#include "common/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace kaiwa::common {

Address Address::v4(uint32_t hostOrderIp, uint16_t port) {
  Address a;
  a.family = Family::kV4;
  a.ip[0] = uint8_t(hostOrderIp >> 24);
  a.ip[1] = uint8_t(hostOrderIp >> 16);
  a.ip[2] = uint8_t(hostOrderIp >> 8);
  a.ip[3] = uint8_t(hostOrderIp);
  a.port = port;
  return a;
}

Address Address::v6(const std::array<uint8_t, 16>& ip, uint16_t port) {
  Address a;
  a.family = Family::kV6;
  a.ip = ip;
  a.port = port;
  return a;
}

std::optional<Address> Address::parse(std::string_view text, bool allowNoPort) {
  std::string host;
  std::string_view portText;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = std::string(text.substr(1, close - 1));
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      portText = rest.substr(1);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    auto colon = text.find(':');
    host = std::string(text.substr(0, colon));
    portText = text.substr(colon + 1);
  } else {
    host = std::string(text);
  }
  uint16_t port = 0;
  if (portText.empty()) {
    if (!allowNoPort) return std::nullopt;
  } else {
    auto [p, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
    if (ec != std::errc() || p != portText.data() + portText.size()) return std::nullopt;
  }
  Address a;
  a.port = port;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    a.family = Family::kV4;
    std::memcpy(a.ip.data(), &v4, 4);
    return a;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    a.family = Family::kV6;
    std::memcpy(a.ip.data(), &v6, 16);
    return a;
  }
  return std::nullopt;
}

std::optional<Address> Address::fromSockaddr(const sockaddr* sa) {
  Address a;
  if (sa->sa_family == AF_INET) {
    sockaddr_in in;
    std::memcpy(&in, sa, sizeof in);
    a.family = Family::kV4;
    std::memcpy(a.ip.data(), &in.sin_addr, 4);
    a.port = ntohs(in.sin_port);
    return a;
  }
  if (sa->sa_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, sa, sizeof in6);
    a.family = Family::kV6;
    std::memcpy(a.ip.data(), &in6.sin6_addr, 16);
    a.port = ntohs(in6.sin6_port);
    return a;
  }
  return std::nullopt;
}

unsigned Address::toSockaddr(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof out);
  if (family == Family::kV4) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    std::memcpy(&in.sin_addr, ip.data(), 4);
    std::memcpy(&out, &in, sizeof in);
    return sizeof in;
  }
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  std::memcpy(&in6.sin6_addr, ip.data(), 16);
  std::memcpy(&out, &in6, sizeof in6);
  return sizeof in6;
}

std::string Address::ipString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::kV4 ? AF_INET : AF_INET6, ip.data(), buf, sizeof buf);
  return buf;
}

std::string Address::toString() const {
  // Written into one buffer and copied once: no temporaries (GCC 12 at -O3 also misreads the inlined
  // `"[" + std::string&&` insert as an overlapping memcpy, -Wrestrict).
  char buf[1 + INET6_ADDRSTRLEN + 2 + 5];  // "[" address "]:" port
  size_t n = 0;
  bool v6 = family == Family::kV6;
  if (v6) buf[n++] = '[';
  if (!inet_ntop(v6 ? AF_INET6 : AF_INET, ip.data(), buf + n, INET6_ADDRSTRLEN)) return {};
  n += std::strlen(buf + n);
  if (v6) buf[n++] = ']';
  buf[n++] = ':';
  char* end = std::to_chars(buf + n, buf + sizeof buf, port).ptr;
  return std::string(buf, end);
}

size_t AddressHash::operator()(const Address& a) const noexcept {
  uint64_t h = 1469598103934665603ull ^ uint64_t(a.family);
  for (size_t i = 0; i < a.ipLength(); ++i) h = (h ^ a.ip[i]) * 1099511628211ull;
  h = (h ^ a.port) * 1099511628211ull;
  return size_t(h ^ (h >> 29));
}

}  // namespace kaiwa::common
