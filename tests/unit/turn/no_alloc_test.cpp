// The relay hot path allocates nothing: ChannelData and Send indications from the client, datagrams from the peer
// (to a channel and as Data indications), once the allocation, permission and channel exist.
#include <gtest/gtest.h>

#include "turn/server.hpp"

#include "alloc_counter.hpp"

namespace kaiwa::turn {
namespace {

using namespace std::chrono_literals;
using stun::Address;
namespace attr = stun::attr;

struct NullIo : TurnIo {
  size_t toClient = 0, toPeer = 0;
  std::optional<OpenedRelay> openRelay(const RelayRequest&) override {
    OpenedRelay o;
    o.id = 1;
    o.address = *Address::parse("198.51.100.1:50000");
    return o;
  }
  void closeRelay(RelayId) override {}
  std::optional<RelayId> adoptRelay(ReservedRelay) override { return std::nullopt; }
  void releaseReserved(ReservedRelay) override {}
  void sendToClient(const ClientTuple&, std::span<const uint8_t>, std::span<const uint8_t>, size_t) override {
    ++toClient;
  }
  void sendToPeer(RelayId, const Address&, std::span<const uint8_t>) override { ++toPeer; }
};

TEST(TurnHotPath, RelayingAllocatesNothing) {
  NullIo io;
  auto creds = std::make_shared<Credentials>("r", std::vector<std::pair<std::string, std::string>>{{"u", "p"}},
                                             std::vector<std::string>{});
  auto filter = std::make_shared<PeerFilter>(std::vector<Cidr>{*Cidr::parse("192.0.2.0/24")}, std::vector<Cidr>{},
                                             std::vector<Address>{});
  TurnServer server(io, creds, filter, TurnLimits{}, nullptr);
  const ClientTuple client{*Address::parse("203.0.113.1:1000"), 0, Transport::kUdp};
  const Address peer = *Address::parse("192.0.2.7:7000");
  const Address peer2 = *Address::parse("192.0.2.8:7000");
  TimePoint now{1000s};
  std::array<uint8_t, 512> buf{};
  auto request = [&](stun::Method m, auto&& add) {
    stun::TransactionId tx{};
    tx[0] = uint8_t(m);
    stun::Builder b(buf, m, stun::Class::kRequest, tx);
    add(b);
    b.text(attr::kUsername, "u").text(attr::kRealm, "r").text(attr::kNonce, creds->makeNonce(client.client, now));
    b.messageIntegrity(stun::longTermKeyMd5("u", "r", "p"));
    server.onClientPacket(client, b.bytes(), now, 0);
  };
  const uint8_t udp[4] = {17, 0, 0, 0};
  request(stun::Method::kAllocate, [&](stun::Builder& b) { b.attribute(attr::kRequestedTransport, udp); });
  request(stun::Method::kChannelBind, [&](stun::Builder& b) {
    b.u32(attr::kChannelNumber, 0x40000000);
    b.xorAddress(attr::kXorPeerAddress, peer);
  });
  request(stun::Method::kCreatePermission, [&](stun::Builder& b) { b.xorAddress(attr::kXorPeerAddress, peer2); });
  ASSERT_EQ(server.allocationCount(), 1u);

  std::array<uint8_t, 1204> cd{0x40, 0x00, 0x04, 0xB0};
  std::array<uint8_t, 1200> media{};
  std::array<uint8_t, 1400> send{};
  stun::Builder sb(send, stun::Method::kSend, stun::Class::kIndication, stun::TransactionId{});
  sb.xorAddress(attr::kXorPeerAddress, peer2).attribute(attr::kData, media);
  ASSERT_TRUE(sb.ok());
  size_t before = io.toPeer + io.toClient;
  counting = true;
  for (int i = 0; i < 1000; ++i) {
    server.onClientPacket(client, cd, now, 0);
    server.onClientPacket(client, sb.bytes(), now, 0);
    server.onPeerPacket(1, peer, media, now);
    server.onPeerPacket(1, peer2, media, now);
  }
  counting = false;
  EXPECT_EQ(allocations.load(), 0u);
  EXPECT_EQ(io.toPeer + io.toClient - before, 4000u);
}

}  // namespace
}  // namespace kaiwa::turn
