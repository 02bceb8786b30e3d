#pragma once
// The SFU's side of ICE: an ICE-lite agent (RFC 8445 section 2.5 and 7.3) with consent freshness (RFC 7675), for
// one transport (one peer connection of one browser, all its media bundled). Sans-I/O: a Binding request and `now`
// in, the response bytes, the path's fate and deadlines out. The caller routes a datagram here (ice::Demux), sends
// what comes back, and sends its media to selected().
//
// What a lite agent does, and this one does:
// - it never sends a check; it answers every valid Binding request with a success response carrying
//   XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY (the local password) and FINGERPRINT. A request is valid when its USERNAME
//   is "<local ufrag>:<remote ufrag>" (the remote part checked once the peer's SDP gave it), its MESSAGE-INTEGRITY
//   verifies with the local password, and it carries PRIORITY and ICE-CONTROLLING: the lite side is always
//   controlled (RFC 8445 section 6.1.1), so ICE-CONTROLLED is a role conflict (487). Requests without the needed
//   attributes get 400, failed authentication 401 (neither is authenticated; the caller may count and drop them
//   instead of sending them).
// - the controlling agent nominates with USE-CANDIDATE; the latest nominated path is the selected one. A client
//   that moves (a new network, a NAT rebinding) nominates a path from its new address, and the media follows it.
//   A path is never selected on an unauthenticated packet, so nobody can steer the media by spoofing a source.
// - consent: a path lives while valid checks keep coming; when the selected path has seen none for
//   consentTimeout (30 s, RFC 7675 section 5.1) another nominated path with fresh consent takes over, or the
//   transport has failed. A transport that never got a valid check fails after connectTimeout.
// - ICE restart (RFC 8445 section 9): new local credentials; checks with the old ones are still answered and keep
//   the current path alive until the first valid check with the new ones, then the old ones are forgotten.
//
// Paths are bounded (maxPaths): a client cannot make the agent hold more by sending checks from many addresses.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/address.hpp"
#include "common/clock.hpp"
#include "stun/message.hpp"

namespace kaiwa::ice {

using common::Address;

struct Credentials {
  std::string ufrag;
  std::string pwd;
};

struct LiteAgentOptions {
  Millis consentTimeout{30000};  // RFC 7675 section 5.1
  Millis connectTimeout{30000};  // from creation (or a restart) to the first valid check
  size_t maxPaths = 8;           // remote addresses with a valid check kept (at least 2); the least recent is forgotten
};

enum class State : uint8_t {
  kChecking,   // no path nominated yet
  kConnected,  // a path is selected
  kFailed,     // consent expired or never came: the transport is dead (terminal)
};

enum class Outcome : uint8_t {
  kNotBinding,    // not a Binding request: nothing written
  kBadRequest,    // 400 written (USERNAME, MESSAGE-INTEGRITY or PRIORITY missing)
  kUnauthorized,  // 401 written (not our ufrag, not the peer's, or the integrity does not verify)
  kRoleConflict,  // 487 written (the peer claims to be controlled too)
  kValid,         // success written; the path's consent is fresh
  kSelected,      // success written; this path has just become the selected one
};

struct CheckResult {
  Outcome outcome = Outcome::kNotBinding;
  size_t responseSize = 0;  // bytes of the response at the front of `out` (0: nothing to send)
};

// The agent's memory of one remote address.
struct Path {
  Address remote;
  uint32_t priority = 0;  // PRIORITY of its last valid check
  TimePoint lastValid{};  // its last valid check
  bool nominated = false;
};

class LiteAgent {
 public:
  LiteAgent(Credentials local, TimePoint now, LiteAgentOptions options = {});

  // The peer's credentials, from its SDP (a=ice-ufrag / a=ice-pwd). Until they are known, the remote part of
  // USERNAME is not checked (a check may arrive before the answer is applied on the peer, RFC 8445 section 7.3).
  void setRemote(Credentials remote);

  // Answers a Binding request from `from` into `out` (a response fits in 128 bytes). A request whose USERNAME
  // names a ufrag other than the agent's is answered 401: route by ufrag first (ice::Demux).
  CheckResult onBindingRequest(const stun::Message& request, const Address& from, TimePoint now,
                               std::span<uint8_t> out);

  // ICE restart with new local credentials (and the peer's new ones if its offer already gave them).
  void restart(Credentials local, std::optional<Credentials> remote, TimePoint now);

  // Expires consent and the connect deadline; returns the state after.
  State tick(TimePoint now);
  // When tick() must run next for the state to change on time.
  TimePoint nextDeadline() const;

  State state() const { return state_; }
  // Where media goes: the selected path's remote address (nullopt while checking or after failure).
  std::optional<Address> selected() const;
  std::span<const Path> paths() const { return paths_; }
  const Credentials& local() const { return local_; }
  // True when `ufrag` is the agent's local ufrag, or the previous one during a restart.
  bool ownsUfrag(std::string_view ufrag) const;
  // The previous local ufrag while a restart is pending (what the demultiplexer must still route here).
  const std::optional<std::string>& previousUfrag() const { return previousUfrag_; }

 private:
  Path* find(const Address& remote);
  Path& remember(const Address& remote, TimePoint now);
  size_t writeError(const stun::Message& request, int code, std::string_view reason, std::span<uint8_t> out) const;

  LiteAgentOptions options_;
  Credentials local_;
  std::optional<Credentials> remote_;
  std::optional<std::string> previousUfrag_, previousPwd_;  // during a restart
  std::optional<Credentials> previousRemote_;
  std::vector<Path> paths_;
  int selected_ = -1;  // index into paths_
  TimePoint checkingSince_;
  State state_ = State::kChecking;
};

// "local:remote" from a Binding request's USERNAME: the local ufrag (what routes the request) and the remote one.
struct Username {
  std::string_view local;
  std::string_view remote;
};
std::optional<Username> splitUsername(const stun::Message& request);

}  // namespace kaiwa::ice
