#include "signal/room.hpp"

#include <algorithm>
#include <new>

// GCC says ASan with __SANITIZE_ADDRESS__, Clang with __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define KAIWA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KAIWA_ASAN 1
#endif
#endif
#if defined(KAIWA_ASAN)
#include <sanitizer/asan_interface.h>
#endif

#include "common/metrics.hpp"
#include "common/random.hpp"

namespace kaiwa::signal {
namespace {

constexpr std::size_t kPeerIdLength = 12;
constexpr std::size_t kResumeTokenLength = 24;

// An event is made for nearly every message and freed on the worker that delivered it. Its block (the event and its
// shared_ptr counts, one size for all) goes to a list of that thread's and is taken again for the thread's next
// event: a relayed message makes no malloc/free pair for its event. The list is bounded; whatever a thread holds is
// freed when it ends. Under ASan a kept block is poisoned, so a use after the last reference is still caught.
class FreeBlocks {
 public:
  static constexpr std::size_t kKeep = 256;
  FreeBlocks(const FreeBlocks&) = delete;
  FreeBlocks& operator=(const FreeBlocks&) = delete;
  ~FreeBlocks() {
    ended_ = true;
    while (void* p = take()) ::operator delete(p);  // unsized: Clang declares the sized one only on request
  }
  // The list of this thread, or nullptr once the thread's end destroyed it (an event another thread-local object
  // held may be freed after that).
  template <std::size_t Size>
  static FreeBlocks* ofThisThread() {
    static thread_local bool ended = false;  // trivially destructible: valid until the thread is gone
    if (ended) return nullptr;
    thread_local FreeBlocks blocks(Size, ended);
    return &blocks;
  }
  void* take() {
    Node* n = head_;
    if (!n) return nullptr;
    unpoison(n);
    head_ = n->next;
    --count_;
    return n;
  }
  bool keep(void* p) {
    if (count_ == kKeep) return false;
    head_ = new (p) Node{head_};
    ++count_;
    poison(p);
    return true;
  }

 private:
  struct Node {
    Node* next;
  };
  FreeBlocks(std::size_t size, bool& ended) : ended_(ended), size_(size) {}
#if defined(KAIWA_ASAN)
  void poison(void* p) const { ASAN_POISON_MEMORY_REGION(p, size_); }
  void unpoison(void* p) const { ASAN_UNPOISON_MEMORY_REGION(p, size_); }
#else
  void poison(void*) const {}
  void unpoison(void*) const {}
#endif
  Node* head_ = nullptr;
  std::size_t count_ = 0;
  bool& ended_;
  std::size_t size_;
};

// The allocator std::allocate_shared gets for events: single blocks through FreeBlocks.
template <typename T>
struct EventAllocator {
  using value_type = T;
  EventAllocator() = default;
  template <typename U>
  EventAllocator(const EventAllocator<U>&) {}  // NOLINT(google-explicit-constructor): rebinding
  T* allocate(std::size_t n) {
    FreeBlocks* blocks = n == 1 ? FreeBlocks::ofThisThread<sizeof(T)>() : nullptr;
    if (void* p = blocks ? blocks->take() : nullptr) return static_cast<T*>(p);
    return std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, std::size_t n) {
    FreeBlocks* blocks = n == 1 ? FreeBlocks::ofThisThread<sizeof(T)>() : nullptr;
    if (blocks && blocks->keep(p)) return;
    std::allocator<T>{}.deallocate(p, n);
  }
  template <typename U>
  bool operator==(const EventAllocator<U>&) const {
    return true;
  }
};

template <typename T>
EventPtr make(T&& value) {
  return std::allocate_shared<const Event>(EventAllocator<Event>{}, std::forward<T>(value));
}

}  // namespace

std::string_view toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadMessage:
      return "bad-message";
    case ErrorCode::kTooLarge:
      return "too-large";
    case ErrorCode::kRateLimited:
      return "rate-limited";
    case ErrorCode::kNotJoined:
      return "not-joined";
    case ErrorCode::kAlreadyJoined:
      return "already-joined";
    case ErrorCode::kRoomFull:
      return "room-full";
    case ErrorCode::kTooManyRooms:
      return "too-many-rooms";
    case ErrorCode::kUnknownPeer:
      return "unknown-peer";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kResumeFailed:
      return "resume-failed";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kNotSfu:
      return "not-sfu";
    case ErrorCode::kBadSdp:
      return "bad-sdp";
    case ErrorCode::kTooManyPublishers:
      return "too-many-publishers";
    case ErrorCode::kTooManyTracks:
      return "too-many-tracks";
    case ErrorCode::kStaleAnswer:
      return "stale-answer";
    case ErrorCode::kNotAllowed:
      return "not-allowed";
    case ErrorCode::kRecordingOff:
      return "recording-off";
    case ErrorCode::kAlreadyRecording:
      return "already-recording";
    case ErrorCode::kNotRecording:
      return "not-recording";
    case ErrorCode::kRecordingFailed:
      return "recording-failed";
  }
  return "internal";
}

std::string_view toString(MediaPolicy policy) {
  switch (policy) {
    case MediaPolicy::kAuto:
      return "auto";
    case MediaPolicy::kSfu:
      return "sfu";
    case MediaPolicy::kMesh:
    case MediaPolicy::kNone:
      return "mesh";
  }
  return "mesh";
}

std::string_view toString(MediaMode mode) { return mode == MediaMode::kSfu ? "sfu" : "mesh"; }

std::optional<MediaPolicy> parseMediaPolicy(std::string_view text) {
  if (text == "auto") return MediaPolicy::kAuto;
  if (text == "sfu") return MediaPolicy::kSfu;
  if (text == "mesh") return MediaPolicy::kMesh;
  return std::nullopt;
}

std::string_view toString(LeaveReason reason) {
  switch (reason) {
    case LeaveReason::kLeft:
      return "left";
    case LeaveReason::kDisconnected:
      return "disconnected";
    case LeaveReason::kTimeout:
      return "timeout";
    case LeaveReason::kKicked:
      return "kicked";
  }
  return "left";
}

std::string_view toString(ByeReason reason) {
  switch (reason) {
    case ByeReason::kShutdown:
      return "shutdown";
    case ByeReason::kTimeout:
      return "timeout";
    case ByeReason::kReplaced:
      return "replaced";
  }
  return "shutdown";
}

std::size_t approximateSize(const Event& e) {
  constexpr std::size_t kFraming = 64;
  return kFraming + std::visit(
                        [](const auto& v) -> std::size_t {
                          using T = std::decay_t<decltype(v)>;
                          if constexpr (std::is_same_v<T, ev::Signal> || std::is_same_v<T, ev::Message>) {
                            return v.from.size() + v.data.size();
                          } else if constexpr (std::is_same_v<T, ev::Chat>) {
                            return v.from.size() + v.name.size() + v.text.size();
                          } else if constexpr (std::is_same_v<T, ev::Joined>) {
                            std::size_t n = v.room.size() + v.peer.size() + v.resume.size();
                            for (const auto& p : v.peers) n += p.id.size() + p.name.size() + p.user.size() + 80;
                            return n;
                          } else if constexpr (std::is_same_v<T, ev::PeerJoined>) {
                            return v.peer.id.size() + v.peer.name.size() + v.peer.user.size() + 80;
                          } else if constexpr (std::is_same_v<T, ev::Error>) {
                            return v.message.size();
                          } else if constexpr (std::is_same_v<T, ev::SubscribeOffer>) {
                            return v.sdp.size() + v.tracks.size();
                          } else {
                            return 32;
                          }
                        },
                        e);
}

void reply(Outbox& out, Endpoint to, Event event) { out.push_back({to, make(std::move(event))}); }

void replyError(Outbox& out, Endpoint to, int64_t re, ErrorCode code, std::string message) {
  reply(out, to, ev::Error{re, code, std::move(message)});
}

void refuseJoin(Outbox& out, Endpoint to, int64_t re, ErrorCode code, std::string message) {
  reply(out, to, ev::Error{re, code, std::move(message), true});
}

Room::~Room() {
  for (const auto& [id, p] : peers_) {
    metrics::add(metrics::registry().peers, -1);
    if (!p.attached) metrics::add(metrics::registry().detachedPeers, -1);
  }
}

std::string Room::join(JoinRequest req, TimePoint now, Outbox& out) {
  if (peers_.size() >= capacity()) {
    refuseJoin(out, req.from, req.re, ErrorCode::kRoomFull, "room '" + name_ + "' is full");
    return {};
  }
  if (req.token.size() > UINT16_MAX) {  // Peer::tokenLength; no front door lets such a token through
    refuseJoin(out, req.from, req.re, ErrorCode::kBadMessage, "resume token too long");
    return {};
  }
  if (req.user.size() > UINT8_MAX) {  // Peer::userLength
    refuseJoin(out, req.from, req.re, ErrorCode::kUnauthorized, "the token's user is too long (255 bytes at most)");
    return {};
  }
  if (req.sfuOnly && policy_.media != MediaPolicy::kAuto && policy_.media != MediaPolicy::kSfu) {
    refuseJoin(out, req.from, req.re, ErrorCode::kBadMessage, "room '" + name_ + "' does not go through the SFU");
    return {};
  }
  std::string id = req.peerId.empty() ? common::randomToken(kPeerIdLength) : std::move(req.peerId);
  auto [it, inserted] = peers_.try_emplace(std::move(id));
  if (!inserted) {
    refuseJoin(out, req.from, req.re, ErrorCode::kBadMessage, "peer id '" + it->first + "' is taken in this room");
    return {};
  }
  Peer& peer = it->second;
  peer.id = &it->first;
  peer.setState(req.state);
  if (!req.token.empty()) {
    peer.tokenAndName = std::move(req.token);
  } else if (policy_.resumable) {
    peer.tokenAndName = common::randomToken(kResumeTokenLength);
    peer.roomMadeToken = true;
  }
  peer.tokenLength = static_cast<uint16_t>(peer.tokenAndName.size());
  peer.userLength = static_cast<uint8_t>(req.user.size());
  peer.tokenAndName += req.user;
  peer.tokenAndName += req.name;
  peer.setEndpoint(req.from);
  peer.deadline = now;
  peer.sfuOnly = req.sfuOnly;
  sfuOnly_ += req.sfuOnly ? 1 : 0;
  link(peer);
  // The first member finds the room in its policy's mode: nothing changed, nothing to announce.
  const MediaMode before = peers_.size() == 1 ? effectiveMode() : mode_;
  mode_ = effectiveMode();
  reply(out, req.from,
        ev::Joined{req.re, name_, it->first, std::string(peer.resumeToken()),
                   policy_.announce ? othersThan(&peer) : std::vector<PeerInfo>{}, false, policy_.media, mode_});
  if (recording_) out.push_back({req.from, recordingEvent()});
  if (policy_.announce) broadcast(make(ev::PeerJoined{peer.info()}), &peer, out);
  if (policy_.observer) policy_.observer->onPeerJoined(*this, it->first);
  // Who is talking now, so the newcomer need not wait for the next change to outline anybody.
  if (speaker_ != nullptr) deliver(peer, make(ev::ActiveSpeaker{*speaker_->id}), out);
  modeChanged(before, out);
  flushHeld(it->first, req.from, out);
  metrics::add(metrics::registry().peers, 1);
  metrics::add(metrics::registry().joins);
  return it->first;
}

bool Room::resume(Endpoint from, int64_t re, std::string_view peerId, std::string_view token, TimePoint now,
                  Outbox& out) {
  auto it = peers_.find(peerId);
  if (!policy_.resumable || it == peers_.end() || token.empty() || it->second.resumeToken() != token ||
      (!it->second.attached && now >= it->second.deadline)) {
    refuseJoin(out, from, re, ErrorCode::kResumeFailed, "nothing to resume: join again");
    return false;
  }
  Peer& p = it->second;
  if (p.attached && p.endpoint() != from) {
    // The old connection is half-open or still alive: the newer one wins.
    reply(out, p.endpoint(), ev::Bye{ByeReason::kReplaced});
  }
  if (!p.attached) metrics::add(metrics::registry().detachedPeers, -1);
  p.attached = true;
  p.setEndpoint(from);
  p.deadline = now;
  if (p.roomMadeToken) {
    // A token seen on the wire once is spent: whoever saw it (a log, a proxy, an old tab) cannot take the peer over.
    std::string fresh = common::randomToken(kResumeTokenLength);
    p.tokenAndName.replace(0, p.tokenLength, fresh);
    p.tokenLength = static_cast<uint16_t>(fresh.size());
  }
  reply(out, from,
        ev::Joined{re, name_, *p.id, std::string(p.resumeToken()),
                   policy_.announce ? othersThan(&p) : std::vector<PeerInfo>{}, true, policy_.media, mode_});
  if (queues_) {
    if (auto q = queues_->find(&p); q != queues_->end()) {
      for (auto& e : q->second.items) out.push_back({from, std::move(e)});
      queues_->erase(q);
      if (queues_->empty()) queues_.reset();
    }
  }
  // After what was queued: a recording that started or stopped meanwhile ends up told right, and the member learns
  // who is talking now even if its queue was dropped while it was away.
  if (recording_) out.push_back({from, recordingEvent()});
  if (speaker_ != nullptr) out.push_back({from, make(ev::ActiveSpeaker{*speaker_->id})});
  metrics::add(metrics::registry().resumes);
  return true;
}

void Room::leave(Endpoint from, int64_t re, std::string_view peerId, Outbox& out) {
  Peer* p = sender(from, re, peerId, out);
  if (!p) return;
  std::string id = *p->id;
  reply(out, from, ev::Ok{re});
  remove(id, LeaveReason::kLeft, out);
}

void Room::detach(Endpoint from, TimePoint now, Outbox& out, bool goingAway, std::string_view peerHint) {
  auto attachedHere = [&](const auto& kv) { return kv.second.attached && kv.second.endpoint() == from; };
  auto it = peers_.end();
  if (!peerHint.empty()) {
    it = peers_.find(peerHint);
    if (it != peers_.end() && !attachedHere(*it)) it = peers_.end();
  }
  if (it == peers_.end()) it = std::find_if(peers_.begin(), peers_.end(), attachedHere);
  if (it == peers_.end()) return;  // left already, or resumed on another connection
  if (goingAway) {
    remove(it->first, LeaveReason::kLeft, out);
    return;
  }
  if (limits_.resumeGrace.count() <= 0 || !policy_.keepDetached) {
    remove(it->first, LeaveReason::kDisconnected, out);
    return;
  }
  it->second.attached = false;
  it->second.deadline = now + limits_.resumeGrace;
  metrics::add(metrics::registry().detachedPeers, 1);
}

void Room::signal(Endpoint from, int64_t re, std::string_view peerId, std::string_view to, std::string data,
                  Outbox& out) {
  Peer* p = sender(from, re, peerId, out);
  if (!p) return;
  Peer* target = find(to);
  if (!target || target == p) {
    metrics::registry().drop(metrics::Drop::kUnknownPeer);
    replyError(out, from, re, ErrorCode::kUnknownPeer, "no peer '" + std::string(to) + "' in this room");
    return;
  }
  deliver(*target, make(ev::Signal{*p->id, std::move(data)}), out);
  if (re != kNoRequest) reply(out, from, ev::Ok{re});
}

void Room::message(Endpoint from, int64_t re, std::string_view peerId, std::string_view to, std::string data,
                   Outbox& out) {
  Peer* p = sender(from, re, peerId, out);
  if (!p) return;
  if (to.empty()) {
    broadcast(make(ev::Message{*p->id, std::move(data), true}), p, out);
  } else {
    Peer* target = find(to);
    if (!target || target == p) {
      metrics::registry().drop(metrics::Drop::kUnknownPeer);
      replyError(out, from, re, ErrorCode::kUnknownPeer, "no peer '" + std::string(to) + "' in this room");
      return;
    }
    deliver(*target, make(ev::Message{*p->id, std::move(data), false}), out);
  }
  if (re != kNoRequest) reply(out, from, ev::Ok{re});
}

void Room::chat(Endpoint from, int64_t re, std::string_view peerId, std::string text, int64_t wallMs, Outbox& out) {
  Peer* p = sender(from, re, peerId, out);
  if (!p) return;
  if (re != kNoRequest) reply(out, from, ev::Ok{re, wallMs});
  broadcast(make(ev::Chat{*p->id, std::string(p->name()), std::move(text), wallMs}), nullptr, out);
}

void Room::setState(Endpoint from, int64_t re, std::string_view peerId, const MediaStatePatch& patch, Outbox& out) {
  Peer* p = sender(from, re, peerId, out);
  if (!p) return;
  MediaState state = p->state();
  patch.applyTo(state);
  p->setState(state);
  if (re != kNoRequest) reply(out, from, ev::Ok{re});
  broadcast(make(ev::PeerState{*p->id, state}), p, out);
}

void Room::relay(Endpoint from, std::string_view peerId, std::string_view to, std::string kind, std::string data,
                 bool hold, TimePoint now, Outbox& out) {
  Peer* sender = find(peerId);
  if (!sender || !sender->attached || sender->endpoint() != from) return;
  Peer& p = *sender;
  p.deadline = now;
  EventPtr event = make(ev::Signal{*p.id, std::move(data), std::move(kind)});
  if (Peer* target = find(to)) {
    deliver(*target, std::move(event), out);
  } else if (hold && policy_.holdForAbsent.count() > 0 && !to.empty()) {
    this->hold(p, to, std::move(event), now, out);
  } else {
    metrics::registry().drop(metrics::Drop::kUnknownPeer);
  }
}

void Room::touch(Endpoint from, std::string_view peerId, TimePoint now) {
  Peer* p = find(peerId);
  if (p && p->attached && p->endpoint() == from) p->deadline = now;
}

void Room::hold(const Peer& from, std::string_view to, EventPtr event, TimePoint now, Outbox& out) {
  std::size_t size = approximateSize(*event);
  if (!held_) held_ = std::make_unique<HeldMap>();
  auto it = held_->find(std::string(to));
  if (held_->bytes + size > policy_.holdMaxBytes) {
    metrics::registry().drop(metrics::Drop::kQueueFull);
    reply(out, from.endpoint(), ev::Expired{std::string(to)});
    return;
  }
  if (it == held_->end()) {
    if (held_->size() >= capacity()) {  // as many absent ids as members: refuse more, at once
      metrics::registry().drop(metrics::Drop::kQueueFull);
      reply(out, from.endpoint(), ev::Expired{std::string(to)});
      return;
    }
    it = held_->emplace(std::string(to), Held{}).first;
    it->second.deadline = now + policy_.holdForAbsent;
  }
  Held& h = it->second;
  h.bytes += size;
  held_->bytes += size;
  h.items.emplace_back(*from.id, std::move(event));
  while (!h.items.empty() && (h.items.size() > limits_.resumeQueueMessages || h.bytes > limits_.resumeQueueBytes)) {
    std::size_t front = approximateSize(*h.items.front().second);
    h.bytes -= front;
    held_->bytes -= front;
    h.items.pop_front();
    metrics::registry().drop(metrics::Drop::kQueueFull);
  }
}

void Room::flushHeld(const std::string& id, Endpoint to, Outbox& out) {
  if (!held_) return;
  auto it = held_->find(id);
  if (it == held_->end()) return;
  for (auto& [from, event] : it->second.items) out.push_back({to, std::move(event)});
  held_->bytes -= it->second.bytes;
  held_->erase(it);
  if (held_->empty()) held_.reset();
}

TimePoint Room::tick(TimePoint now, Outbox& out) {
  std::vector<std::string> expired, silent;
  TimePoint next = TimePoint::max();
  const bool alive = policy_.aliveTimeout.count() > 0;
  for (const auto& [id, p] : peers_) {
    if (p.attached) {
      if (!alive) continue;
      TimePoint deadline = p.deadline + policy_.aliveTimeout;
      if (now >= deadline) {
        silent.push_back(id);
      } else {
        next = std::min(next, deadline);
      }
    } else if (now >= p.deadline) {
      expired.push_back(id);
    } else {
      next = std::min(next, p.deadline);
    }
  }
  for (const auto& id : expired) remove(id, LeaveReason::kDisconnected, out);
  for (const auto& id : silent) {
    reply(out, peers_.at(id).endpoint(), ev::Bye{ByeReason::kTimeout});
    remove(id, LeaveReason::kTimeout, out);
  }
  if (!held_) return next;
  for (auto it = held_->begin(); it != held_->end();) {
    if (now < it->second.deadline) {
      next = std::min(next, it->second.deadline);
      ++it;
      continue;
    }
    // One ev::Expired per (sender, absent id) pair, to senders still here.
    std::vector<std::string_view> told;
    for (const auto& [from, event] : it->second.items) {
      if (std::find(told.begin(), told.end(), from) != told.end()) continue;
      told.push_back(from);
      auto sender = peers_.find(from);
      if (sender != peers_.end()) deliver(sender->second, make(ev::Expired{it->first}), out);
    }
    held_->bytes -= it->second.bytes;
    it = held_->erase(it);
  }
  if (held_->empty()) held_.reset();
  return next;
}

std::vector<PeerInfo> Room::members() const { return othersThan(nullptr); }

Room::Peer* Room::sender(Endpoint from, int64_t re, std::string_view peerId, Outbox& out) {
  Peer* p = find(peerId);
  if (!p || !p->attached || p->endpoint() != from) {
    replyError(out, from, re, ErrorCode::kNotJoined, "not a member of room '" + name_ + "'");
    return nullptr;
  }
  return p;
}

void Room::deliver(Peer& to, EventPtr event, Outbox& out) {
  if (to.attached) {
    out.push_back({to.endpoint(), std::move(event)});
    return;
  }
  if (!queues_) queues_ = std::make_unique<std::unordered_map<const Peer*, Queue>>();
  Queue& q = (*queues_)[&to];
  q.bytes += approximateSize(*event);
  q.items.push_back(std::move(event));
  while (!q.items.empty() && (q.items.size() > limits_.resumeQueueMessages || q.bytes > limits_.resumeQueueBytes)) {
    q.bytes -= approximateSize(*q.items.front());
    q.items.pop_front();
    metrics::registry().drop(metrics::Drop::kQueueFull);
  }
}

void Room::link(Peer& p) {
  p.prev = last_;
  p.next = nullptr;
  (last_ ? last_->next : first_) = &p;
  last_ = &p;
}

void Room::unlink(Peer& p) {
  (p.prev ? p.prev->next : first_) = p.next;
  (p.next ? p.next->prev : last_) = p.prev;
  p.prev = p.next = nullptr;
}

void Room::broadcast(const EventPtr& event, const Peer* except, Outbox& out) {
  // deliver() touches no member's links, so the walk is safe.
  for (Peer* p = first_; p; p = p->next) {
    if (p != except) deliver(*p, event, out);
  }
}

void Room::remove(std::string id, LeaveReason reason, Outbox& out) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  if (!it->second.attached) metrics::add(metrics::registry().detachedPeers, -1);
  sfuOnly_ -= it->second.sfuOnly ? 1 : 0;
  if (speaker_ == &it->second) speaker_ = nullptr;
  unlink(it->second);
  if (queues_) {
    queues_->erase(&it->second);
    if (queues_->empty()) queues_.reset();
  }
  peers_.erase(it);
  metrics::add(metrics::registry().peers, -1);
  if (policy_.announce) broadcast(make(ev::PeerLeft{id, reason}), nullptr, out);
  if (policy_.observer) policy_.observer->onPeerRemoved(*this, id);
  const MediaMode before = mode_;
  mode_ = effectiveMode();
  modeChanged(before, out);
}

MediaMode Room::effectiveMode() const {
  switch (policy_.media) {
    case MediaPolicy::kSfu:
      return MediaMode::kSfu;
    case MediaPolicy::kAuto:
      // A member in its resume grace period still counts: a reconnect does not flip the room back and forth. A
      // member only the SFU can carry (a WHIP publisher) makes it sfu whatever the count.
      return peers_.size() > 2 || sfuOnly_ > 0 ? MediaMode::kSfu : MediaMode::kMesh;
    case MediaPolicy::kMesh:
    case MediaPolicy::kNone:
      return MediaMode::kMesh;
  }
  return MediaMode::kMesh;
}

void Room::modeChanged(MediaMode before, Outbox& out) {
  if (mode_ == before) return;
  if (mode_ != MediaMode::kSfu) speaker_ = nullptr;  // a mesh room has no server-side audio to judge
  broadcast(make(ev::MediaModeChanged{mode_}), nullptr, out);
  // The SFU records; a mesh room's media does not pass through it (the observer stops the SFU's side).
  if (mode_ == MediaMode::kMesh) stopRecording({}, "mesh", out);
  if (policy_.observer) policy_.observer->onMediaMode(*this, mode_);
}

EventPtr Room::recordingEvent() const {
  return make(ev::Recording{true, recording_->by, recording_->name, recording_->since, {}});
}

void Room::startRecording(RecordingState state, Outbox& out) {
  recording_ = std::make_unique<RecordingState>(std::move(state));
  broadcast(recordingEvent(), nullptr, out);
}

void Room::stopRecording(std::string_view by, std::string reason, Outbox& out) {
  if (!recording_) return;
  recording_.reset();
  std::string name;
  if (const Peer* p = by.empty() ? nullptr : find(by)) name = std::string(p->name());
  broadcast(make(ev::Recording{false, std::string(by), std::move(name), 0, std::move(reason)}), nullptr, out);
}

bool Room::isSender(Endpoint from, std::string_view peerId) const {
  const Peer* p = find(peerId);
  return p != nullptr && p->attached && p->endpoint() == from;
}

void Room::deliverTo(std::string_view peerId, EventPtr event, Outbox& out) {
  if (Peer* p = find(peerId)) deliver(*p, std::move(event), out);
}

void Room::setActiveSpeaker(std::string_view peerId, Outbox& out) {
  const Peer* p = find(peerId);
  if (p == nullptr || p == speaker_ || mode_ != MediaMode::kSfu) return;
  speaker_ = p;
  if (policy_.announce) broadcast(make(ev::ActiveSpeaker{*p->id}), nullptr, out);
}

std::vector<PeerInfo> Room::othersThan(const Peer* except) const {
  std::vector<PeerInfo> list;
  list.reserve(peers_.size());
  for (const Peer* p = first_; p; p = p->next) {
    if (p != except) list.push_back(p->info());
  }
  return list;
}

}  // namespace kaiwa::signal
