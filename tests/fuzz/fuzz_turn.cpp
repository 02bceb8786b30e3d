// fuzz_turn: the TURN server core (turn/server) and the TCP framing, with a fake I/O layer and a fuzz-driven clock.
// The input is a sequence of records: [kind][len hi][len lo][bytes]. kind & 7: 0 a UDP datagram from one of four
// clients, 1 bytes appended to a TCP stream (framed by turn::StreamConnection, the workers' own, so messages split
// at any point), 2 a datagram from a peer on a relay, or (kind >> 3 & 3) a TCP event of RFC 6062: a peer connection
// accepted on a relay, a Connect's connection completing or failing, bytes through a bound pipe or its closing; 3 time
// passes (tick), 4-7 an authenticated request the harness builds (the nonce is the server's, so the fuzzer reaches
// allocations, permissions, channels and relaying), on UDP or on a TCP connection (kind bit 5): bytes[0] picks
// Allocate (UDP or TCP)/Refresh/CreatePermission/ChannelBind/Connect/ConnectionBind, bytes[1] the peer, bytes[2]
// the channel or the CONNECTION-ID, bytes[3] the lifetime.
//  Invariants: no crash; every reply to a client parses as STUN or ChannelData; a reply before authentication is
//  at most 128 bytes; nothing is sent to or connected to a peer the filter refuses; a Connect starts only from a
//  TCP relay; a connection is bound once, to a TCP/TLS client, only after it was made; relays opened minus relays
//  closed equals the relays the allocations hold when the server is destroyed (none leaked), and so for TCP peer
//  connections.
#include <array>
#include <map>
#include <set>
#include <vector>

#include "fuzz_util.hpp"
#include "turn/server.hpp"
#include "turn/stream_connection.hpp"

using namespace kaiwa;
using namespace std::chrono_literals;

namespace {

struct Io : turn::TurnIo {
  std::map<turn::RelayId, stun::Address> open;
  std::set<turn::RelayId> tcpRelays;
  std::set<turn::ConnectionId> connecting, live, bound;  // TCP peer connections the I/O holds
  std::set<turn::ReservedRelay> reserved;
  turn::RelayId next = 1;
  const turn::PeerFilter* filter = nullptr;
  std::optional<turn::OpenedRelay> openRelay(const turn::RelayRequest& r) override {
    if (open.size() > 64) return std::nullopt;
    turn::OpenedRelay o;
    o.id = next++;
    o.address = *stun::Address::parse(r.family == stun::Family::kV4 ? "198.51.100.1:40000" : "[2001:db8::1]:40000");
    open[o.id] = o.address;
    if (r.tcp) tcpRelays.insert(o.id);
    if (r.reserveNext) {
      o.reserved = next++;
      o.reservedAddress = o.address;
      reserved.insert(*o.reserved);
    }
    return o;
  }
  std::optional<turn::RelayId> adoptRelay(turn::ReservedRelay h) override {
    FUZZ_CHECK(reserved.erase(h) == 1);
    turn::RelayId id = next++;
    open[id] = *stun::Address::parse("198.51.100.1:40001");
    return id;
  }
  void releaseReserved(turn::ReservedRelay h) override { FUZZ_CHECK(reserved.erase(h) == 1); }
  void closeRelay(turn::RelayId id) override {
    FUZZ_CHECK(open.erase(id) == 1);
    tcpRelays.erase(id);
  }
  bool connectToPeer(turn::RelayId from, turn::ConnectionId id, const stun::Address& peer) override {
    FUZZ_CHECK(tcpRelays.count(from) == 1, "Connect from a relay that is not a TCP relay");
    FUZZ_CHECK(filter->allowed(peer));
    FUZZ_CHECK(live.count(id) == 0, "a CONNECTION-ID in use was given again");
    if ((id & 7) == 0) return false;  // sometimes the connection cannot even start
    live.insert(id);
    connecting.insert(id);
    return true;
  }
  void bindConnection(turn::ConnectionId id, const turn::ClientTuple& client) override {
    FUZZ_CHECK(live.count(id) == 1 && connecting.count(id) == 0, "bound before it was made");
    FUZZ_CHECK(client.transport != turn::Transport::kUdp);
    FUZZ_CHECK(bound.insert(id).second, "bound twice");
  }
  void closeTcpConnection(turn::ConnectionId id) override {
    live.erase(id);
    connecting.erase(id);
    bound.erase(id);
  }
  void sendToClient(const turn::ClientTuple&, std::span<const uint8_t> head, std::span<const uint8_t> body,
                    size_t pad) override {
    FUZZ_CHECK(pad < 4);
    if (head.size() == 4) {  // ChannelData (a STUN header alone is 20 bytes); an empty peer datagram gives length 0
      FUZZ_CHECK(turn::isChannelNumber(uint16_t(head[0] << 8 | head[1])));
      FUZZ_CHECK(size_t(head[2] << 8 | head[3]) == body.size());
      return;
    }
    FUZZ_CHECK(body.empty());
    auto m = stun::Message::parse(head);
    FUZZ_CHECK(m.has_value());
    if (m->messageClass() == stun::Class::kError && !m->hasIntegrity() && !m->hasIntegritySha256())
      FUZZ_CHECK(head.size() <= 128);
  }
  void sendToPeer(turn::RelayId from, const stun::Address& peer, std::span<const uint8_t>) override {
    FUZZ_CHECK(open.count(from) == 1);
    FUZZ_CHECK(filter->allowed(peer));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Io io;
  auto creds = std::make_shared<turn::Credentials>(
      "kaiwa", std::vector<std::pair<std::string, std::string>>{{"fuzz", "fuzzpw"}}, std::vector<std::string>{"s"});
  auto filter = std::make_shared<turn::PeerFilter>(std::vector<turn::Cidr>{*turn::Cidr::parse("192.0.2.0/24")},
                                                   std::vector<turn::Cidr>{*turn::Cidr::parse("192.0.2.128/25")},
                                                   std::vector<stun::Address>{});
  io.filter = filter.get();
  TimePoint now{1000000s};
  {
    turn::TurnServer server(io, creds, filter, turn::TurnLimits{}, nullptr);
    turn::StreamConnection stream(now);
    const turn::ClientTuple tcp{*stun::Address::parse("203.0.113.9:1000"), 5, turn::Transport::kTcp};
    size_t pos = 0;
    while (pos + 3 <= size) {
      uint8_t kind = data[pos];
      size_t len = std::min<size_t>(size_t(data[pos + 1]) << 8 | data[pos + 2], size - pos - 3);
      std::span<const uint8_t> body(data + pos + 3, len);
      pos += 3 + len;
      switch (kind & 7) {
        case 0: {
          turn::ClientTuple t{*stun::Address::parse("203.0.113.5:40000"), 0, turn::Transport::kUdp};
          t.client.port = uint16_t(40000 + ((kind >> 2) & 3));
          server.onClientPacket(t, body, now, 1700000000);
          break;
        }
        case 1: {
          // The worker's own framing (StreamConnection), as a TCP connection's bytes arrive.
          stream.received(body);
          while (true) {
            auto next = stream.next(now);
            if (next.kind == turn::StreamConnection::Next::Kind::kMalformed) {  // the connection would be closed
              server.onConnectionClosed(tcp);
              stream = turn::StreamConnection(now);
              break;
            }
            if (next.kind != turn::StreamConnection::Next::Kind::kFrame) break;
            FUZZ_CHECK(turn::tcpFrameLength(next.frame) == next.frame.size(), "a frame that is not one message");
            server.onClientPacket(tcp, next.frame, now, 1700000000);
          }
          (void)stream.expired(now, server.hasAllocation(tcp), turn::TcpTimeouts{});
          break;
        }
        case 2: {
          stun::Address peer = *stun::Address::parse("192.0.2.44:6000");
          peer.ip[3] = uint8_t(kind);
          turn::RelayId relay = io.open.empty() ? 1 : io.open.begin()->first + ((kind >> 2) & 1);
          auto pick = [&](const std::set<turn::ConnectionId>& from) -> std::optional<turn::ConnectionId> {
            if (from.empty()) return std::nullopt;
            auto it = from.begin();
            std::advance(it, (body.empty() ? 0 : body[0]) % from.size());
            return *it;
          };
          switch ((kind >> 3) & 3) {
            case 0:
              server.onPeerPacket(relay, peer, body, now);
              break;
            case 1:
              if (!io.tcpRelays.empty()) relay = *io.tcpRelays.begin() + ((kind >> 2) & 1);
              if (auto id = server.onPeerAccepted(relay, peer, now)) {
                FUZZ_CHECK(io.live.insert(*id).second, "a CONNECTION-ID in use was given again");
              }
              break;
            case 2:
              if (auto id = pick(io.connecting)) {
                bool ok = kind & 0x80;
                io.connecting.erase(*id);
                if (!ok) io.live.erase(*id);  // the I/O gave the failed socket up
                server.onPeerConnected(*id, ok, now);
              }
              break;
            default:
              if (auto id = pick(io.bound)) {
                if (kind & 0x80) {
                  io.live.erase(*id);
                  io.bound.erase(*id);
                  server.onTcpConnectionClosed(*id);
                } else {
                  FUZZ_CHECK(server.onTcpRelayed(*id, body.size(), kind & 0x40, now) >= now);
                }
              }
              break;
          }
          break;
        }
        case 3:
          now += std::chrono::seconds(size_t(kind) * 8);
          server.tick(now);
          break;
        default: {
          static const stun::Method kMethods[] = {
              stun::Method::kAllocate,    stun::Method::kRefresh, stun::Method::kCreatePermission,
              stun::Method::kChannelBind, turn::kMethodConnect,   turn::kMethodConnectionBind,
              stun::Method::kAllocate,    turn::kMethodConnect};
          auto at = [&](size_t i) { return i < body.size() ? body[i] : uint8_t(0); };
          turn::ClientTuple t{*stun::Address::parse("203.0.113.5:40000"), 0, turn::Transport::kUdp};
          t.client.port = uint16_t(40000 + ((kind >> 3) & 3));
          if (kind & 0x20) {  // a TCP connection (a control or a data connection)
            t.transport = turn::Transport::kTcp;
            t.connection = 10 + ((kind >> 3) & 3);
          }
          std::array<uint8_t, 512> buf{};
          stun::TransactionId tx{};
          tx[0] = uint8_t(pos), tx[1] = uint8_t(pos >> 8);
          stun::Builder b(buf, kMethods[at(0) & 7], stun::Class::kRequest, tx);
          const uint8_t udp[4] = {17, 0, 0, 0}, tcpTransport[4] = {6, 0, 0, 0};
          b.attribute(stun::attr::kRequestedTransport, (at(0) & 7) == 6 ? tcpTransport : udp);
          // A CONNECTION-ID the server gave (picked by bytes[2]) or a made-up one.
          turn::ConnectionId cid = at(2);
          if (!io.live.empty() && (at(2) & 0x80)) {
            auto it = io.live.begin();
            std::advance(it, at(2) % io.live.size());
            cid = *it;
          }
          b.u32(turn::kAttrConnectionId, cid);
          stun::Address peer = *stun::Address::parse("192.0.2.0:6000");
          peer.ip[3] = at(1);
          b.xorAddress(stun::attr::kXorPeerAddress, peer);
          b.u32(stun::attr::kChannelNumber, uint32_t(0x3FF0 + at(2)) << 16);
          if (at(3)) b.u32(stun::attr::kLifetime, uint32_t(at(3)) * 30);
          b.text(stun::attr::kUsername, "fuzz").text(stun::attr::kRealm, "kaiwa");
          b.text(stun::attr::kNonce, creds->makeNonce(t.client, now));
          b.messageIntegrity(stun::longTermKeyMd5("fuzz", "kaiwa", "fuzzpw"));
          server.onClientPacket(t, b.bytes(), now, 1700000000);
          break;
        }
      }
    }
  }
  FUZZ_CHECK(io.open.empty(), "a relay socket leaked");
  FUZZ_CHECK(io.reserved.empty(), "a reserved relay socket leaked");
  FUZZ_CHECK(io.live.empty(), "a TCP peer connection leaked");
  return 0;
}
