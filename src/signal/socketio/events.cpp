#include "signal/socketio/events.hpp"

#include <spdlog/spdlog.h>
#include <boost/container/small_vector.hpp>
#include <boost/json.hpp>

#include <array>
#include <charconv>
#include <utility>

#include "auth/jwt.hpp"
#include "common/base64.hpp"
#include "common/json_text.hpp"
#include "common/metrics.hpp"
#include "signal/names.hpp"
#include "signal/room.hpp"
#include "signal/socketio/engineio.hpp"

namespace kaiwa::signal::socketio {
namespace {

namespace json = boost::json;

constexpr std::size_t kImplicitRoomCapacity = 1'000'000;  // every socket that joined no room may be there
constexpr Millis kErrorEventSpacing{200};  // `kaiwa:error` events (no ack to carry the error) at most 5 per second

const RoomPolicy& policyFor(bool implicit) {
  static const RoomPolicy kExplicit = [] {
    RoomPolicy p;
    p.keepDetached = false;
    p.resumable = false;  // a reconnecting socket gets a new id (no connection-state recovery)
    return p;
  }();
  static const RoomPolicy kImplicit = [] {
    RoomPolicy p;
    p.keepDetached = false;
    p.resumable = false;
    p.announce = false;
    p.capacity = kImplicitRoomCapacity;
    return p;
  }();
  return implicit ? kImplicit : kExplicit;
}

template <typename F>
void unpackFrames(std::string_view data, F&& frame) {
  if (data.empty()) return;
  if (data.front() == '4') {
    frame(data, false);
    return;
  }
  data.remove_prefix(1);
  bool first = true;
  while (!data.empty()) {
    std::size_t len = 0;
    auto [end, ec] = std::from_chars(data.data(), data.data() + data.size(), len);
    if (ec != std::errc() || end == data.data() + data.size() || *end != ':') return;
    data.remove_prefix(static_cast<std::size_t>(end - data.data()) + 1);
    if (len > data.size()) return;
    frame(data.substr(0, len), !first);
    data.remove_prefix(len);
    first = false;
  }
}

// The `room` claim of a room token, read without checking anything (verifyRoomToken judges the token); "" if none.
std::string claimedRoom(std::string_view token) {
  auto dot1 = token.find('.');
  auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return {};
  auto payload = common::base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload) return {};
  std::error_code ec;
  json::value v = json::parse(*payload, ec);
  if (ec || !v.is_object()) return {};
  const json::value* room = v.get_object().if_contains("room");
  return room && room->is_string() ? std::string(room->get_string()) : std::string();
}

std::string errorJson(std::string_view code, std::string_view message) {
  std::string s = R"({"error":)";
  common::appendJsonString(s, code);
  s += R"(,"message":)";
  common::appendJsonString(s, message);
  s += '}';
  return s;
}

std::optional<std::string> roomArg(const json::array& args) {
  if (args.size() < 2) return std::nullopt;
  if (args[1].is_string()) return std::string(args[1].as_string());
  if (args[1].is_int64()) return std::to_string(args[1].as_int64());
  if (args[1].is_uint64()) return std::to_string(args[1].as_uint64());
  return std::nullopt;
}

// The receivers' frames for an event, without the sender's ack id.
std::string encodeFor(SioPacket p) {
  p.ackId.reset();
  p.type = p.buffers.empty() ? SioType::kEvent : SioType::kBinaryEvent;
  std::string text = encodePacket(p);
  return packFrames(std::move(text), p.buffers);
}

int64_t requestOf(std::optional<uint64_t> ack) { return ack ? static_cast<int64_t>(*ack) : kNoRequest; }

}  // namespace

std::string roomKey(std::string_view name, bool implicit) {
  std::string k(implicit ? kImplicitPrefix : kRoomPrefix);
  k.append(name);
  return k;
}

std::string packFrames(std::string text, const std::vector<std::string>& buffers) {
  if (buffers.empty()) {
    text.insert(0, 1, '4');
    return text;
  }
  std::string out = "B";
  auto add = [&out](std::string_view f) {
    out += std::to_string(f.size());
    out += ':';
    out.append(f);
  };
  text.insert(0, 1, '4');
  add(text);
  for (const auto& b : buffers) add(b);
  return out;
}

// --- room ops ----------------------------------------------------------------------------------------------------

std::string_view roomOf(const RoomOp& op) {
  return std::visit(
      [](const auto& o) -> std::string_view {
        if constexpr (std::is_same_v<std::decay_t<decltype(o)>, room_op::Directed>) {
          return o.routes[o.next].key;
        } else {
          return o.key;
        }
      },
      op);
}

namespace {

void apply(room_op::Join& op, RoomHost& rooms, Outbox& out, TimePoint now) {
  ErrorCode refused = ErrorCode::kTooManyRooms;
  Room* r = rooms.findOrCreate(op.key, policyFor(op.implicit), RoomCreator{op.address.view(), now}, &refused);
  if (!r) {
    refuseJoin(out, op.endpoint, kNoRequest, refused,
               refused == ErrorCode::kRateLimited ? "this address made too many rooms lately: try again later"
                                                  : "this server holds the most rooms it may");
    return;
  }
  r->join(JoinRequest{op.endpoint, kNoRequest, {}, {}, op.id.str()}, now, out);  // no name: nothing here shows one
  rooms.reapIfEmpty(op.key);
}

void apply(room_op::Leave& op, RoomHost& rooms, Outbox& out, TimePoint) {
  if (Room* r = rooms.find(op.key)) {
    r->leave(op.endpoint, kNoRequest, op.id.view(), out);  // a join still in flight ran before this: ops keep order
    rooms.reapIfEmpty(op.key);
  }
}

void apply(room_op::Members& op, RoomHost& rooms, Outbox& out, TimePoint) {
  std::vector<PeerInfo> others;
  if (Room* r = rooms.find(op.key); r && r->contains(op.id.view())) {
    others = r->members();
    std::erase_if(others, [&op](const PeerInfo& p) { return p.id == op.id.view(); });
  }
  reply(out, op.endpoint, ev::Joined{op.re, op.key, op.id.str(), {}, std::move(others), false});
}

void apply(room_op::Toggle& op, RoomHost& rooms, Outbox& out, TimePoint) {
  if (Room* r = rooms.find(op.key)) {
    std::string id = op.id.str();
    r->setState(op.endpoint, kNoRequest, id, op.patch, out);
    r->message(op.endpoint, op.re, id, "", std::move(op.frames), out);
  }
}

void apply(room_op::Broadcast& op, RoomHost& rooms, Outbox& out, TimePoint) {
  if (Room* r = rooms.find(op.key)) r->message(op.endpoint, op.re, op.id.view(), "", std::move(op.frames), out);
}

// The three directed events of the guide. One sent without an ack still has a request id, which only this door reads:
// -2 - its index here. The room core's error for it comes back with that id, and kaiwa:error names the event.
constexpr std::array<std::string_view, 3> kDirectedEvents = {"offer", "answer", "ice-candidate"};

int64_t directedRequest(std::optional<uint64_t> ack, std::string_view event) {
  if (ack) return requestOf(ack);
  for (size_t i = 0; i < kDirectedEvents.size(); ++i)
    if (kDirectedEvents[i] == event) return -2 - int64_t(i);
  return kNoRequest;
}

std::string_view directedEventOf(int64_t re) {
  int64_t i = -2 - re;
  return i >= 0 && i < int64_t(kDirectedEvents.size()) ? kDirectedEvents[size_t(i)] : std::string_view{};
}

bool apply(room_op::Directed& op, RoomHost& rooms, Outbox& out, TimePoint now) {
  const room_op::Directed::Route& route = op.routes[op.next];
  Room* r = rooms.find(route.key);
  if (r && r->contains(op.id.view()) && r->contains(op.target.view())) {
    r->relay(route.endpoint, op.id.view(), op.target.view(), {}, std::move(op.frames), false, now, out);
    if (op.re >= 0) reply(out, route.endpoint, ev::Ok{op.re});  // (an ack was asked for)
    return false;
  }
  if (++op.next < op.routes.size()) return true;
  metrics::registry().drop(metrics::Drop::kUnknownPeer);
  reply(out, op.routes.front().endpoint,
        ev::Error{op.re, ErrorCode::kUnknownPeer, "no socket '" + op.target.str() + "' in a room with you"});
  return false;
}

}  // namespace

bool applyRoomOp(RoomOp& op, RoomHost& rooms, Outbox& out, TimePoint now) {
  return std::visit(
      [&](auto& o) -> bool {
        if constexpr (std::is_same_v<std::decay_t<decltype(o)>, room_op::Directed>) {
          return apply(o, rooms, out, now);
        } else {
          apply(o, rooms, out, now);
          return false;
        }
      },
      op);
}

// --- GuideEvents ---------------------------------------------------------------------------------------------------

// What a few sockets carry: the handshake's ?room= and ?token=, the CONNECT's auth token (tokens only with
// --auth-secret), and with --auth-secret the implicit room the token grants.
struct GuideEvents::Credentials {
  std::string roomHint, queryToken, authToken;
  std::string implicitRoom;  // "" : none (no valid token for it)
  std::string_view token() const { return authToken.empty() ? queryToken : authToken; }
};

void Membership::deliver(const EventPtr& event) { events.onRoomEvent(*this, event); }

GuideEvents::GuideEvents(Listener& listener, const Config& config, std::string_view address, std::string roomHint,
                         std::string queryToken)
    : listener_(listener), config_(config), address_(address) {
  if (!roomHint.empty() || !queryToken.empty()) {
    credentials_ = std::make_unique<Credentials>(Credentials{std::move(roomHint), std::move(queryToken), {}, {}});
  }
}

GuideEvents::~GuideEvents() = default;

void GuideEvents::onConnected(std::string_view socketId, std::string_view authToken, std::string answer, TimePoint) {
  id_ = SocketId(socketId);
  connected_ = true;
  connectAnswer_ = std::move(answer);
  if (!authToken.empty()) {
    if (!credentials_) credentials_ = std::make_unique<Credentials>();
    credentials_->authToken = std::string(authToken);
  }
  joinImplicit();
  if (!implicitMembership()) sendConnectAnswer();  // in no room (no token for one): nothing to wait for
}

void GuideEvents::onDisconnected() {
  if (!connected_) return;
  connected_ = false;
  connectAnswer_.clear();
  implicitRefused_.reset();
  while (memberships_) {  // the last first
    Membership* last = memberships_.get();
    while (last->next) last = last->next.get();
    leaveRoom(*last, std::nullopt);
  }
}

// --- room-core events

void GuideEvents::onRoomEvent(Membership& m, const EventPtr& event) {
  std::visit([this, &m](const auto& e) { onRoomEvent(m, e); }, *event);
}

void GuideEvents::onRoomEvent(Membership& m, const ev::Joined& e) {
  // re set: the answer to a repeated join-room (onJoin), the others as the room has them now.
  if (e.re < 0 && m.joined) return;
  std::string peers = "[";
  for (const auto& p : e.peers) {
    if (peers.size() > 1) peers += ',';
    common::appendJsonString(peers, p.id);
  }
  peers += ']';
  if (e.re >= 0) {
    sendPacket(encodeAck(static_cast<uint64_t>(e.re), R"({"ok":true,"peers":)" + peers + "}"));
    return;
  }
  m.joined = true;
  if (m.implicit) sendConnectAnswer();
  if (auto ack = m.ack()) sendPacket(encodeAck(*ack, R"({"ok":true,"peers":)" + peers + "}"));
}

void GuideEvents::onRoomEvent(Membership& m, const ev::Error& e) {
  TimePoint now = listener_.now();
  if (e.refusesJoin && !m.joined) {
    std::string name = m.name;
    auto ack = m.ack();
    bool implicit = m.implicit;
    dropMembership(m);  // m is gone after this
    if (!implicit) {
      fail(ack, "join-room", toString(e.code), e.message, now);
      if (explicitRooms() == 0) joinImplicit();
    } else {
      sendConnectAnswer();        // connected, in no room
      implicitRefused_ = e.code;  // what its events are told (refuseRoomless)
      spdlog::debug("socket.io {}: not in the room '{}': {}", id_.view(), name, e.message);
    }
    return;
  }
  if (e.re >= 0) {
    fail(static_cast<uint64_t>(e.re), "", toString(e.code), e.message, now);
  } else if (std::string_view event = directedEventOf(e.re); !event.empty()) {
    fail(std::nullopt, event, toString(e.code), e.message, now);  // a directed event no room could deliver
  }
}

void GuideEvents::onRoomEvent(Membership&, const ev::Ok& e) {
  if (e.re >= 0) sendPacket(encodeAck(static_cast<uint64_t>(e.re), R"({"ok":true})"));
}

void GuideEvents::onRoomEvent(Membership& m, const ev::PeerJoined& e) {
  if (m.implicit) return;
  std::string arg;
  common::appendJsonString(arg, e.peer.id);
  sendPacket(encodeEvent("user-joined", arg));
}

void GuideEvents::onRoomEvent(Membership& m, const ev::PeerLeft& e) {
  if (m.implicit) return;
  std::string arg;
  common::appendJsonString(arg, e.peer);
  sendPacket(encodeEvent("user-left", arg));
}

void GuideEvents::onRoomEvent(Membership&, const ev::Signal& e) { sendFrames(e.data); }
void GuideEvents::onRoomEvent(Membership&, const ev::Message& e) { sendFrames(e.data); }

void GuideEvents::onRoomEvent(Membership&, const ev::Bye& e) {
  listener_.close(toString(e.reason),
                  e.reason == ByeReason::kShutdown ? engineio::kCloseGoingAway : engineio::kCloseNormal);
}

// Everything this socket is sent goes after its CONNECT's answer (a client ignores what comes before it).
void GuideEvents::sendPacket(std::string text) {
  sendConnectAnswer();
  listener_.sendPacket(std::move(text));
}

void GuideEvents::sendConnectAnswer() {
  if (!connectAnswer_.empty()) listener_.sendPacket(std::exchange(connectAnswer_, {}));
}

void GuideEvents::sendFrames(std::string_view data) {
  sendConnectAnswer();
  unpackFrames(data, [this](std::string_view frame, bool binary) { listener_.sendFrame(frame, binary); });
}

// --- the socket's events

void GuideEvents::onRateLimited(std::optional<uint64_t> ack, std::string_view event, TimePoint now) {
  fail(ack, event, "rate-limited", "too many messages: slow down", now);
}

void GuideEvents::onRelayEvent(RelayEvent& e, TimePoint now) {
  if (refuseRoomless(e.ackId, e.event, now)) return;
  if (e.route == EventRoute::kDirected) {
    relayDirected(e.event, e.ackId, e.target, std::move(e.frame));
  } else {
    relayBroadcast(e.relayedAs, e.ackId, std::move(e.frame));
  }
}

void GuideEvents::onEvent(SioPacket p, TimePoint now) {
  auto& m = metrics::registry();
  const json::array& args = p.data->as_array();
  std::string event(args[0].as_string());
  std::size_t bytes = 0;
  for (const auto& b : p.buffers) bytes += b.size();
  if (bytes > config_.maxMessageBytes) {
    m.drop(metrics::Drop::kTooLarge);
    fail(p.ackId, event, "too-large", "the event is larger than the server accepts", now);
    return;
  }
  if (event == "join-room") return onJoin(p);
  if (refuseRoomless(p.ackId, event, now)) return;
  if (event == "leave-room") return onLeave(p);
  if (event == "toggle-audio" || event == "toggle-video") return onToggle(std::move(p), event);
  EventRule rule = ruleOf(event, config_.relayUnknownEvents);
  if (rule.route == EventRoute::kDirected) return onDirected(std::move(p), event);
  if (rule.route == EventRoute::kBroadcast) return onBroadcast(std::move(p), rule.relayedAs);
  m.drop(metrics::Drop::kUnknownPeer);
  fail(p.ackId, event, "unknown-event", "kaiwa does not relay the event '" + event + "' (see docs/socketio.md)", now);
}

void GuideEvents::onJoin(const SioPacket& p) {
  TimePoint now = listener_.now();
  auto room = roomArg(p.data->as_array());
  if (!room || !validRoomName(*room)) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    fail(p.ackId, "join-room", "bad-message", "join-room takes a room name (1-64 printable characters)", now);
    return;
  }
  if (Membership* m = membership(*room, false)) {  // socket.io's join is idempotent
    if (p.ackId) {                                 // answered with the others in the room (ev::Joined with re)
      listener_.run(room_op::Members{m->key(), m->endpoint, id_, static_cast<int64_t>(*p.ackId)});
    }
    return;
  }
  if (explicitRooms() >= kMaxRoomsPerSocket) {
    fail(p.ackId, "join-room", "too-many-rooms", "a socket may be in at most 16 rooms", now);
    return;
  }
  if (config_.authSecret) {
    std::string_view token = credentials_ ? credentials_->token() : std::string_view{};
    auto v = auth::verifyRoomToken(token, *config_.authSecret, *room, listener_.wallSeconds());
    if (!v.claims) {
      fail(p.ackId, "join-room", "unauthorized", "room token refused: " + std::string(auth::toString(v.error)), now);
      return;
    }
  }
  if (Membership* imp = implicitMembership()) leaveRoom(*imp, std::nullopt);
  if (!memberships_ && listener_.moveToOwnerOf(*room, p.ackId)) return;  // joins there
  addMembership(*room, false, p.ackId);
}

void GuideEvents::join(const std::string& room, std::optional<uint64_t> ack) {
  if (!connected_) return;
  addMembership(room, false, ack);
}

void GuideEvents::onLeave(const SioPacket& p) {
  auto room = roomArg(p.data->as_array());
  Membership* m = room ? membership(*room, false) : nullptr;
  if (!m) {  // as in socket.io, leaving a room one is not in does nothing
    if (p.ackId) sendPacket(encodeAck(*p.ackId, R"({"ok":true})"));
    return;
  }
  leaveRoom(*m, p.ackId);
  if (explicitRooms() == 0) joinImplicit();
}

// offer / answer / ice-candidate {to, …}: to the one socket `to`, in a room both are in, as {from, …}.
void GuideEvents::onDirected(SioPacket p, const std::string& event) {
  json::array& args = p.data->as_array();
  json::object* body = args.size() >= 2 ? args[1].if_object() : nullptr;
  const json::value* to = body ? body->if_contains("to") : nullptr;
  if (!to || !to->is_string()) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    fail(p.ackId, event, "bad-message", event + " takes {to, ...}", listener_.now());
    return;
  }
  std::string target(to->as_string());
  json::object out;
  out.reserve(body->size());
  out.emplace("from", id_.view());
  for (auto& kv : *body) {
    if (kv.key() != "to" && kv.key() != "from") out.emplace(kv.key(), std::move(kv.value()));
  }
  args[1] = std::move(out);
  std::optional<uint64_t> ack = p.ackId;
  relayDirected(event, ack, target, encodeFor(std::move(p)));
}

// To the socket `target`, through the first of the sender's rooms that has it (room_op::Directed). Every socket id
// is 20 characters (randomSocketId), and only Socket.IO sockets are in these rooms: another `to` names nobody.
void GuideEvents::relayDirected(std::string_view event, std::optional<uint64_t> ack, std::string_view target,
                                std::string frames) {
  if (!memberships_ || target == id_.view() || target.size() != id_.view().size()) {
    metrics::registry().drop(metrics::Drop::kUnknownPeer);
    fail(ack, event, "unknown-peer", "no socket '" + std::string(target) + "' in a room with you", listener_.now());
    return;
  }
  RoomOp op(std::in_place_type<room_op::Directed>);  // made where it is sent from: moved once, into the task
  auto& d = std::get<room_op::Directed>(op);
  d.re = directedRequest(ack, event);
  d.frames = std::move(frames);
  for (Membership* m = memberships_.get(); m; m = m->next.get()) d.routes.push_back({m->key(), m->endpoint});
  d.id = id_;
  d.target = SocketId(target);
  listener_.run(std::move(op));
}

// toggle-audio {roomId, isMuted} / toggle-video {roomId, isVideoOff}: the room's media state, and the same event
// with `from` to the others.
void GuideEvents::onToggle(SioPacket p, const std::string& event) {
  json::array& args = p.data->as_array();
  json::object* body = args.size() >= 2 ? args[1].if_object() : nullptr;
  const json::value* roomId = body ? body->if_contains("roomId") : nullptr;
  const char* flag = event == "toggle-audio" ? "isMuted" : "isVideoOff";
  const json::value* value = body ? body->if_contains(flag) : nullptr;
  if (!roomId || !roomId->is_string() || !value || !value->is_bool()) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    fail(p.ackId, event, "bad-message", event + " takes {roomId, " + flag + "}", listener_.now());
    return;
  }
  Membership* m = membership(roomId->as_string(), false);
  if (!m) {
    fail(p.ackId, event, "not-joined", "join the room first", listener_.now());
    return;
  }
  MediaStatePatch patch;
  (event == "toggle-audio" ? patch.audioMuted : patch.videoOff) = value->as_bool();
  (*body)["from"] = id_.view();
  int64_t re = requestOf(p.ackId);
  listener_.run(room_op::Toggle{m->key(), m->endpoint, id_, patch, encodeFor(std::move(p)), re});
}

// The 1:1 examples' unaddressed events (and unknown ones when configured): to the other members of the sender's
// rooms, or of its implicit room when it joined none; `from` is added to an object argument.
void GuideEvents::onBroadcast(SioPacket p, std::string_view name) {
  json::array& args = p.data->as_array();
  args[0] = json::string(name);
  if (args.size() >= 2) {
    json::object* body = args[1].if_object();
    if (body && !body->contains("_placeholder")) (*body)["from"] = id_.view();  // not into a Buffer's stand-in
  }
  std::optional<uint64_t> ack = p.ackId;
  relayBroadcast(name, ack, encodeFor(std::move(p)));
}

// To the other members of the sender's rooms, or of its implicit room when it joined none.
void GuideEvents::relayBroadcast(std::string_view name, std::optional<uint64_t> ack, std::string frames) {
  boost::container::small_vector<Membership*, 2> targets;
  for (Membership* m = memberships_.get(); m; m = m->next.get()) {
    if (!m->implicit) targets.push_back(m);
  }
  if (targets.empty()) {
    if (Membership* imp = implicitMembership()) targets.push_back(imp);
  }
  if (targets.empty()) {
    fail(ack, std::string(name), "not-joined", "this socket is in no room", listener_.now());
    return;
  }
  for (std::size_t i = 0; i < targets.size(); ++i) {
    int64_t re = i == 0 ? requestOf(ack) : kNoRequest;
    // NOLINTNEXTLINE(bugprone-use-after-move): copied for every room but the last, which takes it.
    std::string data = i + 1 < targets.size() ? frames : std::move(frames);
    listener_.run(room_op::Broadcast{targets[i]->key(), targets[i]->endpoint, id_, std::move(data), re});
  }
}

// --- memberships

std::size_t GuideEvents::explicitRooms() const {
  std::size_t n = 0;
  for (Membership* m = memberships_.get(); m; m = m->next.get()) n += m->implicit ? 0 : 1;
  return n;
}

Membership* GuideEvents::membership(std::string_view name, bool implicit) {
  for (Membership* m = memberships_.get(); m; m = m->next.get()) {
    if (m->implicit == implicit && m->name == name) return m;
  }
  return nullptr;
}

Membership* GuideEvents::implicitMembership() const {
  for (Membership* m = memberships_.get(); m; m = m->next.get()) {
    if (m->implicit) return m;
  }
  return nullptr;
}

Membership& GuideEvents::addMembership(std::string_view name, bool implicit, std::optional<uint64_t> ack) {
  std::unique_ptr<Membership>* tail = &memberships_;
  while (*tail) tail = &(*tail)->next;
  *tail = std::make_unique<Membership>(*this, name, implicit);
  Membership* m = tail->get();
  m->endpoint = listener_.attach(*m);
  m->joinAck = ack ? static_cast<int64_t>(*ack) : -1;
  listener_.run(room_op::Join{m->key(), m->endpoint, id_, address_, implicit});
  return *m;
}

void GuideEvents::dropMembership(Membership& m) {
  listener_.detach(m.endpoint);
  for (std::unique_ptr<Membership>* slot = &memberships_; *slot; slot = &(*slot)->next) {
    if (slot->get() == &m) {
      *slot = std::move(m.next);  // m is gone after this
      return;
    }
  }
}

// Leaves the room (the others get user-left); `ack` is answered at once.
void GuideEvents::leaveRoom(Membership& m, std::optional<uint64_t> ack) {
  listener_.run(room_op::Leave{m.key(), m.endpoint, id_});
  dropMembership(m);
  if (ack) sendPacket(encodeAck(*ack, R"({"ok":true})"));
}

void GuideEvents::joinImplicit() {
  if (!connected_ || implicitMembership()) return;
  implicitRefused_.reset();  // the room core's last word, if any, was about an earlier try
  std::string_view name = implicitName();
  if (name.empty()) return;  // --auth-secret and no token for it: in no room
  addMembership(name, true, std::nullopt);
}

// The implicit room: the handshake's ?room=, else the default room. With --auth-secret only a room the socket's
// token grants: ?room= if it does; with no ?room=, the room the token names (a token for one room puts its holder
// there), or the default room for a token for any room ("*"). "" when there is none: the socket is in no room until
// it joins one its token grants. Checked again each time the socket goes back to it (the token may have expired).
std::string_view GuideEvents::implicitName() {
  std::string_view hint = credentials_ ? std::string_view(credentials_->roomHint) : std::string_view{};
  if (!config_.authSecret) return hint.empty() ? std::string_view(config_.defaultRoom) : hint;
  if (!credentials_) return {};
  std::string_view token = credentials_->token();
  std::string candidate(hint);
  if (candidate.empty()) {
    candidate = claimedRoom(token);
    if (candidate == "*" || !validRoomName(candidate)) candidate = config_.defaultRoom;
  }
  auto v = auth::verifyRoomToken(token, *config_.authSecret, candidate, listener_.wallSeconds());
  credentials_->implicitRoom = v.claims ? std::move(candidate) : std::string();
  return credentials_->implicitRoom;
}

// A socket in no room may only join one: anything else is refused, with what kept it out of its implicit room (no
// valid token for it, or the room core's refusal). True if `event` was refused.
bool GuideEvents::refuseRoomless(std::optional<uint64_t> ack, std::string_view event, TimePoint now) {
  if (memberships_ || event == "join-room") return false;
  if (implicitRefused_) {
    fail(ack, event, toString(*implicitRefused_), "this socket is in no room: join one", now);
    return true;
  }
  if (config_.authSecret) {
    fail(ack, event, "unauthorized", "this socket has no room token for its room: join-room a room the token grants",
         now);
    return true;
  }
  return false;
}

// An error for an event: in its ack when it asked for one, else as a `kaiwa:error` event (spaced out, so a flood
// of bad events does not become a flood of errors).
void GuideEvents::fail(std::optional<uint64_t> ack, std::string_view event, std::string_view code,
                       std::string_view message, TimePoint now) {
  metrics::add(metrics::registry().errorsSent);
  if (ack) {
    sendPacket(encodeAck(*ack, errorJson(code, message)));
    return;
  }
  if (now - lastErrorEvent_ < kErrorEventSpacing) return;
  lastErrorEvent_ = now;
  std::string arg = errorJson(code, message);
  if (!event.empty()) {
    arg.pop_back();
    arg += R"(,"event":)";
    common::appendJsonString(arg, event);
    arg += '}';
  }
  sendPacket(encodeEvent("kaiwa:error", arg));
}

}  // namespace kaiwa::signal::socketio
