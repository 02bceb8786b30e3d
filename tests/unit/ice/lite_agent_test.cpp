// ICE-lite agent: checks as a controlling browser sends them, answered and verified like a browser would; the
// RFC 5769 sample request; nomination, a client that moves, consent expiry on a fake clock, ICE restart, bounds.
#include "ice/lite_agent.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace kaiwa::ice {
namespace {

using namespace std::chrono_literals;

const Address kA = *Address::parse("192.0.2.10:50000");
const Address kB = *Address::parse("198.51.100.7:40000");
const Address kC = *Address::parse("[2001:db8::5]:61000");
const TimePoint kT0 = TimePoint{} + 1000s;

struct Check {
  std::string username = "srvU:cliU";
  std::string key = "server-password-0123456789";
  bool priority = true, controlling = true, controlled = false, useCandidate = false, integrity = true;
  uint8_t txid = 1;
};

// A Binding request built as Chromium builds its checks (RFC 8445 section 7.1.1).
std::vector<uint8_t> request(const Check& c) {
  std::vector<uint8_t> buf(512);
  stun::TransactionId id{};
  id.fill(c.txid);
  stun::Builder b(buf, stun::Method::kBinding, stun::Class::kRequest, id);
  b.text(stun::attr::kUsername, c.username);
  if (c.priority) b.u32(stun::attr::kPriority, 0x6e7f1eff);
  if (c.controlling) {
    std::array<uint8_t, 8> tie{1, 2, 3, 4, 5, 6, 7, 8};
    b.attribute(stun::attr::kIceControlling, tie);
  }
  if (c.controlled) {
    std::array<uint8_t, 8> tie{8, 7, 6, 5, 4, 3, 2, 1};
    b.attribute(stun::attr::kIceControlled, tie);
  }
  if (c.useCandidate) b.attribute(stun::attr::kUseCandidate, {});
  if (c.integrity) b.messageIntegrity(stun::asBytes(c.key));
  b.fingerprint();
  EXPECT_TRUE(b.ok());
  buf.resize(b.size());
  return buf;
}

struct Answer {
  CheckResult result;
  std::vector<uint8_t> bytes;
};

Answer send(LiteAgent& agent, const std::vector<uint8_t>& req, const Address& from, TimePoint now) {
  auto m = stun::Message::parse(req);
  EXPECT_TRUE(m);
  std::vector<uint8_t> out(128);
  Answer a{agent.onBindingRequest(*m, from, now, out), {}};
  out.resize(a.result.responseSize);
  a.bytes = std::move(out);
  return a;
}

LiteAgent makeAgent(LiteAgentOptions options = {}) {
  LiteAgent agent({"srvU", "server-password-0123456789"}, kT0, options);
  agent.setRemote({"cliU", "client-password-0123456789"});
  return agent;
}

TEST(IceLiteAgent, AnswersAValidCheckAsTheBrowserVerifiesIt) {
  LiteAgent agent = makeAgent();
  Answer a = send(agent, request({.useCandidate = true}), kA, kT0);
  EXPECT_EQ(a.result.outcome, Outcome::kSelected);
  auto res = stun::Message::parse(a.bytes);
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->is(stun::Method::kBinding, stun::Class::kSuccess));
  std::array<uint8_t, 12> id{};
  id.fill(1);
  EXPECT_EQ(res->transactionId(), id);
  EXPECT_EQ(res->xorAddress(stun::attr::kXorMappedAddress), kA);
  EXPECT_TRUE(res->hasFingerprint());
  EXPECT_TRUE(res->verifyIntegrity(stun::asBytes("server-password-0123456789")));
  EXPECT_FALSE(res->verifyIntegrity(stun::asBytes("client-password-0123456789")));
  EXPECT_EQ(agent.state(), State::kConnected);
  EXPECT_EQ(agent.selected(), kA);
}

TEST(IceLiteAgent, AnIpv6ResponseFitsIn128Bytes) {
  LiteAgent agent = makeAgent();
  Answer a = send(agent, request({.useCandidate = true}), kC, kT0);
  ASSERT_EQ(a.result.outcome, Outcome::kSelected);
  EXPECT_LE(a.bytes.size(), 128u);
  EXPECT_EQ(stun::Message::parse(a.bytes)->xorAddress(stun::attr::kXorMappedAddress), kC);
}

TEST(IceLiteAgent, ACheckWithoutUseCandidateKeepsThePathButSelectsNothing) {
  LiteAgent agent = makeAgent();
  EXPECT_EQ(send(agent, request({}), kA, kT0).result.outcome, Outcome::kValid);
  EXPECT_EQ(agent.state(), State::kChecking);
  EXPECT_FALSE(agent.selected());
  ASSERT_EQ(agent.paths().size(), 1u);
  EXPECT_EQ(agent.paths()[0].remote, kA);
  EXPECT_EQ(agent.paths()[0].priority, 0x6e7f1effu);
}

TEST(IceLiteAgent, Rfc5769SampleRequestIsAuthenticButClaimsTheControlledRole) {
  // RFC 5769 section 2.1: USERNAME "evtj:h6vY", ICE-CONTROLLED, PRIORITY, MESSAGE-INTEGRITY, FINGERPRINT.
  const char* hex =
      "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff80290008932ff9"
      "b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf";
  std::vector<uint8_t> req;
  for (size_t i = 0; hex[i] && hex[i + 1]; i += 2)
    req.push_back(uint8_t(std::stoi(std::string(hex + i, 2), nullptr, 16)));
  LiteAgent right({"evtj", "VOkJxbRl1RmTxUk/WvJxBt"}, kT0);
  Answer a = send(right, req, kA, kT0);
  EXPECT_EQ(a.result.outcome, Outcome::kRoleConflict);
  auto res = stun::Message::parse(a.bytes);
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->is(stun::Method::kBinding, stun::Class::kError));
  EXPECT_EQ(res->errorCode(), 487);
  // The same request against a wrong password fails authentication first.
  LiteAgent wrong({"evtj", "not-the-password-at-all"}, kT0);
  EXPECT_EQ(send(wrong, req, kA, kT0).result.outcome, Outcome::kUnauthorized);
  EXPECT_TRUE(wrong.paths().empty());
}

TEST(IceLiteAgent, RefusesChecksThatAreNotAuthentic) {
  LiteAgent agent = makeAgent();
  struct Case {
    Check check;
    Outcome outcome;
    int code;
  };
  const Case cases[] = {
      {{.key = "guessed-password"}, Outcome::kUnauthorized, 401},
      {{.username = "other:cliU"}, Outcome::kUnauthorized, 401},
      {{.username = "srvU:mallory"}, Outcome::kUnauthorized, 401},
      {{.username = "srvU"}, Outcome::kBadRequest, 400},
      {{.priority = false}, Outcome::kBadRequest, 400},
      {{.integrity = false}, Outcome::kBadRequest, 400},
      {{.controlling = false}, Outcome::kRoleConflict, 487},
      {{.controlled = true}, Outcome::kRoleConflict, 487},
  };
  for (const Case& c : cases) {
    Check check = c.check;
    check.useCandidate = true;
    Answer a = send(agent, request(check), kA, kT0);
    EXPECT_EQ(a.result.outcome, c.outcome) << check.username << " " << check.key;
    auto res = stun::Message::parse(a.bytes);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->errorCode(), c.code);
    EXPECT_FALSE(res->hasIntegrity());  // an unauthenticated request gets an unauthenticated answer
  }
  EXPECT_TRUE(agent.paths().empty());
  EXPECT_EQ(agent.state(), State::kChecking);
}

TEST(IceLiteAgent, AnyRemoteUfragIsTakenUntilThePeersIsKnown) {
  LiteAgent agent({"srvU", "server-password-0123456789"}, kT0);
  EXPECT_EQ(send(agent, request({.username = "srvU:whoever"}), kA, kT0).result.outcome, Outcome::kValid);
  agent.setRemote({"cliU", "x"});
  EXPECT_EQ(send(agent, request({.username = "srvU:whoever"}), kA, kT0).result.outcome, Outcome::kUnauthorized);
}

TEST(IceLiteAgent, IgnoresWhatIsNotABindingRequest) {
  LiteAgent agent = makeAgent();
  std::vector<uint8_t> buf(128);
  stun::TransactionId id{};
  stun::Builder b(buf, stun::Method::kBinding, stun::Class::kIndication, id);
  b.fingerprint();
  buf.resize(b.size());
  Answer a = send(agent, buf, kA, kT0);
  EXPECT_EQ(a.result.outcome, Outcome::kNotBinding);
  EXPECT_TRUE(a.bytes.empty());
}

TEST(IceLiteAgent, TheMediaFollowsAClientThatNominatesFromANewAddress) {
  LiteAgent agent = makeAgent();
  ASSERT_EQ(send(agent, request({.useCandidate = true}), kA, kT0).result.outcome, Outcome::kSelected);
  // Checks on the selected path keep it, and say nothing new.
  EXPECT_EQ(send(agent, request({.useCandidate = true}), kA, kT0 + 1s).result.outcome, Outcome::kValid);
  // A valid but unnominated check from elsewhere moves nothing.
  EXPECT_EQ(send(agent, request({}), kB, kT0 + 2s).result.outcome, Outcome::kValid);
  EXPECT_EQ(agent.selected(), kA);
  // The client moved: it nominates its new path.
  EXPECT_EQ(send(agent, request({.useCandidate = true}), kB, kT0 + 3s).result.outcome, Outcome::kSelected);
  EXPECT_EQ(agent.selected(), kB);
  // A spoofed packet from A with a wrong password cannot take the media back.
  EXPECT_EQ(send(agent, request({.key = "guess", .useCandidate = true}), kA, kT0 + 4s).result.outcome,
            Outcome::kUnauthorized);
  EXPECT_EQ(agent.selected(), kB);
}

TEST(IceLiteAgent, ConsentExpiresThirtySecondsAfterTheLastValidCheck) {
  LiteAgent agent = makeAgent();
  send(agent, request({.useCandidate = true}), kA, kT0);
  send(agent, request({}), kA, kT0 + 10s);  // consent refreshed by any valid check
  EXPECT_EQ(agent.nextDeadline(), kT0 + 40s);
  EXPECT_EQ(agent.tick(kT0 + 39s), State::kConnected);
  EXPECT_EQ(agent.tick(kT0 + 40s), State::kFailed);
  EXPECT_FALSE(agent.selected());
  EXPECT_EQ(agent.nextDeadline(), TimePoint::max());
  // A failed transport is over: later checks are not answered.
  EXPECT_EQ(send(agent, request({.useCandidate = true}), kA, kT0 + 41s).result.outcome, Outcome::kNotBinding);
}

TEST(IceLiteAgent, ANominatedPathWithConsentTakesOverWhenTheSelectedOneLosesIt) {
  LiteAgent agent = makeAgent();
  send(agent, request({.useCandidate = true}), kA, kT0);
  send(agent, request({.useCandidate = true}), kB, kT0 + 10s);  // selected: B
  send(agent, request({}), kA, kT0 + 20s);                      // A still checked, not selected
  EXPECT_EQ(agent.selected(), kB);
  EXPECT_EQ(agent.tick(kT0 + 40s), State::kConnected);  // B's consent ran out at +40 s
  EXPECT_EQ(agent.selected(), kA);
  EXPECT_EQ(agent.nextDeadline(), kT0 + 50s);
  EXPECT_EQ(agent.tick(kT0 + 50s), State::kFailed);
}

TEST(IceLiteAgent, ATransportThatNeverGetsAValidCheckFails) {
  LiteAgent agent = makeAgent({.connectTimeout = 15s});
  send(agent, request({.key = "wrong"}), kA, kT0 + 1s);
  EXPECT_EQ(agent.nextDeadline(), kT0 + 15s);
  EXPECT_EQ(agent.tick(kT0 + 14s), State::kChecking);
  EXPECT_EQ(agent.tick(kT0 + 15s), State::kFailed);
}

TEST(IceLiteAgent, RestartAnswersTheOldCredentialsUntilTheNewOnesAreUsed) {
  LiteAgent agent = makeAgent();
  send(agent, request({.useCandidate = true}), kA, kT0);
  agent.restart({"newU", "new-server-password-012345"}, Credentials{"cli2", "new-client-pw"}, kT0 + 5s);
  EXPECT_TRUE(agent.ownsUfrag("srvU"));
  EXPECT_TRUE(agent.ownsUfrag("newU"));
  EXPECT_EQ(agent.previousUfrag(), "srvU");
  // Old credentials: still answered (signed with the old password) and still keep consent.
  Answer old = send(agent, request({.useCandidate = true}), kA, kT0 + 6s);
  EXPECT_EQ(old.result.outcome, Outcome::kValid);
  EXPECT_TRUE(stun::Message::parse(old.bytes)->verifyIntegrity(stun::asBytes("server-password-0123456789")));
  // The new ones, from a new address: the restart completes there.
  Answer fresh =
      send(agent, request({.username = "newU:cli2", .key = "new-server-password-012345", .useCandidate = true}), kB,
           kT0 + 7s);
  EXPECT_EQ(fresh.result.outcome, Outcome::kSelected);
  EXPECT_TRUE(stun::Message::parse(fresh.bytes)->verifyIntegrity(stun::asBytes("new-server-password-012345")));
  EXPECT_EQ(agent.selected(), kB);
  EXPECT_FALSE(agent.previousUfrag());
  EXPECT_FALSE(agent.ownsUfrag("srvU"));
  EXPECT_EQ(send(agent, request({.useCandidate = true}), kA, kT0 + 8s).result.outcome, Outcome::kUnauthorized);
}

TEST(IceLiteAgent, PathsAreBoundedAndTheSelectedOneIsNeverForgotten) {
  LiteAgent agent = makeAgent({.maxPaths = 4});
  // Two older paths first, so that the selected one is not the first in the table when the older ones go.
  send(agent, request({}), kB, kT0);
  send(agent, request({}), kC, kT0);
  send(agent, request({.useCandidate = true}), kA, kT0 + 1s);
  for (uint16_t port = 1; port <= 100; ++port) {
    Address from = Address::v4(0xC6336401, port);  // 198.51.100.1
    EXPECT_EQ(send(agent, request({}), from, kT0 + std::chrono::seconds(1 + port)).result.outcome, Outcome::kValid);
    EXPECT_LE(agent.paths().size(), 4u);
    ASSERT_EQ(agent.selected(), kA);
  }
  EXPECT_EQ(agent.selected(), kA);
  // The most recent ones are kept.
  bool newest = false;
  for (const Path& p : agent.paths()) newest |= p.remote.port == 100;
  EXPECT_TRUE(newest);
}

}  // namespace
}  // namespace kaiwa::ice
