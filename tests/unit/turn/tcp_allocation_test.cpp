// TURN TCP allocations (RFC 6062) in the sans-I/O core, with a fake clock and a fake I/O layer: Allocate with
// REQUESTED-TRANSPORT TCP, Connect (446, 447, 403, timeouts), incoming peer connections (permission,
// ConnectionAttempt, the 30 s bind timeout), ConnectionBind (400, 441), lifetimes and bandwidth.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>
#include <vector>

#include "stun_code.hpp"
#include "turn/server.hpp"

namespace kaiwa::turn {
namespace {

using namespace std::chrono_literals;
using stun::Address;
using stun::Class;
using stun::Method;
namespace attr = stun::attr;

struct FakeIo : TurnIo {
  struct Sent {
    ClientTuple to;
    std::vector<uint8_t> bytes;
  };
  std::vector<Sent> toClient;
  std::map<RelayId, RelayRequest> open;
  RelayId next = 1;
  bool connectFails = false;
  std::map<ConnectionId, std::pair<RelayId, Address>> connecting;  // connectToPeer calls
  std::map<ConnectionId, ClientTuple> bound;
  std::set<ConnectionId> closed;
  size_t peerSends = 0;

  std::optional<OpenedRelay> openRelay(const RelayRequest& r) override {
    OpenedRelay o;
    o.id = next++;
    o.address = *Address::parse("198.51.100.1:50000");
    open[o.id] = r;
    return o;
  }
  void closeRelay(RelayId id) override { EXPECT_EQ(open.erase(id), 1u); }
  std::optional<RelayId> adoptRelay(ReservedRelay) override { return std::nullopt; }
  void releaseReserved(ReservedRelay) override {}
  void sendToClient(const ClientTuple& to, std::span<const uint8_t> head, std::span<const uint8_t> body,
                    size_t pad) override {
    Sent s{to, {head.begin(), head.end()}};
    s.bytes.insert(s.bytes.end(), body.begin(), body.end());
    s.bytes.insert(s.bytes.end(), pad, 0);
    toClient.push_back(std::move(s));
  }
  void sendToPeer(RelayId, const Address&, std::span<const uint8_t>) override { ++peerSends; }
  bool connectToPeer(RelayId from, ConnectionId id, const Address& peer) override {
    EXPECT_TRUE(open.count(from));
    EXPECT_TRUE(open[from].tcp);
    if (connectFails) return false;
    connecting[id] = {from, peer};
    return true;
  }
  void bindConnection(ConnectionId id, const ClientTuple& client) override { bound[id] = client; }
  void closeTcpConnection(ConnectionId id) override { closed.insert(id); }
};

const Address kClientAddr = *Address::parse("203.0.113.5:40000");
const Address kPeer = *Address::parse("192.0.2.44:6000");
const Address kPeer2 = *Address::parse("192.0.2.45:6001");
const ClientTuple kControl{kClientAddr, 1, Transport::kTcp};
const ClientTuple kData{*Address::parse("203.0.113.5:40001"), 2, Transport::kTcp};
const ClientTuple kData2{*Address::parse("203.0.113.5:40002"), 3, Transport::kTls};
const ClientTuple kUdp{kClientAddr, 0, Transport::kUdp};

class TcpAllocationTest : public ::testing::Test {
 protected:
  TcpAllocationTest() { makeServer({}); }

  void makeServer(TurnLimits limits) {
    server_.reset();
    creds_ = std::make_shared<Credentials>(
        "kaiwa.test", std::vector<std::pair<std::string, std::string>>{{"alice", "alicepw"}, {"bob", "bobpw"}},
        std::vector<std::string>{});
    filter_ = std::make_shared<PeerFilter>(std::vector<Cidr>{}, std::vector<Cidr>{}, std::vector<Address>{});
    server_ = std::make_unique<TurnServer>(io_, creds_, filter_, limits, std::make_shared<Quotas>());
  }

  std::optional<stun::Message> request(Method method, const std::function<void(stun::Builder&)>& add,
                                       const ClientTuple& from, const std::string& user = "alice",
                                       const std::string& password = "alicepw") {
    std::array<uint8_t, 1500> buf{};
    stun::TransactionId id{};
    id[0] = uint8_t(++txCounter_);
    id[1] = uint8_t(txCounter_ >> 8);
    stun::Builder b(buf, method, Class::kRequest, id);
    add(b);
    std::string nonce = creds_->makeNonce(from.client, now_);
    b.text(attr::kUsername, user).text(attr::kRealm, "kaiwa.test").text(attr::kNonce, nonce);
    b.messageIntegrity(stun::longTermKeyMd5(user, "kaiwa.test", password));
    b.fingerprint();
    return deliver(from, b.bytes());
  }

  std::optional<stun::Message> deliver(const ClientTuple& from, std::span<const uint8_t> bytes) {
    size_t before = io_.toClient.size();
    server_->onClientPacket(from, bytes, now_, 1'700'000'000);
    return latest(before);
  }

  // The last message sent to a client since `before` messages had been sent, parsed.
  std::optional<stun::Message> latest(size_t before) {
    if (io_.toClient.size() == before) return std::nullopt;
    last_ = io_.toClient.back().bytes;
    return stun::Message::parse(last_);
  }

  std::optional<stun::Message> allocateTcp(const ClientTuple& from = kControl,
                                           const std::function<void(stun::Builder&)>& extra = {}) {
    return request(
        Method::kAllocate,
        [&](stun::Builder& b) {
          const uint8_t tcp[4] = {6, 0, 0, 0};
          b.attribute(attr::kRequestedTransport, tcp);
          if (extra) extra(b);
        },
        from);
  }

  std::optional<stun::Message> connect(const Address& peer, const ClientTuple& from = kControl) {
    return request(
        kMethodConnect, [&](stun::Builder& b) { b.xorAddress(attr::kXorPeerAddress, peer); }, from);
  }

  std::optional<stun::Message> connectionBind(ConnectionId id, const ClientTuple& from = kData,
                                              const std::string& user = "alice",
                                              const std::string& password = "alicepw") {
    return request(
        kMethodConnectionBind, [&](stun::Builder& b) { b.u32(kAttrConnectionId, id); }, from, user, password);
  }

  std::optional<stun::Message> permission(const Address& peer) {
    return request(
        Method::kCreatePermission, [&](stun::Builder& b) { b.xorAddress(attr::kXorPeerAddress, peer); }, kControl);
  }

  // Connect to `peer` and complete the TCP connection: the CONNECTION-ID of the success response.
  ConnectionId connected(const Address& peer) {
    EXPECT_FALSE(connect(peer));  // no answer until the connection is made
    EXPECT_EQ(io_.connecting.size(), 1u);
    ConnectionId id = io_.connecting.begin()->first;
    io_.connecting.clear();
    size_t before = io_.toClient.size();
    server_->onPeerConnected(id, true, now_);
    auto r = latest(before);
    EXPECT_EQ(code(r), 200);
    EXPECT_TRUE(r->is(kMethodConnect, Class::kSuccess));
    EXPECT_EQ(r->u32(kAttrConnectionId), id);
    EXPECT_TRUE(r->verifyIntegrity(stun::longTermKeyMd5("alice", "kaiwa.test", "alicepw")));
    EXPECT_TRUE(r->hasFingerprint());
    return id;
  }

  static int code(const std::optional<stun::Message>& m) { return test_util::responseCode(m); }

  RelayId relay() { return io_.open.begin()->first; }

  FakeIo io_;
  std::shared_ptr<Credentials> creds_;
  std::shared_ptr<PeerFilter> filter_;
  std::unique_ptr<TurnServer> server_;
  TimePoint now_{1000000s};
  std::vector<uint8_t> last_;
  int txCounter_ = 0;
};

TEST_F(TcpAllocationTest, TcpAllocateOnTcpOrTlsGetsATcpRelay) {
  auto r = allocateTcp();
  ASSERT_EQ(code(r), 200);
  ASSERT_TRUE(r->xorAddress(attr::kXorRelayedAddress));
  EXPECT_FALSE(r->has(attr::kReservationToken));
  ASSERT_EQ(io_.open.size(), 1u);
  EXPECT_TRUE(io_.open.begin()->second.tcp);
  ASSERT_EQ(code(allocateTcp(kData2)), 200);  // over TLS too
  EXPECT_EQ(server_->allocationCount(), 2u);
}

TEST_F(TcpAllocationTest, TcpAllocateIsRefusedOverUdpAndWithUdpOnlyAttributes) {
  EXPECT_EQ(code(allocateTcp(kUdp)), 400);  // RFC 6062 section 5.1
  EXPECT_EQ(
      code(allocateTcp(kControl, [](stun::Builder& b) { b.attribute(attr::kEvenPort, std::array<uint8_t, 1>{0}); })),
      400);
  EXPECT_EQ(code(allocateTcp(kControl, [](stun::Builder& b) { b.attribute(attr::kDontFragment, {}); })), 400);
  EXPECT_EQ(code(allocateTcp(kControl,
                             [](stun::Builder& b) {
                               b.attribute(attr::kReservationToken, std::array<uint8_t, 8>{1, 2, 3, 4, 5, 6, 7, 8});
                             })),
            400);
  EXPECT_EQ(server_->allocationCount(), 0u);
  EXPECT_TRUE(io_.open.empty());
}

TEST_F(TcpAllocationTest, ConnectThenConnectionBindMakesAPipe) {
  ASSERT_EQ(code(allocateTcp()), 200);
  ConnectionId id = connected(kPeer);
  EXPECT_EQ(server_->permissionCount(), 1u);  // the Connect installed a permission for the peer
  EXPECT_EQ(server_->tcpConnectionCount(), 1u);
  EXPECT_EQ(server_->stats().tcpConnections, 1u);
  auto r = connectionBind(id);
  ASSERT_EQ(code(r), 200);
  EXPECT_TRUE(r->is(kMethodConnectionBind, Class::kSuccess));
  EXPECT_TRUE(r->verifyIntegrity(stun::longTermKeyMd5("alice", "kaiwa.test", "alicepw")));
  EXPECT_EQ(io_.toClient.back().to, kData);  // answered on the data connection
  ASSERT_EQ(io_.bound.count(id), 1u);
  EXPECT_EQ(io_.bound[id], kData);
  EXPECT_EQ(server_->stats().tcpBinds, 1u);
  // Bound: no timeout applies any more, and a second ConnectionBind for it is refused.
  ASSERT_EQ(code(request(
                Method::kRefresh, [](stun::Builder& b) { b.u32(attr::kLifetime, 3600); }, kControl)),
            200);
  now_ += 3000s;
  server_->tick(now_);
  EXPECT_TRUE(io_.closed.empty());
  EXPECT_EQ(code(connectionBind(id, kData2)), 400);
  // Relayed bytes are counted.
  EXPECT_EQ(server_->onTcpRelayed(id, 1000, true, now_), now_);
  EXPECT_EQ(server_->onTcpRelayed(id, 300, false, now_), now_);
  EXPECT_EQ(server_->stats().tcpBytesToPeers, 1000u);
  EXPECT_EQ(server_->stats().tcpBytesToClients, 300u);
  // The client data connection closes: the server forgets the connection, and a new Connect to the peer
  // works.
  server_->onTcpConnectionClosed(id);
  EXPECT_EQ(server_->tcpConnectionCount(), 0u);
  EXPECT_TRUE(io_.closed.empty());  // the I/O closed both sides itself
  connected(kPeer);
}

TEST_F(TcpAllocationTest, SecondConnectToTheSamePeerIs446) {
  ASSERT_EQ(code(allocateTcp()), 200);
  EXPECT_FALSE(connect(kPeer));
  EXPECT_EQ(code(connect(kPeer)), 446);  // while connecting
  ConnectionId id = io_.connecting.begin()->first;
  server_->onPeerConnected(id, true, now_);
  EXPECT_EQ(code(connect(kPeer)), 446);  // pending
  ASSERT_EQ(code(connectionBind(id)), 200);
  EXPECT_EQ(code(connect(kPeer)), 446);  // bound
  Address otherPort = kPeer;
  otherPort.port = 6001;
  EXPECT_FALSE(connect(otherPort));  // another transport address of the same peer: fine
  EXPECT_EQ(io_.connecting.size(), 2u);
}

TEST_F(TcpAllocationTest, ConnectFailureAndTimeoutAre447) {
  makeServer(TurnLimits{.tcpConnectTimeout = 5s});
  ASSERT_EQ(code(allocateTcp()), 200);
  // The connection is refused.
  EXPECT_FALSE(connect(kPeer));
  ConnectionId refused = io_.connecting.begin()->first;
  size_t before = io_.toClient.size();
  server_->onPeerConnected(refused, false, now_);
  auto r = latest(before);
  EXPECT_EQ(code(r), 447);
  EXPECT_TRUE(r->is(kMethodConnect, Class::kError));
  EXPECT_TRUE(r->verifyIntegrity(stun::longTermKeyMd5("alice", "kaiwa.test", "alicepw")));
  EXPECT_EQ(server_->tcpConnectionCount(), 0u);
  // No answer from the peer: 447 after the configured timeout, and the I/O is told to give up.
  io_.connecting.clear();
  EXPECT_FALSE(connect(kPeer2));
  ConnectionId slow = io_.connecting.begin()->first;
  now_ += 4s;
  before = io_.toClient.size();
  server_->tick(now_);
  EXPECT_EQ(io_.toClient.size(), before);
  now_ += 1s;
  server_->tick(now_);
  EXPECT_EQ(code(latest(before)), 447);
  EXPECT_TRUE(io_.closed.count(slow));
  // A late completion changes nothing.
  before = io_.toClient.size();
  server_->onPeerConnected(slow, true, now_);
  EXPECT_EQ(io_.toClient.size(), before);
  EXPECT_EQ(code(connectionBind(slow)), 400);
  // The I/O cannot even start a connection: 447 at once.
  io_.connectFails = true;
  EXPECT_EQ(code(connect(kPeer)), 447);
  EXPECT_EQ(server_->tcpConnectionCount(), 0u);
}

TEST_F(TcpAllocationTest, DefaultConnectTimeoutIs30Seconds) {
  ASSERT_EQ(code(allocateTcp()), 200);
  EXPECT_FALSE(connect(kPeer));
  size_t before = io_.toClient.size();
  now_ += 29s;
  server_->tick(now_);
  EXPECT_EQ(io_.toClient.size(), before);
  now_ += 1s;
  server_->tick(now_);
  EXPECT_EQ(code(latest(before)), 447);
}

TEST_F(TcpAllocationTest, ConnectRules) {
  EXPECT_EQ(code(connect(kPeer)), 437);  // no allocation on this connection
  ASSERT_EQ(code(allocateTcp()), 200);
  EXPECT_EQ(code(connect(*Address::parse("127.0.0.1:7"))), 403);      // the peer filter
  EXPECT_EQ(code(connect(*Address::parse("[2001:db8::5]:7"))), 443);  // no IPv6 relay
  EXPECT_EQ(code(request(
                kMethodConnect, [](stun::Builder&) {}, kControl)),
            400);                               // no XOR-PEER-ADDRESS
  EXPECT_EQ(code(connect(kPeer, kData)), 437);  // another connection than the control connection
  EXPECT_TRUE(io_.connecting.empty());
  // Connect on a UDP allocation, and ChannelBind on a TCP one: 400.
  ClientTuple udp{*Address::parse("203.0.113.9:1"), 0, Transport::kUdp};
  ASSERT_EQ(code(request(
                Method::kAllocate,
                [](stun::Builder& b) {
                  const uint8_t v[4] = {17, 0, 0, 0};
                  b.attribute(attr::kRequestedTransport, v);
                },
                udp)),
            200);
  EXPECT_EQ(code(connect(kPeer, udp)), 400);
  EXPECT_EQ(code(request(
                Method::kChannelBind,
                [](stun::Builder& b) {
                  b.u32(attr::kChannelNumber, 0x40000000);
                  b.xorAddress(attr::kXorPeerAddress, kPeer);
                },
                kControl)),
            400);
}

TEST_F(TcpAllocationTest, TooManyConnectionsIs508) {
  makeServer(TurnLimits{.maxTcpConnections = 2});
  ASSERT_EQ(code(allocateTcp()), 200);
  EXPECT_FALSE(connect(kPeer));
  EXPECT_FALSE(connect(kPeer2));
  EXPECT_EQ(code(connect(*Address::parse("192.0.2.46:1"))), 508);
  ASSERT_EQ(code(permission(*Address::parse("192.0.2.47:0"))), 200);
  EXPECT_FALSE(server_->onPeerAccepted(relay(), *Address::parse("192.0.2.47:3000"), now_));
}

TEST_F(TcpAllocationTest, IncomingConnectionNeedsAPermissionAndGetsAConnectionAttempt) {
  ASSERT_EQ(code(allocateTcp()), 200);
  EXPECT_FALSE(server_->onPeerAccepted(relay(), kPeer, now_));
  EXPECT_EQ(server_->stats().drops[size_t(TurnDrop::kNoPermission)], 1u);
  ASSERT_EQ(code(permission(kPeer)), 200);
  size_t before = io_.toClient.size();
  auto id = server_->onPeerAccepted(relay(), kPeer, now_);
  ASSERT_TRUE(id);
  auto ind = latest(before);
  ASSERT_TRUE(ind);
  EXPECT_TRUE(ind->is(kMethodConnectionAttempt, Class::kIndication));
  EXPECT_EQ(io_.toClient.back().to, kControl);
  EXPECT_EQ(ind->xorAddress(attr::kXorPeerAddress), kPeer);
  EXPECT_EQ(ind->u32(kAttrConnectionId), *id);
  ASSERT_EQ(code(connectionBind(*id)), 200);
  EXPECT_EQ(io_.bound[*id], kData);
  // An unknown relay or an expired permission: closed.
  EXPECT_FALSE(server_->onPeerAccepted(relay() + 100, kPeer, now_));
  now_ += 301s;
  EXPECT_FALSE(server_->onPeerAccepted(relay(), kPeer, now_));
}

TEST_F(TcpAllocationTest, UnboundPeerConnectionIsClosedAfter30Seconds) {
  ASSERT_EQ(code(allocateTcp()), 200);
  ASSERT_EQ(code(permission(kPeer)), 200);
  auto incoming = server_->onPeerAccepted(relay(), kPeer, now_);
  ASSERT_TRUE(incoming);
  ConnectionId outgoing = connected(kPeer2);
  now_ += 29s;
  server_->tick(now_);
  EXPECT_TRUE(io_.closed.empty());
  now_ += 1s;
  server_->tick(now_);
  EXPECT_EQ(io_.closed, (std::set<ConnectionId>{*incoming, outgoing}));
  EXPECT_EQ(server_->tcpConnectionCount(), 0u);
  EXPECT_EQ(code(connectionBind(*incoming)), 400);
  EXPECT_EQ(code(connectionBind(outgoing)), 400);
  EXPECT_TRUE(io_.bound.empty());
}

TEST_F(TcpAllocationTest, ConnectionBindRules) {
  ASSERT_EQ(code(allocateTcp()), 200);
  ConnectionId id = connected(kPeer);
  EXPECT_EQ(code(connectionBind(id + 1)), 400);                                             // unknown
  EXPECT_EQ(code(connectionBind(id, kControl)), 400);                                       // on the control connection
  EXPECT_EQ(code(connectionBind(id, ClientTuple{kData.client, 0, Transport::kUdp})), 400);  // over UDP
  EXPECT_EQ(code(request(
                kMethodConnectionBind, [](stun::Builder&) {}, kData)),
            400);  // no CONNECTION-ID
  EXPECT_EQ(code(request(
                kMethodConnectionBind,
                [](stun::Builder& b) {
                  b.attribute(kAttrConnectionId, std::array<uint8_t, 2>{1, 2});
                },
                kData)),
            400);                                                   // malformed CONNECTION-ID
  EXPECT_EQ(code(connectionBind(id, kData, "bob", "bobpw")), 441);  // another user's connection
  EXPECT_EQ(code(connectionBind(id, kData, "alice", "wrong")), 401);
  EXPECT_TRUE(io_.bound.empty());
  EXPECT_EQ(code(connectionBind(id)), 200);  // still pending after all that
}

TEST_F(TcpAllocationTest, ControlConnectionCloseOrExpiryClosesEverything) {
  ASSERT_EQ(code(allocateTcp()), 200);
  ConnectionId a = connected(kPeer);
  ASSERT_EQ(code(connectionBind(a)), 200);
  ConnectionId b = connected(kPeer2);
  server_->onConnectionClosed(kControl);
  EXPECT_EQ(io_.closed, (std::set<ConnectionId>{a, b}));
  EXPECT_TRUE(io_.open.empty());
  EXPECT_EQ(server_->tcpConnectionCount(), 0u);
  // Expiry: the same.
  io_.closed.clear();
  ASSERT_EQ(code(allocateTcp()), 200);
  ConnectionId c = connected(kPeer);
  ASSERT_EQ(code(connectionBind(c)), 200);
  now_ += 601s;
  server_->tick(now_);
  EXPECT_EQ(io_.closed, (std::set<ConnectionId>{c}));
  EXPECT_EQ(server_->allocationCount(), 0u);
  EXPECT_TRUE(io_.open.empty());
  // Closing a data connection of a removed allocation is harmless.
  server_->onTcpConnectionClosed(c);
}

TEST_F(TcpAllocationTest, BandwidthLimitPausesTheSender) {
  makeServer(TurnLimits{.bytesPerSecond = 1000});
  ASSERT_EQ(code(allocateTcp()), 200);
  ConnectionId id = connected(kPeer);
  ASSERT_EQ(code(connectionBind(id)), 200);
  EXPECT_EQ(server_->onTcpRelayed(id, 600, true, now_), now_);
  // 600 + 900 = 1500 > the 1000 of burst: the sender waits until the 500 of debt are paid back (0.5 s).
  TimePoint resume = server_->onTcpRelayed(id, 900, false, now_);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(resume - now_).count(), 500);
  now_ += 500ms;
  EXPECT_EQ(server_->onTcpRelayed(id, 0, true, now_), now_);
}

TEST_F(TcpAllocationTest, SendAndChannelDataOnATcpAllocationAreDropped) {
  ASSERT_EQ(code(allocateTcp()), 200);
  ASSERT_EQ(code(permission(kPeer)), 200);
  std::array<uint8_t, 256> buf{};
  stun::Builder b(buf, Method::kSend, Class::kIndication, stun::TransactionId{});
  b.xorAddress(attr::kXorPeerAddress, kPeer).attribute(attr::kData, std::array<uint8_t, 3>{1, 2, 3});
  deliver(kControl, b.bytes());
  const uint8_t cd[8] = {0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0};
  deliver(kControl, cd);
  EXPECT_EQ(io_.peerSends, 0u);
  EXPECT_EQ(server_->stats().drops[size_t(TurnDrop::kUnexpected)], 2u);
}

TEST_F(TcpAllocationTest, ConnectionIdsNameTheirWorker) {
  server_->setWorkerIndex(3);
  ASSERT_EQ(code(allocateTcp()), 200);
  ConnectionId id = connected(kPeer);
  EXPECT_EQ(connectionWorker(id), 3u);
  // connectionBindId finds it in a ConnectionBind request, and nothing in anything else.
  std::array<uint8_t, 64> buf{};
  stun::Builder bind(buf, kMethodConnectionBind, Class::kRequest, stun::TransactionId{});
  bind.u32(kAttrConnectionId, id);
  EXPECT_EQ(connectionBindId(bind.bytes()), id);
  std::array<uint8_t, 64> buf2{};
  stun::Builder other(buf2, kMethodConnect, Class::kRequest, stun::TransactionId{});
  other.u32(kAttrConnectionId, id);
  EXPECT_FALSE(connectionBindId(other.bytes()));
  const uint8_t junk[4] = {0x40, 0, 0, 0};
  EXPECT_FALSE(connectionBindId(junk));
  EXPECT_FALSE(connectionBindId({}));
}

}  // namespace
}  // namespace kaiwa::turn
