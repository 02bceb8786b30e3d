#include "ice/lite_agent.hpp"

#include <algorithm>

namespace kaiwa::ice {

namespace {

std::span<const uint8_t> bytesOf(std::string_view s) { return stun::asBytes(s); }

}  // namespace

std::optional<Username> splitUsername(const stun::Message& request) {
  auto text = request.text(stun::attr::kUsername);
  if (!text) return std::nullopt;
  size_t colon = text->find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  return Username{text->substr(0, colon), text->substr(colon + 1)};
}

LiteAgent::LiteAgent(Credentials local, TimePoint now, LiteAgentOptions options)
    : options_(options), local_(std::move(local)), checkingSince_(now) {
  // At least the selected path and one more, so that a full table always has a path to forget.
  options_.maxPaths = std::max<size_t>(options_.maxPaths, 2);
  paths_.reserve(std::min<size_t>(options_.maxPaths, 4));
}

void LiteAgent::setRemote(Credentials remote) { remote_ = std::move(remote); }

bool LiteAgent::ownsUfrag(std::string_view ufrag) const {
  return ufrag == local_.ufrag || (previousUfrag_ && ufrag == *previousUfrag_);
}

std::optional<Address> LiteAgent::selected() const {
  if (state_ != State::kConnected || selected_ < 0) return std::nullopt;
  return paths_[static_cast<size_t>(selected_)].remote;
}

Path* LiteAgent::find(const Address& remote) {
  for (Path& p : paths_)
    if (p.remote == remote) return &p;
  return nullptr;
}

Path& LiteAgent::remember(const Address& remote, TimePoint now) {
  if (Path* p = find(remote)) return *p;
  if (paths_.size() >= options_.maxPaths) {
    // Forget the least recently checked path that is not the selected one.
    int victim = -1;
    for (size_t i = 0; i < paths_.size(); ++i) {
      if (static_cast<int>(i) == selected_) continue;
      if (victim < 0 || paths_[i].lastValid < paths_[static_cast<size_t>(victim)].lastValid)
        victim = static_cast<int>(i);
    }
    // (maxPaths >= 2 and one path at most is selected: a full table has a victim.)
    paths_.erase(paths_.begin() + victim);
    if (selected_ > victim) --selected_;
  }
  paths_.push_back(Path{remote, 0, now, false});
  return paths_.back();
}

size_t LiteAgent::writeError(const stun::Message& request, int code, std::string_view reason,
                             std::span<uint8_t> out) const {
  stun::Builder b(out, stun::Method::kBinding, stun::Class::kError, request.transactionId());
  b.errorCode(code, reason).fingerprint();
  return b.ok() ? b.size() : 0;
}

CheckResult LiteAgent::onBindingRequest(const stun::Message& request, const Address& from, TimePoint now,
                                        std::span<uint8_t> out) {
  if (!request.is(stun::Method::kBinding, stun::Class::kRequest) || state_ == State::kFailed) return {};
  // RFC 8445 section 7.2.2 (and RFC 8489 section 9.1.3): short-term credentials need USERNAME and
  // MESSAGE-INTEGRITY; an ICE check also carries PRIORITY.
  auto username = splitUsername(request);
  if (!username || !request.hasIntegrity() || !request.has(stun::attr::kPriority)) {
    return {Outcome::kBadRequest, writeError(request, 400, "Bad Request", out)};
  }
  // Which credentials the check was made with: the current ones, or (restart pending) the previous ones.
  bool current = username->local == local_.ufrag;
  bool previous = !current && previousUfrag_ && username->local == *previousUfrag_;
  const std::optional<Credentials>& remote = current ? remote_ : previousRemote_;
  bool authentic = (current || previous) && (!remote || username->remote == remote->ufrag) &&
                   request.verifyIntegrity(bytesOf(current ? local_.pwd : *previousPwd_));
  if (!authentic) return {Outcome::kUnauthorized, writeError(request, 401, "Unauthorized", out)};
  if (request.has(stun::attr::kIceControlled) || !request.has(stun::attr::kIceControlling)) {
    // Both sides think they are controlled (or the peer says nothing): a lite agent cannot take control.
    return {Outcome::kRoleConflict, writeError(request, 487, "Role Conflict", out)};
  }

  stun::Builder b(out, stun::Method::kBinding, stun::Class::kSuccess, request.transactionId());
  b.xorAddress(stun::attr::kXorMappedAddress, from)
      .messageIntegrity(bytesOf(current ? local_.pwd : *previousPwd_))
      .fingerprint();
  if (!b.ok()) return {};  // `out` too small: the caller's bug, nothing to send

  if (current && previousUfrag_) {
    // The restart is complete: the old credentials are no longer answered.
    previousUfrag_.reset();
    previousPwd_.reset();
    previousRemote_.reset();
  }
  Path& path = remember(from, now);
  path.lastValid = now;
  path.priority = request.u32(stun::attr::kPriority).value_or(0);
  Outcome outcome = Outcome::kValid;
  if (request.has(stun::attr::kUseCandidate)) {
    path.nominated = true;
    int index = static_cast<int>(&path - paths_.data());
    if (selected_ != index || state_ != State::kConnected) outcome = Outcome::kSelected;
    selected_ = index;
    state_ = State::kConnected;
  }
  return {outcome, b.size()};
}

void LiteAgent::restart(Credentials local, std::optional<Credentials> remote, TimePoint now) {
  if (state_ == State::kFailed) return;
  previousUfrag_ = std::move(local_.ufrag);
  previousPwd_ = std::move(local_.pwd);
  previousRemote_ = std::move(remote_);
  local_ = std::move(local);
  remote_ = std::move(remote);
  if (state_ == State::kChecking) checkingSince_ = now;
}

State LiteAgent::tick(TimePoint now) {
  if (state_ == State::kChecking) {
    if (now - checkingSince_ >= options_.connectTimeout) state_ = State::kFailed;
    return state_;
  }
  if (state_ != State::kConnected) return state_;
  const Path& sel = paths_[static_cast<size_t>(selected_)];
  if (now - sel.lastValid < options_.consentTimeout) return state_;
  // The selected path lost consent: the most recently checked nominated path that still has it takes over.
  int next = -1;
  for (size_t i = 0; i < paths_.size(); ++i) {
    const Path& p = paths_[i];
    if (!p.nominated || now - p.lastValid >= options_.consentTimeout) continue;
    if (next < 0 || p.lastValid > paths_[static_cast<size_t>(next)].lastValid) next = static_cast<int>(i);
  }
  if (next >= 0) {
    selected_ = next;
  } else {
    state_ = State::kFailed;
    selected_ = -1;
  }
  return state_;
}

TimePoint LiteAgent::nextDeadline() const {
  switch (state_) {
    case State::kChecking:
      return checkingSince_ + options_.connectTimeout;
    case State::kConnected:
      return paths_[static_cast<size_t>(selected_)].lastValid + options_.consentTimeout;
    case State::kFailed:
      break;
  }
  return TimePoint::max();
}

}  // namespace kaiwa::ice
