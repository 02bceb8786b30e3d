#include "turn/peer_filter.hpp"

#include <charconv>

namespace kaiwa::turn {

using stun::Address;
using stun::Family;

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = Address::parse(text.substr(0, slash), true);
  if (!addr || addr->port != 0) return std::nullopt;
  Cidr c;
  c.net = *addr;
  uint8_t max = addr->family == Family::kV4 ? 32 : 128;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    auto p = text.substr(slash + 1);
    unsigned v = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || end != p.data() + p.size() || p.empty() || v > max) return std::nullopt;
    c.prefix = uint8_t(v);
  }
  return c;
}

bool Cidr::contains(const Address& a) const {
  if (a.family != net.family) return false;
  unsigned bits = prefix;
  for (size_t i = 0; i < a.ipLength() && bits > 0; ++i) {
    uint8_t mask = bits >= 8 ? 0xFF : uint8_t(0xFF << (8 - bits));
    if ((a.ip[i] & mask) != (net.ip[i] & mask)) return false;
    bits = bits >= 8 ? bits - 8 : 0;
  }
  return true;
}

namespace {
bool zero(const Address& a, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i)
    if (a.ip[i]) return false;
  return true;
}
Address embeddedV4(const Address& a, size_t at) {
  Address v4;
  v4.family = Family::kV4;
  for (int i = 0; i < 4; ++i) v4.ip[i] = a.ip[at + i];
  v4.port = a.port;
  return v4;
}
}  // namespace

Address normalizePeer(const Address& a) {
  if (a.family != Family::kV6) return a;
  // ::ffff:a.b.c.d (IPv4-mapped)
  if (zero(a, 0, 10) && a.ip[10] == 0xFF && a.ip[11] == 0xFF) return embeddedV4(a, 12);
  // ::ffff:0:a.b.c.d (IPv4-translated, SIIT: RFC 2765 / RFC 7915's ::ffff:0:0/96)
  if (zero(a, 0, 8) && a.ip[8] == 0xFF && a.ip[9] == 0xFF && zero(a, 10, 12)) return embeddedV4(a, 12);
  // ::a.b.c.d (IPv4-compatible, deprecated); :: and ::1 stay IPv6.
  if (zero(a, 0, 12) && !(zero(a, 12, 15) && a.ip[15] <= 1)) return embeddedV4(a, 12);
  // 64:ff9b::/96 (NAT64 well-known prefix)
  if (a.ip[0] == 0x00 && a.ip[1] == 0x64 && a.ip[2] == 0xFF && a.ip[3] == 0x9B && zero(a, 4, 12))
    return embeddedV4(a, 12);
  // 2002:V4ADDR::/48 (6to4)
  if (a.ip[0] == 0x20 && a.ip[1] == 0x02) return embeddedV4(a, 2);
  return a;
}

bool isSpecialAddress(const Address& a) {
  if (a.family == Family::kV4) {
    uint32_t ip = a.v4HostOrder();
    auto in = [ip](uint32_t net, int prefix) { return (ip >> (32 - prefix)) == (net >> (32 - prefix)); };
    return in(0x00000000, 8)      // 0.0.0.0/8 "this network", incl. 0.0.0.0
           || in(0x0A000000, 8)   // 10/8
           || in(0x64400000, 10)  // 100.64/10 CGNAT
           || in(0x7F000000, 8)   // 127/8 loopback
           || in(0xA9FE0000, 16)  // 169.254/16 link-local
           || in(0xAC100000, 12)  // 172.16/12
           || in(0xC0000000, 24)  // 192.0.0/24 IETF protocol assignments
           || in(0xC0A80000, 16)  // 192.168/16
           || in(0xC6120000, 15)  // 198.18/15 benchmarking
           || in(0xE0000000, 4)   // 224/4 multicast
           || in(0xF0000000, 4);  // 240/4 reserved, incl. 255.255.255.255 broadcast
  }
  const auto& b = a.ip;
  if (zero(a, 0, 15) && b[15] <= 1) return true;                                  // :: and ::1
  if ((b[0] & 0xFE) == 0xFC) return true;                                         // fc00::/7 unique-local
  if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80) return true;                         // fe80::/10 link-local
  if (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0) return true;                         // fec0::/10 site-local (deprecated)
  if (b[0] == 0xFF) return true;                                                  // ff00::/8 multicast
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B) return true;  // 64:ff9b:1::/48 local NAT64
  if (b[0] == 0x01 && b[1] == 0x00 && zero(a, 2, 8)) return true;                 // 100::/64 discard-only
  if (zero(a, 0, 10) && b[10] == 0xFF && b[11] == 0xFF) return true;              // anything IPv4-mapped left over
  // 2001:0::/32 Teredo (RFC 4380): the client's IPv4 address and port are in it, obfuscated, and a relay on the path
  // decides where it goes; no way to judge it as one IPv4 address, so refused (--turn-allow-peer can allow it).
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) return true;
  return false;
}

bool PeerFilter::allowed(const Address& peer) const {
  Address n = normalizePeer(peer);
  for (const auto& c : deny_)
    if (c.contains(n) || c.contains(peer)) return false;
  for (const auto& c : allow_)
    if (c.contains(n) || c.contains(peer)) return true;
  if (isSpecialAddress(n)) return false;
  for (const auto& own : own_) {
    Address o = normalizePeer(own);
    if (o.sameIp(n)) return false;
  }
  return true;
}

}  // namespace kaiwa::turn
