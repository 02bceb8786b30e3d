// fuzz_ice: the ICE-lite agent and the media port's demultiplexer (src/ice/) on a fake clock. The input is a script:
//   byte 0, configuration: bits 0-2 maxPaths - 2; bit 3 the peer's ufrag known from the start.
//   then steps, each an opcode byte (low 2 bits) and its operands:
//     0 raw: a length byte and that many bytes, parsed as STUN and, if it parses, routed by its USERNAME's local part
//       and given to the agent (what an attacker can send to the media port);
//     1 check: a flags byte and an address byte: a Binding request built as a browser would (right or wrong
//       credentials, the previous ufrag of a restart, PRIORITY / ICE-CONTROLLING / ICE-CONTROLLED / USE-CANDIDATE /
//       MESSAGE-INTEGRITY present or not) from one of 16 addresses;
//     2 time: a byte, the clock moves on by byte × 250 ms and the agent ticks;
//     3 restart: new local (and, by the opcode's bit 2, remote) credentials.
// Invariants, beyond "never crashes":
//   - every response parses as STUN, answers the request's transaction, and carries FINGERPRINT; a success carries
//     XOR-MAPPED-ADDRESS equal to the sender and verifies with the password of the ufrag the request named; an error
//     carries no MESSAGE-INTEGRITY;
//   - for built checks the outcome is what RFC 8445 lite says (an oracle written from the flags);
//   - at most maxPaths paths; connected ⇔ a selected address, which is one of the paths; after a tick a selected
//     path has consent (a valid check within 30 s); failed is terminal;
//   - the demultiplexer routes a validated sender to the agent's transport and the agent's ufrags to it.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "ice/demux.hpp"
#include "ice/lite_agent.hpp"

using namespace kaiwa;
using namespace std::chrono_literals;

namespace {

struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
};

constexpr ice::Demux::Id kId = 42;

common::Address address(uint8_t i) {
  i &= 15;
  if (i < 12) return common::Address::v4(0xC0000200u + (i & 3), uint16_t(40000 + i));
  std::array<uint8_t, 16> ip{0x20, 0x01, 0x0d, 0xb8};
  ip[15] = i;
  return common::Address::v6(ip, uint16_t(50000 + i));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  uint8_t config = in.byte();
  ice::LiteAgentOptions options;
  options.maxPaths = 2 + (config & 7);
  TimePoint now = TimePoint{} + 1000s;

  int generation = 0;
  auto creds = [](const char* side, int g) {
    return ice::Credentials{std::string(side) + "U" + std::to_string(g),
                            std::string(side) + "-password-" + std::to_string(g)};
  };
  ice::LiteAgent agent(creds("srv", 0), now, options);
  ice::Credentials remote = creds("cli", 0);
  bool remoteKnown = config & 8;
  if (remoteKnown) agent.setRemote(remote);
  std::optional<ice::Credentials> previousLocal, previousRemote;
  bool previousRemoteKnown = false;

  ice::Demux demux({.maxTuples = 64, .maxTuplesPerTransport = 8});
  demux.addUfrag(agent.local().ufrag, kId);
  bool failed = false;

  // Checks one answer against the request it answers.
  auto checkResponse = [&](const stun::Message& req, const ice::CheckResult& r, std::span<const uint8_t> out,
                           const common::Address& from, const std::string* pwd) {
    if (r.outcome == ice::Outcome::kNotBinding) {
      FUZZ_CHECK(r.responseSize == 0);
      return;
    }
    FUZZ_CHECK(r.responseSize > 0 && r.responseSize <= 128);
    auto res = stun::Message::parse(out.first(r.responseSize));
    FUZZ_CHECK(res.has_value());
    FUZZ_CHECK(res->transactionId() == req.transactionId());
    FUZZ_CHECK(res->hasFingerprint());
    bool success = r.outcome == ice::Outcome::kValid || r.outcome == ice::Outcome::kSelected;
    if (success) {
      FUZZ_CHECK(res->is(stun::Method::kBinding, stun::Class::kSuccess));
      FUZZ_CHECK(res->xorAddress(stun::attr::kXorMappedAddress) == from);
      FUZZ_CHECK(pwd != nullptr);
      FUZZ_CHECK(res->verifyIntegrity(stun::asBytes(*pwd)));
    } else {
      FUZZ_CHECK(res->is(stun::Method::kBinding, stun::Class::kError));
      FUZZ_CHECK(!res->hasIntegrity());
      int code = r.outcome == ice::Outcome::kBadRequest ? 400 : r.outcome == ice::Outcome::kUnauthorized ? 401 : 487;
      FUZZ_CHECK(res->errorCode() == code);
    }
  };

  auto afterAnswer = [&](const ice::CheckResult& r, const common::Address& from) {
    if (r.outcome == ice::Outcome::kValid || r.outcome == ice::Outcome::kSelected) {
      demux.bind(from, kId);
      FUZZ_CHECK(demux.byTuple(from) == kId);
      // A completed restart drops the previous ufrag: so does the caller.
      if (previousLocal && !agent.previousUfrag()) {
        demux.removeUfrag(previousLocal->ufrag);
        previousLocal.reset();
        previousRemote.reset();
      }
    }
    if (r.outcome == ice::Outcome::kSelected) FUZZ_CHECK(agent.selected() == from);
  };

  std::array<uint8_t, 128> out{};
  while (!in.empty()) {
    uint8_t op = in.byte();
    switch (op & 3) {
      case 0: {
        size_t len = in.byte();
        len = std::min(len, in.n);
        std::vector<uint8_t> bytes(in.p, in.p + len);
        in.p += len;
        in.n -= len;
        auto m = stun::Message::parse(bytes);
        if (!m) break;
        auto user = ice::splitUsername(*m);
        if (user) {
          auto id = demux.byUfrag(user->local);
          FUZZ_CHECK(!id || agent.ownsUfrag(user->local));
        }
        common::Address from = address(op >> 2);
        const std::string* pwd = nullptr;
        if (user && user->local == agent.local().ufrag)
          pwd = &agent.local().pwd;
        else if (user && previousLocal && user->local == previousLocal->ufrag)
          pwd = &previousLocal->pwd;
        auto r = agent.onBindingRequest(*m, from, now, out);
        checkResponse(*m, r, out, from, pwd);
        afterAnswer(r, from);
        break;
      }
      case 1: {
        uint8_t flags = in.byte();
        common::Address from = address(in.byte());
        // Which credentials the check is made with.
        const ice::Credentials* local = &agent.local();
        const ice::Credentials* rem = &remote;
        bool usePrevious = (flags & 3) == 1 && previousLocal;
        if (usePrevious) {
          local = &*previousLocal;
          rem = &*previousRemote;
        }
        std::string username = local->ufrag + ":" + rem->ufrag;
        if ((flags & 3) == 2) username = "nobody:" + rem->ufrag;
        if ((flags & 3) == 3) username = local->ufrag + ":someoneelse";
        bool rightKey = !(flags & 4);
        bool priority = !(flags & 8), controlling = !(flags & 16), controlled = flags & 32, useCandidate = flags & 64,
             integrity = !(flags & 128) || (flags & 3) == 2;
        std::array<uint8_t, 256> buf{};
        stun::TransactionId txid{};
        txid[0] = op;
        txid[1] = flags;
        stun::Builder b(buf, stun::Method::kBinding, stun::Class::kRequest, txid);
        b.text(stun::attr::kUsername, username);
        if (priority) b.u32(stun::attr::kPriority, 0x7e000000u | flags);
        std::array<uint8_t, 8> tie{1, 2, 3, 4, 5, 6, 7, 8};
        if (controlling) b.attribute(stun::attr::kIceControlling, tie);
        if (controlled) b.attribute(stun::attr::kIceControlled, tie);
        if (useCandidate) b.attribute(stun::attr::kUseCandidate, {});
        if (integrity) b.messageIntegrity(stun::asBytes(rightKey ? local->pwd : std::string("wrong-password")));
        b.fingerprint();
        FUZZ_CHECK(b.ok());
        auto m = stun::Message::parse(b.bytes());
        FUZZ_CHECK(m.has_value());
        // The oracle.
        bool remoteChecked = usePrevious ? previousRemoteKnown : remoteKnown;
        ice::Outcome expected;
        if (failed) {
          expected = ice::Outcome::kNotBinding;
        } else if (!priority || !integrity) {
          expected = ice::Outcome::kBadRequest;
        } else if ((flags & 3) == 2 || ((flags & 3) == 3 && remoteChecked) || !rightKey) {
          expected = ice::Outcome::kUnauthorized;
        } else if (controlled || !controlling) {
          expected = ice::Outcome::kRoleConflict;
        } else {
          expected = ice::Outcome::kValid;
        }
        std::string pwd = local->pwd;  // (a completed restart below replaces *local)
        auto before = agent.selected();
        auto r = agent.onBindingRequest(*m, from, now, out);
        if (expected == ice::Outcome::kValid) {
          FUZZ_CHECK(r.outcome == ice::Outcome::kValid || r.outcome == ice::Outcome::kSelected);
          FUZZ_CHECK((r.outcome == ice::Outcome::kSelected) == (useCandidate && before != from));
        } else {
          FUZZ_CHECK(r.outcome == expected);
        }
        checkResponse(*m, r, out, from, &pwd);
        afterAnswer(r, from);
        break;
      }
      case 2: {
        now += in.byte() * 250ms;
        ice::State s = agent.tick(now);
        if (failed) FUZZ_CHECK(s == ice::State::kFailed);
        failed = s == ice::State::kFailed;
        if (failed) demux.remove(kId);
        if (auto sel = agent.selected()) {
          for (const auto& p : agent.paths())
            if (p.remote == *sel) FUZZ_CHECK(now - p.lastValid < options.consentTimeout);
          FUZZ_CHECK(agent.nextDeadline() > now);
        }
        break;
      }
      case 3: {
        if (failed) break;
        ++generation;
        if (previousLocal) demux.removeUfrag(previousLocal->ufrag);  // a second restart before the first completed
        previousLocal = agent.local();
        previousRemote = remote;
        previousRemoteKnown = remoteKnown;
        remote = creds("cli", generation);
        remoteKnown = op & 4;
        agent.restart(creds("srv", generation), remoteKnown ? std::optional(remote) : std::nullopt, now);
        FUZZ_CHECK(demux.addUfrag(agent.local().ufrag, kId));
        break;
      }
    }
    // State invariants.
    FUZZ_CHECK(agent.paths().size() <= options.maxPaths);
    auto sel = agent.selected();
    FUZZ_CHECK(sel.has_value() == (agent.state() == ice::State::kConnected));
    if (sel) {
      bool found = false;
      for (const auto& p : agent.paths()) found |= p.remote == *sel && p.nominated;
      FUZZ_CHECK(found);
    }
    if (failed) FUZZ_CHECK(agent.state() == ice::State::kFailed && demux.tuples() == 0);
  }
  return 0;
}
