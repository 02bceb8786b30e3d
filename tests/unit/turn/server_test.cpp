// The TURN state machine with a fake clock and a fake I/O layer: authentication, allocations, permissions, channels,
// their lifetimes, quotas and the error codes of RFC 8656.
#include "turn/server.hpp"
#include "stun_code.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

namespace kaiwa::turn {
namespace {

using namespace std::chrono_literals;
using stun::Address;
using stun::Class;
using stun::Method;
namespace attr = stun::attr;

// The sockets reserved by EVEN-PORT, which any worker's I/O may adopt or release.
struct FakeKernel {
  std::map<ReservedRelay, Address> reserved;
  ReservedRelay next = 1000;
};

struct FakeIo : TurnIo {
  struct Sent {
    ClientTuple to;
    std::vector<uint8_t> bytes;
  };
  struct PeerSent {
    RelayId relay;
    Address peer;
    std::vector<uint8_t> bytes;
  };
  std::vector<Sent> toClient;
  std::vector<PeerSent> toPeer;
  std::map<RelayId, Address> open;
  RelayId next = 1;
  uint16_t port = 50000;
  bool fail = false;
  bool v6 = true;
  std::vector<RelayRequest> requests;
  std::shared_ptr<FakeKernel> kernel = std::make_shared<FakeKernel>();

  std::optional<OpenedRelay> openRelay(const RelayRequest& r) override {
    requests.push_back(r);
    if (fail || (r.family == stun::Family::kV6 && !v6)) return std::nullopt;
    OpenedRelay o;
    o.id = next++;
    o.address = r.family == stun::Family::kV4 ? *Address::parse("198.51.100.1:0") : *Address::parse("[2001:db8::1]:0");
    o.address.port = port;
    port += 2;
    open[o.id] = o.address;
    if (r.reserveNext) {
      o.reserved = kernel->next++;
      o.reservedAddress = o.address;
      o.reservedAddress->port++;
      kernel->reserved[*o.reserved] = *o.reservedAddress;
    }
    return o;
  }
  void closeRelay(RelayId id) override { open.erase(id); }
  std::optional<RelayId> adoptRelay(ReservedRelay h) override {
    auto it = kernel->reserved.find(h);
    if (it == kernel->reserved.end()) return std::nullopt;
    RelayId id = next++;
    open[id] = it->second;
    kernel->reserved.erase(it);
    return id;
  }
  void releaseReserved(ReservedRelay h) override { EXPECT_EQ(kernel->reserved.erase(h), 1u); }
  void sendToClient(const ClientTuple& to, std::span<const uint8_t> head, std::span<const uint8_t> body,
                    size_t pad) override {
    Sent s{to, {head.begin(), head.end()}};
    s.bytes.insert(s.bytes.end(), body.begin(), body.end());
    s.bytes.insert(s.bytes.end(), pad, 0);
    toClient.push_back(std::move(s));
  }
  void sendToPeer(RelayId from, const Address& peer, std::span<const uint8_t> data) override {
    toPeer.push_back({from, peer, {data.begin(), data.end()}});
  }
};

const Address kClientAddr = *Address::parse("203.0.113.5:40000");
const Address kPeer = *Address::parse("192.0.2.44:6000");
const Address kPeer2 = *Address::parse("192.0.2.45:6001");

class TurnServerTest : public ::testing::Test {
 protected:
  TurnServerTest() { makeServer({}); }

  void makeServer(TurnLimits limits, std::vector<Cidr> allow = {}) {
    server_.reset();
    creds_ = std::make_shared<Credentials>(
        "kaiwa.test", std::vector<std::pair<std::string, std::string>>{{"alice", "alicepw"}, {"bob", "bobpw"}},
        std::vector<std::string>{"s3cr3t"});
    filter_ = std::make_shared<PeerFilter>(std::move(allow), std::vector<Cidr>{}, std::vector<Address>{});
    quotas_ = std::make_shared<Quotas>();
    reservations_ = std::make_shared<Reservations>();
    server_ = std::make_unique<TurnServer>(io_, creds_, filter_, limits, quotas_, reservations_);
  }

  stun::TransactionId tx() {
    stun::TransactionId t{};
    t[0] = uint8_t(++txCounter_);
    t[1] = uint8_t(txCounter_ >> 8);
    return t;
  }

  // Sends a request built by `add` and returns the parsed response (and keeps its bytes alive).
  std::optional<stun::Message> request(Method method, const std::function<void(stun::Builder&)>& add,
                                       const ClientTuple& from, const std::string& user = "alice",
                                       const std::string& password = "alicepw", bool authenticate = true,
                                       std::optional<stun::TransactionId> id = std::nullopt) {
    std::array<uint8_t, 1500> buf{};
    stun::Builder b(buf, method, Class::kRequest, id.value_or(tx()));
    add(b);
    if (authenticate) {
      if (nonce_.empty()) nonce_ = creds_->makeNonce(from.client, now_);
      b.text(attr::kUsername, user).text(attr::kRealm, "kaiwa.test").text(attr::kNonce, nonce_);
      b.messageIntegrity(stun::longTermKeyMd5(user, "kaiwa.test", password));
    }
    b.fingerprint();
    return deliver(from, b.bytes());
  }

  std::optional<stun::Message> deliver(const ClientTuple& from, std::span<const uint8_t> bytes) {
    FakeIo& io = atIo_ ? *atIo_ : io_;
    size_t before = io.toClient.size();
    (at_ ? at_ : server_.get())->onClientPacket(from, bytes, now_, nowUnix_);
    if (io.toClient.size() == before) return std::nullopt;
    last_ = io.toClient.back().bytes;
    return stun::Message::parse(last_);
  }

  std::optional<stun::Message> allocate(const ClientTuple& from = client_,
                                        const std::function<void(stun::Builder&)>& extra = {}) {
    return request(
        Method::kAllocate,
        [&](stun::Builder& b) {
          const uint8_t udp[4] = {17, 0, 0, 0};
          b.attribute(attr::kRequestedTransport, udp);
          if (extra) extra(b);
        },
        from);
  }

  std::optional<stun::Message> permission(const Address& peer) {
    return request(
        Method::kCreatePermission, [&](stun::Builder& b) { b.xorAddress(attr::kXorPeerAddress, peer); }, client_);
  }

  std::optional<stun::Message> channelBind(uint16_t number, const Address& peer) {
    return request(
        Method::kChannelBind,
        [&](stun::Builder& b) {
          b.u32(attr::kChannelNumber, uint32_t(number) << 16);
          b.xorAddress(attr::kXorPeerAddress, peer);
        },
        client_);
  }

  std::optional<stun::Message> refresh(std::optional<uint32_t> lifetime) {
    return request(
        Method::kRefresh,
        [&](stun::Builder& b) {
          if (lifetime) b.u32(attr::kLifetime, *lifetime);
        },
        client_);
  }

  static int code(const std::optional<stun::Message>& m) { return test_util::responseCode(m); }

  RelayId relayOf() { return io_.open.begin()->first; }

  FakeIo io_;
  std::shared_ptr<Credentials> creds_;
  std::shared_ptr<PeerFilter> filter_;
  std::shared_ptr<Quotas> quotas_;
  std::shared_ptr<Reservations> reservations_;
  std::unique_ptr<TurnServer> server_;
  TurnServer* at_ = nullptr;  // when set, requests go to this server (another worker) and its I/O instead
  FakeIo* atIo_ = nullptr;
  TimePoint now_{1000000s};
  int64_t nowUnix_ = 1'700'000'000;
  std::string nonce_;
  std::vector<uint8_t> last_;
  int txCounter_ = 0;
  static inline const ClientTuple client_{kClientAddr, 0, Transport::kUdp};
};

TEST_F(TurnServerTest, BindingAnswersWithTheMappedAddress) {
  std::array<uint8_t, 64> buf{};
  stun::Builder b(buf, Method::kBinding, Class::kRequest, tx());
  auto r = deliver(client_, b.bytes());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->is(Method::kBinding, Class::kSuccess));
  EXPECT_EQ(r->xorAddress(attr::kXorMappedAddress), kClientAddr);
}

TEST_F(TurnServerTest, UnknownComprehensionRequiredAttributeGets420) {
  std::array<uint8_t, 64> buf{};
  stun::Builder b(buf, Method::kBinding, Class::kRequest, tx());
  b.u32(0x7F00, 1).u32(0xC000, 2);  // the second is comprehension-optional: ignored
  auto r = deliver(client_, b.bytes());
  EXPECT_EQ(code(r), 420);
  auto u = r->find(attr::kUnknownAttributes);
  ASSERT_TRUE(u);
  ASSERT_EQ(u->size(), 2u);
  EXPECT_EQ((*u)[0], 0x7F);
}

TEST_F(TurnServerTest, UnauthenticatedAllocateIsChallengedWithoutAmplification) {
  auto r = request(
      Method::kAllocate,
      [](stun::Builder& b) {
        const uint8_t udp[4] = {17, 0, 0, 0};
        b.attribute(attr::kRequestedTransport, udp);
      },
      client_, "", "", false);
  EXPECT_EQ(code(r), 401);
  EXPECT_EQ(r->text(attr::kRealm), "kaiwa.test");
  ASSERT_TRUE(r->text(attr::kNonce));
  EXPECT_TRUE(r->has(attr::kPasswordAlgorithms));
  EXPECT_FALSE(r->hasIntegrity());
  EXPECT_LE(last_.size(), 128u);
}

TEST_F(TurnServerTest, AllocateSucceedsWithDefaultLifetime) {
  auto r = allocate();
  ASSERT_EQ(code(r), 200);
  EXPECT_TRUE(r->verifyIntegrity(stun::longTermKeyMd5("alice", "kaiwa.test", "alicepw")));
  EXPECT_EQ(r->u32(attr::kLifetime), 600u);
  EXPECT_EQ(r->xorAddress(attr::kXorMappedAddress), kClientAddr);
  auto relayed = r->xorAddress(attr::kXorRelayedAddress);
  ASSERT_TRUE(relayed);
  EXPECT_EQ(relayed->port, 50000);
  EXPECT_EQ(server_->allocationCount(), 1u);
  EXPECT_EQ(quotas_->allocations.load(), 1);
}

TEST_F(TurnServerTest, WrongPasswordIs401) {
  auto r = request(
      Method::kAllocate,
      [](stun::Builder& b) {
        const uint8_t udp[4] = {17, 0, 0, 0};
        b.attribute(attr::kRequestedTransport, udp);
      },
      client_, "alice", "wrong");
  EXPECT_EQ(code(r), 401);
  EXPECT_EQ(server_->allocationCount(), 0u);
  EXPECT_EQ(server_->stats().authFailures, 1u);
}

TEST_F(TurnServerTest, RestCredentialsWorkBesideStaticUsers) {
  std::string user = std::to_string(nowUnix_ + 3600) + ":carol";
  auto r = request(
      Method::kAllocate,
      [](stun::Builder& b) {
        const uint8_t udp[4] = {17, 0, 0, 0};
        b.attribute(attr::kRequestedTransport, udp);
      },
      client_, user, Credentials::restPassword("s3cr3t", user));
  EXPECT_EQ(code(r), 200);
  // Expired REST username: refused.
  std::string old = std::to_string(nowUnix_ - 1) + ":carol";
  ClientTuple other{*Address::parse("203.0.113.6:1"), 0, Transport::kUdp};
  nonce_.clear();
  auto r2 = request(
      Method::kAllocate,
      [](stun::Builder& b) {
        const uint8_t udp[4] = {17, 0, 0, 0};
        b.attribute(attr::kRequestedTransport, udp);
      },
      other, old, Credentials::restPassword("s3cr3t", old));
  EXPECT_EQ(code(r2), 401);
}

TEST_F(TurnServerTest, StaleNonceIs438WithAFreshNonce) {
  ASSERT_EQ(code(allocate(client_, [](stun::Builder& b) { b.u32(attr::kLifetime, 3600); })), 200);
  now_ += 601s;
  auto r = refresh(600);
  EXPECT_EQ(code(r), 438);
  ASSERT_TRUE(r->text(attr::kNonce));
  EXPECT_NE(*r->text(attr::kNonce), nonce_);
  nonce_ = std::string(*r->text(attr::kNonce));
  EXPECT_EQ(code(refresh(600)), 200);
}

TEST_F(TurnServerTest, SecondAllocateOnTheSameTupleIs437UnlessRetransmitted) {
  auto id = tx();
  auto add = [](stun::Builder& b) {
    const uint8_t udp[4] = {17, 0, 0, 0};
    b.attribute(attr::kRequestedTransport, udp);
  };
  ASSERT_EQ(code(request(Method::kAllocate, add, client_, "alice", "alicepw", true, id)), 200);
  EXPECT_EQ(code(request(Method::kAllocate, add, client_, "alice", "alicepw", true, id)), 200);  // retransmission
  EXPECT_EQ(code(allocate()), 437);
  EXPECT_EQ(io_.open.size(), 1u);
}

TEST_F(TurnServerTest, RefreshWithoutAllocationIs437) { EXPECT_EQ(code(refresh(600)), 437); }

TEST_F(TurnServerTest, OtherUserOnTheTupleIs441) {
  ASSERT_EQ(code(allocate()), 200);
  auto r = request(
      Method::kRefresh, [](stun::Builder&) {}, client_, "bob", "bobpw");
  EXPECT_EQ(code(r), 441);
}

TEST_F(TurnServerTest, OtherTransportsAre442AndMissingTransportIs400) {
  auto r = request(
      Method::kAllocate,
      [](stun::Builder& b) {
        const uint8_t sctp[4] = {132, 0, 0, 0};
        b.attribute(attr::kRequestedTransport, sctp);
      },
      client_);
  EXPECT_EQ(code(r), 442);
  // TCP (RFC 6062) over UDP: 400 (tcp_allocation_test.cpp has the rest).
  auto t = request(
      Method::kAllocate,
      [](stun::Builder& b) {
        const uint8_t tcp[4] = {6, 0, 0, 0};
        b.attribute(attr::kRequestedTransport, tcp);
      },
      client_);
  EXPECT_EQ(code(t), 400);
  EXPECT_EQ(code(request(
                Method::kAllocate, [](stun::Builder&) {}, client_)),
            400);
  EXPECT_EQ(server_->allocationCount(), 0u);
}

TEST_F(TurnServerTest, UserQuotaIs486AndCapacityIs508) {
  TurnLimits l;
  l.maxAllocationsPerUser = 1;
  l.maxAllocations = 2;
  makeServer(l);
  ASSERT_EQ(code(allocate()), 200);
  ClientTuple c2{*Address::parse("203.0.113.5:40001"), 0, Transport::kUdp};
  EXPECT_EQ(code(allocate(c2)), 486);
  auto add = [](stun::Builder& b) {
    const uint8_t udp[4] = {17, 0, 0, 0};
    b.attribute(attr::kRequestedTransport, udp);
  };
  EXPECT_EQ(code(request(Method::kAllocate, add, c2, "bob", "bobpw")), 200);
  ClientTuple c3{*Address::parse("203.0.113.5:40002"), 0, Transport::kUdp};
  std::string user = std::to_string(nowUnix_ + 60) + ":dave";
  EXPECT_EQ(code(request(Method::kAllocate, add, c3, user, Credentials::restPassword("s3cr3t", user))), 508);
  EXPECT_EQ(server_->stats().quotaRefusals[size_t(QuotaRefusal::kUser)], 1u);
  EXPECT_EQ(server_->stats().quotaRefusals[size_t(QuotaRefusal::kTotal)], 1u);
  io_.fail = true;
  EXPECT_EQ(quotas_->allocations.load(), 2);
}

TEST_F(TurnServerTest, RestUsernamesOfOneUserShareTheQuota) {
  TurnLimits l;
  l.maxAllocationsPerUser = 1;
  makeServer(l);
  auto add = [](stun::Builder& b) {
    const uint8_t udp[4] = {17, 0, 0, 0};
    b.attribute(attr::kRequestedTransport, udp);
  };
  std::string u1 = std::to_string(nowUnix_ + 60) + ":erin", u2 = std::to_string(nowUnix_ + 61) + ":erin";
  EXPECT_EQ(code(request(Method::kAllocate, add, client_, u1, Credentials::restPassword("s3cr3t", u1))), 200);
  ClientTuple c2{*Address::parse("203.0.113.5:40001"), 0, Transport::kUdp};
  EXPECT_EQ(code(request(Method::kAllocate, add, c2, u2, Credentials::restPassword("s3cr3t", u2))), 486);
}

// Many credentials from one address (each /api/ice-servers answer is a user of its own) cannot take every
// allocation: the per-address quota is 486 too, counted over every worker, IPv6 per /64.
TEST_F(TurnServerTest, AddressQuotaIs486AcrossUsersAndWorkers) {
  TurnLimits l;
  l.maxAllocationsPerAddress = 2;
  makeServer(l);
  FakeIo io2;
  TurnServer worker2(io2, creds_, filter_, l, quotas_, reservations_);
  auto add = [](stun::Builder& b) {
    const uint8_t udp[4] = {17, 0, 0, 0};
    b.attribute(attr::kRequestedTransport, udp);
  };
  auto restAllocate = [&](const ClientTuple& from, const std::string& who) {
    std::string user = std::to_string(nowUnix_ + 60) + ":" + who;
    nonce_ = creds_->makeNonce(from.client, now_);
    return code(request(Method::kAllocate, add, from, user, Credentials::restPassword("s3cr3t", user)));
  };
  ClientTuple c1{*Address::parse("203.0.113.5:1"), 0, Transport::kUdp};
  ClientTuple c2{*Address::parse("203.0.113.5:2"), 0, Transport::kUdp};
  ClientTuple c3{*Address::parse("203.0.113.5:3"), 0, Transport::kUdp};
  EXPECT_EQ(restAllocate(c1, "a1"), 200);
  at_ = &worker2;
  atIo_ = &io2;
  EXPECT_EQ(restAllocate(c2, "a2"), 200);
  EXPECT_EQ(restAllocate(c3, "a3"), 486);  // a third user, same address
  EXPECT_EQ(worker2.stats().quotaRefusals[size_t(QuotaRefusal::kAddress)], 1u);
  EXPECT_EQ(restAllocate({*Address::parse("203.0.113.6:3"), 0, Transport::kUdp}, "a3"), 200);  // another address
  // IPv6: one /64 is one address.
  EXPECT_EQ(restAllocate({*Address::parse("[2001:db8:1:2::1]:1"), 0, Transport::kUdp}, "b1"), 200);
  EXPECT_EQ(restAllocate({*Address::parse("[2001:db8:1:2::2]:1"), 0, Transport::kUdp}, "b2"), 200);
  EXPECT_EQ(restAllocate({*Address::parse("[2001:db8:1:2:ffff::3]:1"), 0, Transport::kUdp}, "b3"), 486);
  EXPECT_EQ(restAllocate({*Address::parse("[2001:db8:1:3::1]:1"), 0, Transport::kUdp}, "b3"), 200);
  // A freed allocation gives the address its place back.
  at_ = nullptr;
  atIo_ = nullptr;
  nonce_ = creds_->makeNonce(c1.client, now_);
  ASSERT_EQ(code(request(
                Method::kRefresh, [](stun::Builder& b) { b.u32(attr::kLifetime, 0); }, c1,
                std::to_string(nowUnix_ + 60) + ":a1",
                Credentials::restPassword("s3cr3t", std::to_string(nowUnix_ + 60) + ":a1"))),
            200);
  EXPECT_EQ(restAllocate(c3, "a3"), 200);
}

// --turn-max-allocations is one total over every worker.
TEST_F(TurnServerTest, TotalQuotaIsSharedByTheWorkers) {
  TurnLimits l;
  l.maxAllocations = 2;
  makeServer(l);
  FakeIo io2;
  TurnServer worker2(io2, creds_, filter_, l, quotas_, reservations_);
  ClientTuple c2{*Address::parse("203.0.113.7:1"), 0, Transport::kUdp};
  ClientTuple c3{*Address::parse("203.0.113.8:1"), 0, Transport::kUdp};
  ASSERT_EQ(code(allocate()), 200);
  at_ = &worker2;
  atIo_ = &io2;
  nonce_.clear();
  EXPECT_EQ(code(allocate(c2)), 200);
  nonce_.clear();
  EXPECT_EQ(code(allocate(c3)), 508);
  EXPECT_EQ(worker2.stats().quotaRefusals[size_t(QuotaRefusal::kTotal)], 1u);
  EXPECT_EQ(quotas_->allocations.load(), 2);
  at_ = nullptr;
  atIo_ = nullptr;
  server_.reset();  // worker 1 goes with its allocation: its place is free again
  EXPECT_EQ(quotas_->allocations.load(), 1);
  at_ = &worker2;
  atIo_ = &io2;
  nonce_.clear();
  EXPECT_EQ(code(allocate(c3)), 200);
  at_ = nullptr;
  atIo_ = nullptr;
}

TEST_F(TurnServerTest, NoRelayPortIs508) {
  io_.fail = true;
  EXPECT_EQ(code(allocate()), 508);
  EXPECT_EQ(quotas_->allocations.load(), 0);
}

TEST_F(TurnServerTest, LifetimeIsClampedAndRefreshZeroDeletes) {
  ASSERT_EQ(code(allocate(client_, [](stun::Builder& b) { b.u32(attr::kLifetime, 100000); })), 200);
  auto r = refresh(100000);
  EXPECT_EQ(r->u32(attr::kLifetime), 3600u);
  r = refresh(10);
  EXPECT_EQ(r->u32(attr::kLifetime), 600u);
  r = refresh(0);
  EXPECT_EQ(code(r), 200);
  EXPECT_EQ(r->u32(attr::kLifetime), 0u);
  EXPECT_EQ(server_->allocationCount(), 0u);
  EXPECT_TRUE(io_.open.empty());
  EXPECT_EQ(quotas_->allocations.load(), 0);
}

TEST_F(TurnServerTest, AllocationExpiresWithoutRefresh) {
  ASSERT_EQ(code(allocate()), 200);
  now_ += 599s;
  server_->tick(now_);
  EXPECT_EQ(server_->allocationCount(), 1u);
  nonce_.clear();
  ASSERT_EQ(code(refresh(std::nullopt)), 200);  // another 600 s from now
  now_ += 599s;
  server_->tick(now_);
  EXPECT_EQ(server_->allocationCount(), 1u);
  now_ += 2s;
  server_->tick(now_);
  EXPECT_EQ(server_->allocationCount(), 0u);
  EXPECT_TRUE(io_.open.empty());
}

TEST_F(TurnServerTest, PermissionsGateRelayingAndExpireAfter300s) {
  makeServer({}, {*Cidr::parse("192.0.2.0/24")});
  ASSERT_EQ(code(allocate()), 200);
  RelayId relay = relayOf();
  // Send indication without permission: dropped.
  std::array<uint8_t, 128> buf{};
  const uint8_t payload[] = {1, 2, 3};
  auto send = [&] {
    stun::Builder b(buf, Method::kSend, Class::kIndication, tx());
    b.xorAddress(attr::kXorPeerAddress, kPeer).attribute(attr::kData, payload);
    server_->onClientPacket(client_, b.bytes(), now_, nowUnix_);
  };
  send();
  EXPECT_TRUE(io_.toPeer.empty());
  ASSERT_EQ(code(permission(kPeer)), 200);
  send();
  ASSERT_EQ(io_.toPeer.size(), 1u);
  EXPECT_EQ(io_.toPeer[0].peer, kPeer);
  EXPECT_EQ(io_.toPeer[0].bytes.size(), 3u);
  // The peer answers from another port of the same IP: a Data indication.
  Address peerOtherPort = kPeer;
  peerOtherPort.port = 7000;
  server_->onPeerPacket(relay, peerOtherPort, payload, now_);
  auto d = stun::Message::parse(io_.toClient.back().bytes);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->is(Method::kData, Class::kIndication));
  EXPECT_EQ(d->xorAddress(attr::kXorPeerAddress), peerOtherPort);
  // From another IP: dropped.
  size_t n = io_.toClient.size();
  server_->onPeerPacket(relay, kPeer2, payload, now_);
  EXPECT_EQ(io_.toClient.size(), n);
  now_ += 300s;
  server_->tick(now_);
  send();
  EXPECT_EQ(io_.toPeer.size(), 1u);
  EXPECT_EQ(server_->permissionCount(), 0u);
}

TEST_F(TurnServerTest, PeerFilterRefusesLoopbackWith403) {
  ASSERT_EQ(code(allocate()), 200);
  EXPECT_EQ(code(permission(*Address::parse("127.0.0.1:9"))), 403);
  EXPECT_EQ(code(permission(*Address::parse("[::ffff:127.0.0.1]:9"))), 443);  // no IPv6 relay at all
  EXPECT_EQ(code(channelBind(0x4000, *Address::parse("10.0.0.1:9"))), 403);
}

TEST_F(TurnServerTest, ChannelsRelayBothWaysWithTcpPadding) {
  makeServer({}, {*Cidr::parse("192.0.2.0/24")});
  ClientTuple tcp{kClientAddr, 7, Transport::kTcp};
  auto add = [](stun::Builder& b) {
    const uint8_t udp[4] = {17, 0, 0, 0};
    b.attribute(attr::kRequestedTransport, udp);
  };
  ASSERT_EQ(code(request(Method::kAllocate, add, tcp)), 200);
  auto bind = request(
      Method::kChannelBind,
      [&](stun::Builder& b) {
        b.u32(attr::kChannelNumber, 0x40010000);
        b.xorAddress(attr::kXorPeerAddress, kPeer);
      },
      tcp);
  ASSERT_EQ(code(bind), 200);
  const uint8_t cd[] = {0x40, 0x01, 0x00, 0x03, 'a', 'b', 'c', 0};
  server_->onClientPacket(tcp, cd, now_, nowUnix_);
  ASSERT_EQ(io_.toPeer.size(), 1u);
  EXPECT_EQ(io_.toPeer[0].bytes, (std::vector<uint8_t>{'a', 'b', 'c'}));
  const uint8_t back[] = {'x', 'y', 'z', 'w', 'v'};
  server_->onPeerPacket(io_.open.begin()->first, kPeer, back, now_);
  EXPECT_EQ(io_.toClient.back().bytes,
            (std::vector<uint8_t>{0x40, 0x01, 0x00, 0x05, 'x', 'y', 'z', 'w', 'v', 0, 0, 0}));
  EXPECT_EQ(server_->stats().channelDataIn, 1u);
  EXPECT_EQ(server_->stats().channelDataOut, 1u);
  EXPECT_EQ(tcpFrameLength({back, 0}), std::nullopt);
  EXPECT_EQ(tcpFrameLength(cd), 8u);
  server_->onConnectionClosed(tcp);
  EXPECT_EQ(server_->allocationCount(), 0u);
}

TEST_F(TurnServerTest, ChannelBindRules) {
  makeServer({}, {*Cidr::parse("192.0.2.0/24")});
  ASSERT_EQ(code(allocate()), 200);
  EXPECT_EQ(code(channelBind(0x3FFF, kPeer)), 400);
  EXPECT_EQ(code(channelBind(0x7FFF, kPeer)), 400);
  EXPECT_EQ(code(channelBind(0x8000, kPeer)), 400);
  ASSERT_EQ(code(channelBind(0x4000, kPeer)), 200);
  EXPECT_EQ(code(channelBind(0x4000, kPeer)), 200);   // refresh
  EXPECT_EQ(code(channelBind(0x4000, kPeer2)), 400);  // number bound to another peer
  EXPECT_EQ(code(channelBind(0x4001, kPeer)), 400);   // peer bound to another number
  EXPECT_EQ(server_->permissionCount(), 1u);
  // The channel lasts 600 s, its permission 300 s unless refreshed.
  RelayId relay = relayOf();
  const uint8_t x[] = {1};
  now_ += 301s;
  server_->tick(now_);
  server_->onPeerPacket(relay, kPeer, x, now_);
  EXPECT_EQ(server_->stats().channelDataOut, 0u);
  nonce_.clear();
  ASSERT_EQ(code(permission(kPeer)), 200);
  server_->onPeerPacket(relay, kPeer, x, now_);
  EXPECT_EQ(server_->stats().channelDataOut, 1u);
  now_ += 300s;
  server_->tick(now_);
  EXPECT_EQ(server_->channelCount(), 0u);
}

TEST_F(TurnServerTest, EvenPortReservationAndToken) {
  auto r = allocate(client_, [](stun::Builder& b) {
    const uint8_t even[1] = {0x80};
    b.attribute(attr::kEvenPort, even);
  });
  ASSERT_EQ(code(r), 200);
  ASSERT_TRUE(io_.requests.back().evenPort && io_.requests.back().reserveNext);
  auto token = r->find(attr::kReservationToken);
  ASSERT_TRUE(token);
  ASSERT_EQ(token->size(), 8u);
  std::vector<uint8_t> t(token->begin(), token->end());
  ClientTuple c2{*Address::parse("203.0.113.5:40001"), 0, Transport::kUdp};
  auto r2 = allocate(c2, [&](stun::Builder& b) { b.attribute(attr::kReservationToken, t); });
  ASSERT_EQ(code(r2), 200);
  EXPECT_EQ(r2->xorAddress(attr::kXorRelayedAddress)->port, 50001);
  ClientTuple c3{*Address::parse("203.0.113.5:40002"), 0, Transport::kUdp};
  EXPECT_EQ(code(allocate(c3, [&](stun::Builder& b) { b.attribute(attr::kReservationToken, t); })), 508);
  ClientTuple c4{*Address::parse("203.0.113.5:40003"), 0, Transport::kUdp};
  EXPECT_EQ(code(allocate(c4,
                          [&](stun::Builder& b) {
                            const uint8_t even[1] = {0};
                            b.attribute(attr::kEvenPort, even);
                            b.attribute(attr::kReservationToken, t);
                          })),
            400);
}

// SO_REUSEPORT may hand the Allocate with the token to another worker than the one that reserved the port.
TEST_F(TurnServerTest, ReservationTokenIsUsableOnAnotherWorker) {
  const uint8_t even[1] = {0x80};
  auto r = allocate(client_, [&](stun::Builder& b) { b.attribute(attr::kEvenPort, even); });
  ASSERT_EQ(code(r), 200);
  auto token = r->find(attr::kReservationToken);
  ASSERT_TRUE(token);
  std::vector<uint8_t> t(token->begin(), token->end());
  EXPECT_EQ(reservations_->size(), 1u);

  FakeIo io2;  // the second worker: its own I/O and TurnServer, the same shared state
  io2.kernel = io_.kernel;
  io2.next = 100;
  TurnServer worker2(io2, creds_, filter_, TurnLimits{}, quotas_, reservations_);
  at_ = &worker2;
  atIo_ = &io2;
  ClientTuple c2{*Address::parse("203.0.113.5:40001"), 0, Transport::kUdp};
  auto r2 = allocate(c2, [&](stun::Builder& b) { b.attribute(attr::kReservationToken, t); });
  ASSERT_EQ(code(r2), 200);
  EXPECT_EQ(r2->xorAddress(attr::kXorRelayedAddress)->port, 50001);
  EXPECT_TRUE(io_.kernel->reserved.empty());
  ASSERT_EQ(io2.open.size(), 1u);  // the reserved socket is now worker 2's relay
  RelayId adopted = io2.open.begin()->first;
  EXPECT_EQ(io2.open.begin()->second.port, 50001);
  EXPECT_EQ(worker2.allocationCount(), 1u);
  EXPECT_EQ(reservations_->size(), 0u);

  // The relay works on worker 2.
  ASSERT_EQ(code(request(
                Method::kCreatePermission, [&](stun::Builder& b) { b.xorAddress(attr::kXorPeerAddress, kPeer); }, c2)),
            200);
  const uint8_t x[3] = {1, 2, 3};
  worker2.onPeerPacket(adopted, kPeer, x, now_);
  EXPECT_EQ(worker2.stats().dataIndications, 1u);
  EXPECT_EQ(io2.toClient.back().to, c2);

  // Used once: neither worker takes it again.
  ClientTuple c3{*Address::parse("203.0.113.5:40002"), 0, Transport::kUdp};
  EXPECT_EQ(code(allocate(c3, [&](stun::Builder& b) { b.attribute(attr::kReservationToken, t); })), 508);
  at_ = nullptr;
  atIo_ = nullptr;
  EXPECT_EQ(code(allocate(c3, [&](stun::Builder& b) { b.attribute(attr::kReservationToken, t); })), 508);
}

TEST_F(TurnServerTest, ReservationsExpireOnAnyWorkerAndGoWithTheirServer) {
  const uint8_t even[1] = {0x80};
  ASSERT_EQ(code(allocate(client_, [&](stun::Builder& b) { b.attribute(attr::kEvenPort, even); })), 200);
  FakeIo io2;
  io2.kernel = io_.kernel;
  auto worker2 = std::make_unique<TurnServer>(io2, creds_, filter_, TurnLimits{}, quotas_, reservations_);
  worker2->tick(now_ + 29s);
  EXPECT_EQ(io_.kernel->reserved.size(), 1u);
  worker2->tick(now_ + 30s);  // 30 s: released by whichever worker ticks first
  EXPECT_TRUE(io_.kernel->reserved.empty());
  EXPECT_EQ(reservations_->size(), 0u);

  ClientTuple c2{*Address::parse("203.0.113.5:40001"), 0, Transport::kUdp};
  ASSERT_EQ(code(allocate(c2, [&](stun::Builder& b) { b.attribute(attr::kEvenPort, even); })), 200);
  EXPECT_EQ(io_.kernel->reserved.size(), 1u);
  worker2.reset();  // another worker going does not take this one's reservation
  EXPECT_EQ(io_.kernel->reserved.size(), 1u);
  server_.reset();
  EXPECT_TRUE(io_.kernel->reserved.empty());
  EXPECT_EQ(reservations_->size(), 0u);
}

// RFC 8489 section 9.2: USERNAME, REALM and the password go through SASLprep (RFC 4013).
TEST_F(TurnServerTest, CredentialsAreSaslpreppedOnBothSides) {
  // Configured as ROMAN NUMERAL NINE with the password I<SOFT HYPHEN>X: both prepare to "IX".
  creds_ = std::make_shared<Credentials>("kaiwa.test",
                                         std::vector<std::pair<std::string, std::string>>{{"\u2168", "I\u00ADX"}},
                                         std::vector<std::string>{});
  server_ = std::make_unique<TurnServer>(io_, creds_, filter_, TurnLimits{}, quotas_, reservations_);
  uint16_t port = 41000;
  auto send = [&](std::string_view user, std::string_view realm, std::string_view keyUser, std::string_view keyPw) {
    ClientTuple from{kClientAddr, 0, Transport::kUdp};
    from.client.port = port++;
    std::array<uint8_t, 1500> buf{};
    stun::Builder b(buf, Method::kAllocate, Class::kRequest, tx());
    const uint8_t udp[4] = {17, 0, 0, 0};
    b.attribute(attr::kRequestedTransport, udp);
    b.text(attr::kUsername, user).text(attr::kRealm, realm).text(attr::kNonce, creds_->makeNonce(from.client, now_));
    b.messageIntegrity(stun::longTermKeyMd5(keyUser, "kaiwa.test", keyPw));
    return code(deliver(from, b.bytes()));
  };
  EXPECT_EQ(send("IX", "kaiwa.test", "IX", "IX"), 200);            // as a client that prepares sends it
  EXPECT_EQ(send("I\u00ADX", "kaiwa.test", "IX", "IX"), 200);      // the same user, unprepared
  EXPECT_EQ(send("\u2168", "kaiwa\u200D.test", "IX", "IX"), 200);  // unprepared name and realm
  EXPECT_EQ(send("IX", "kaiwa.test", "IX", "I\u00ADX"), 401);      // the key is of the prepared password
  EXPECT_EQ(send("I\u0007X", "kaiwa.test", "IX", "IX"), 400);      // prohibited output
  EXPECT_EQ(send("IX", "kaiwa\u0627.test1", "IX", "IX"), 400);     // bidi violation in the realm
  EXPECT_EQ(server_->stats().authFailures, 3u);
}

TEST_F(TurnServerTest, AddressFamilies) {
  auto family = [](uint8_t f) { return std::array<uint8_t, 4>{f, 0, 0, 0}; };
  auto r = allocate(client_, [&](stun::Builder& b) { b.attribute(attr::kRequestedAddressFamily, family(2)); });
  ASSERT_EQ(code(r), 200);
  EXPECT_EQ(r->xorAddress(attr::kXorRelayedAddress)->family, stun::Family::kV6);
  EXPECT_EQ(code(permission(kPeer)), 443);  // IPv4 peer, IPv6 relay
  ClientTuple c2{*Address::parse("203.0.113.5:40001"), 0, Transport::kUdp};
  r = allocate(c2, [&](stun::Builder& b) { b.attribute(attr::kAdditionalAddressFamily, family(2)); });
  ASSERT_EQ(code(r), 200);
  size_t relayed = 0;
  for (const auto& a : r->attributes()) relayed += a.type == attr::kXorRelayedAddress;
  EXPECT_EQ(relayed, 2u);
  ClientTuple c3{*Address::parse("203.0.113.5:40002"), 0, Transport::kUdp};
  EXPECT_EQ(code(allocate(c3, [&](stun::Builder& b) { b.attribute(attr::kRequestedAddressFamily, family(3)); })), 440);
  EXPECT_EQ(code(allocate(c3, [&](stun::Builder& b) { b.attribute(attr::kAdditionalAddressFamily, family(1)); })), 400);
  EXPECT_EQ(code(allocate(c3,
                          [&](stun::Builder& b) {
                            b.attribute(attr::kAdditionalAddressFamily, family(2));
                            b.attribute(attr::kRequestedAddressFamily, family(1));
                          })),
            400);
  io_.v6 = false;
  r = allocate(c3, [&](stun::Builder& b) { b.attribute(attr::kAdditionalAddressFamily, family(2)); });
  ASSERT_EQ(code(r), 200);
  EXPECT_TRUE(r->has(attr::kAddressErrorCode));
  ClientTuple c4{*Address::parse("203.0.113.5:40003"), 0, Transport::kUdp};
  EXPECT_EQ(code(allocate(c4, [&](stun::Builder& b) { b.attribute(attr::kRequestedAddressFamily, family(2)); })), 440);
}

TEST_F(TurnServerTest, DontFragmentIsPassedToTheRelay) {
  ASSERT_EQ(code(allocate(client_, [](stun::Builder& b) { b.attribute(attr::kDontFragment, {}); })), 200);
  EXPECT_TRUE(io_.requests.back().dontFragment);
}

TEST_F(TurnServerTest, BandwidthTokenBucket) {
  TurnLimits l;
  l.bytesPerSecond = 1000;
  makeServer(l, {*Cidr::parse("192.0.2.0/24")});
  ASSERT_EQ(code(allocate()), 200);
  ASSERT_EQ(code(channelBind(0x4000, kPeer)), 200);
  std::vector<uint8_t> cd(4 + 400);
  cd[0] = 0x40, cd[2] = 400 >> 8, cd[3] = 400 & 0xFF;
  for (int i = 0; i < 3; ++i) server_->onClientPacket(client_, cd, now_, nowUnix_);
  EXPECT_EQ(io_.toPeer.size(), 2u);
  EXPECT_EQ(server_->stats().drops[size_t(TurnDrop::kBandwidth)], 1u);
  now_ += 500ms;
  server_->onClientPacket(client_, cd, now_, nowUnix_);
  EXPECT_EQ(io_.toPeer.size(), 3u);
}

TEST_F(TurnServerTest, UnauthenticatedRequestsAreRateLimitedPerIp) {
  TurnLimits l;
  l.unauthenticatedPerSecond = 10;
  makeServer(l);
  std::array<uint8_t, 64> buf{};
  int answered = 0;
  for (int i = 0; i < 100; ++i) {
    stun::Builder b(buf, Method::kBinding, Class::kRequest, tx());
    if (deliver(client_, b.bytes())) ++answered;
  }
  EXPECT_EQ(answered, 50);  // the burst: five seconds' worth
  now_ += 1s;
  stun::Builder b(buf, Method::kBinding, Class::kRequest, tx());
  EXPECT_TRUE(deliver(client_, b.bytes()));
  ClientTuple other{*Address::parse("198.51.100.9:1"), 0, Transport::kUdp};
  EXPECT_TRUE(deliver(other, b.bytes()));
}

TEST_F(TurnServerTest, MalformedInputIsDroppedAndCounted) {
  const uint8_t junk[] = {0x80, 1, 2, 3};
  server_->onClientPacket(client_, junk, now_, nowUnix_);
  const uint8_t shortCd[] = {0x40, 0x00, 0x00, 0x09, 1};
  server_->onClientPacket(client_, shortCd, now_, nowUnix_);
  server_->onClientPacket(client_, {}, now_, nowUnix_);
  EXPECT_EQ(server_->stats().drops[size_t(TurnDrop::kMalformed)], 3u);
  EXPECT_TRUE(io_.toClient.empty());
}

TEST_F(TurnServerTest, Sha256IntegrityWhenTheClientUsesIt) {
  std::array<uint8_t, 512> buf{};
  stun::Builder b(buf, Method::kAllocate, Class::kRequest, tx());
  const uint8_t udp[4] = {17, 0, 0, 0};
  const uint8_t alg[4] = {0, 2, 0, 0};
  nonce_ = creds_->makeNonce(kClientAddr, now_);
  b.attribute(attr::kRequestedTransport, udp).attribute(attr::kPasswordAlgorithm, alg);
  b.text(attr::kUsername, "alice").text(attr::kRealm, "kaiwa.test").text(attr::kNonce, nonce_);
  auto key = stun::longTermKeySha256("alice", "kaiwa.test", "alicepw");
  b.messageIntegritySha256(key);
  auto r = deliver(client_, b.bytes());
  ASSERT_EQ(code(r), 200);
  EXPECT_TRUE(r->verifyIntegritySha256(key));
}

// A reload (TurnService::reloadCredentials) replaces users and secrets in the slot every worker reads: the next
// authentication on each worker uses the new lists, nonces handed out before stay valid.
TEST_F(TurnServerTest, ReloadedCredentialsAreUsedByEveryWorkerAtTheNextRequest) {
  auto slot = std::make_shared<CredentialsSlot>(creds_);
  server_ = std::make_unique<TurnServer>(io_, slot, filter_, TurnLimits{}, quotas_, reservations_);
  FakeIo io2;
  TurnServer worker2(io2, slot, filter_, TurnLimits{}, quotas_, reservations_);
  auto add = [](stun::Builder& b) {
    const uint8_t udp[4] = {17, 0, 0, 0};
    b.attribute(attr::kRequestedTransport, udp);
  };
  std::string rest = std::to_string(nowUnix_ + 60) + ":frank";
  ClientTuple c2{*Address::parse("203.0.113.5:40001"), 0, Transport::kUdp};
  ASSERT_EQ(code(allocate()), 200);  // alice, on worker 1
  ASSERT_EQ(code(request(Method::kAllocate, add, c2, rest, Credentials::restPassword("s3cr3t", rest))), 200);

  // alice goes, carol comes, the secret is rotated.
  slot->store(slot->load()->withUsers({{"carol", "carolpw"}}, {"n3w"}));
  std::string rest2 = std::to_string(nowUnix_ + 60) + ":grace";
  for (auto [worker, io] : {std::pair<TurnServer*, FakeIo*>{server_.get(), &io_}, {&worker2, &io2}}) {
    at_ = worker;
    atIo_ = io;
    ClientTuple c{*Address::parse("203.0.113.9:1"), 0, Transport::kUdp};
    ClientTuple d{*Address::parse("203.0.113.9:2"), 0, Transport::kUdp};
    ClientTuple e{*Address::parse("203.0.113.9:3"), 0, Transport::kUdp};
    ClientTuple f{*Address::parse("203.0.113.9:4"), 0, Transport::kUdp};
    nonce_ = creds_->makeNonce(c.client, now_);  // made with the old credentials: still valid (no 438)
    EXPECT_EQ(code(request(Method::kAllocate, add, c, "alice", "alicepw")), 401);
    EXPECT_EQ(code(request(Method::kAllocate, add, d, "carol", "carolpw")), 200);
    EXPECT_EQ(code(request(Method::kAllocate, add, e, rest, Credentials::restPassword("s3cr3t", rest))), 401);
    EXPECT_EQ(code(request(Method::kAllocate, add, f, rest2, Credentials::restPassword("n3w", rest2))), 200);
  }
  at_ = nullptr;
  atIo_ = nullptr;
  // alice's allocation lives on, but her next request is refused.
  nonce_ = creds_->makeNonce(client_.client, now_);
  EXPECT_EQ(code(refresh(600)), 401);
  EXPECT_EQ(server_->allocationCount(), 4u);  // alice, frank, carol, grace
  EXPECT_EQ(worker2.allocationCount(), 2u);
}

// Reloads from another thread while a worker authenticates: every answer is one of the two sets' (no torn state).
TEST_F(TurnServerTest, CredentialsReloadFromAnotherThread) {
  auto slot = std::make_shared<CredentialsSlot>(creds_);
  TurnLimits unlimited;
  unlimited.unauthenticatedPerSecond = 0;  // 401s are not rate limited here
  server_ = std::make_unique<TurnServer>(io_, slot, filter_, unlimited, quotas_, reservations_);
  auto withBob = creds_;
  auto withoutBob = creds_->withUsers({{"alice", "alicepw"}}, {"s3cr3t"});
  std::atomic<bool> stop{false};
  std::thread reloader([&] {
    for (int i = 0; !stop.load(); ++i) slot->store(i % 2 ? withBob : withoutBob);
  });
  int ok = 0, refused = 0;
  for (int i = 0; i < 2000; ++i) {
    int c = code(request(
        Method::kRefresh, [](stun::Builder&) {}, client_, "bob", "bobpw"));
    (c == 401 ? refused : ok) += 1;
    EXPECT_TRUE(c == 401 || c == 437) << c;  // 437: authenticated, no allocation
    EXPECT_EQ(code(request(
                  Method::kRefresh, [](stun::Builder&) {}, client_)),
              437);  // alice is in both
  }
  stop = true;
  reloader.join();
  slot->store(withoutBob);
  EXPECT_EQ(code(request(
                Method::kRefresh, [](stun::Builder&) {}, client_, "bob", "bobpw")),
            401);
  EXPECT_EQ(ok + refused, 2000);
}

}  // namespace
}  // namespace kaiwa::turn
