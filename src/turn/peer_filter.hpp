#pragma once
// Which peers a TURN relay may send to. By default it refuses every address that reaches inside the server's own
// network: loopback, private (RFC 1918, unique-local, CGNAT), link-local, multicast, broadcast, unspecified and
// reserved ranges, and the server's own addresses. Before the check a peer address is normalized to the address it
// reaches: IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (SIIT, ::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64
// (64:ff9b::/96) and 6to4 (2002:V4::/48) IPv6 forms are judged as their IPv4 address (coturn's CVE-2020-26262 and
// CVE-2026-27624 are this hole). Teredo (2001::/32), whose IPv4 address is obfuscated and reached through a relay, is
// refused outright.
// `--turn-deny-peer` ranges are always refused; `--turn-allow-peer` ranges are allowed even if special.
#include <optional>
#include <string_view>
#include <vector>

#include "stun/address.hpp"

namespace kaiwa::turn {

struct Cidr {
  stun::Address net;  // port ignored
  uint8_t prefix = 0;
  // "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128). nullopt when malformed.
  static std::optional<Cidr> parse(std::string_view text);
  // Compares in the family of `net`; an address of the other family never matches.
  bool contains(const stun::Address& a) const;
};

// The address a peer address actually reaches (IPv4 for the embedded-IPv4 IPv6 forms), port kept.
stun::Address normalizePeer(const stun::Address& a);
// True for the ranges refused by default (after normalization).
bool isSpecialAddress(const stun::Address& normalized);

class PeerFilter {
 public:
  PeerFilter() = default;
  PeerFilter(std::vector<Cidr> allow, std::vector<Cidr> deny, std::vector<stun::Address> own)
      : allow_(std::move(allow)), deny_(std::move(deny)), own_(std::move(own)) {}

  bool allowed(const stun::Address& peer) const;
  void addOwnAddress(const stun::Address& a) { own_.push_back(a); }

 private:
  std::vector<Cidr> allow_, deny_;
  std::vector<stun::Address> own_;
};

}  // namespace kaiwa::turn
