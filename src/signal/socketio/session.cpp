#include "signal/socketio/session.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "auth/jwt.hpp"
#include "common/address_limits.hpp"
#include "common/base64.hpp"
#include "common/metrics.hpp"
#include "signal/limits.hpp"
#include "signal/native/codec.hpp"
#include "signal/room.hpp"
#include "signal/socketio/codec.hpp"

namespace kaiwa::signal::socketio {
namespace {

namespace json = boost::json;

constexpr std::string_view kRoomPrefix = "sio:";           // room-core names of Socket.IO rooms...
constexpr std::string_view kImplicitPrefix = "sio-idle:";  // ...and of the quiet rooms of sockets in none
constexpr std::size_t kMaxRoomsPerSocket = 16;
constexpr std::size_t kImplicitRoomCapacity = 1'000'000;  // every socket that joined no room may be there
constexpr uint16_t kCloseNormal = 1000;
constexpr uint16_t kCloseGoingAway = 1001;
constexpr uint16_t kClosePolicy = 1008;
constexpr uint16_t kCloseTooBig = 1009;
constexpr std::size_t kMaxTokenBytes = 4096;  // a longer room token is not kept (nor checked): no token
constexpr Millis kErrorEventSpacing{200};     // `kaiwa:error` events (no ack to carry the error) at most 5 per second

std::string roomKey(std::string_view name, bool implicit) {
  std::string k(implicit ? kImplicitPrefix : kRoomPrefix);
  k.append(name);
  return k;
}

// What a relayed event carries through the room core: the receivers' Engine.IO WebSocket frames, encoded once by
// the sender. One text frame "4<packet>" as it is (the common case: what decodeRelayEvent writes); "B" then
// "<len>:<bytes>" per frame for a binary event (its header's text frame first, then one binary frame per attachment).
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

std::optional<uint32_t> ownerOfSid(std::string_view sid, uint32_t workers) {
  auto dot = sid.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  uint32_t w = 0;
  auto [end, ec] = std::from_chars(sid.data(), sid.data() + dot, w);
  if (ec != std::errc() || end != sid.data() + dot || w >= workers) return std::nullopt;
  return w;
}

// The IP address in a WsConnection::remoteAddress() ("<ip>:<port>"; "?" when unknown): "" when unknown.
std::string_view ipOf(std::string_view remote) {
  auto colon = remote.rfind(':');
  if (colon == std::string_view::npos) return remote == "?" ? std::string_view{} : remote;
  return remote.substr(0, colon);
}

// An Engine.IO handshake refused by a per-address or server-wide limit: engine.io's answer to a request its
// allowRequest refuses, {"code":4,"message":…}, with a status that says why (429, 503).
http::Response handshakeRefused(unsigned status, std::string_view message) {
  std::string body = R"({"code":4,"message":)";
  native::appendJsonString(body, message);
  body += '}';
  return http::Response::json(status, std::move(body));
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

http::Response eioError(EioError code) {
  return http::Response::json(code == EioError::kForbidden ? 403 : 400, encodeError(code));
}

http::Response pollResponse(std::string body) {
  http::Response r = http::Response::text(200, std::move(body));
  r.contentType = "text/plain; charset=UTF-8";
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

std::string errorJson(std::string_view code, std::string_view message) {
  std::string s = R"({"error":)";
  native::appendJsonString(s, code);
  s += R"(,"message":)";
  native::appendJsonString(s, message);
  s += '}';
  return s;
}

// Every {"_placeholder":true,"num":k} of a binary packet names an attachment that came (0 <= k < count): a receiver's
// parser refuses the packet otherwise, so kaiwa must not relay it.
bool placeholdersValid(const json::value& v, std::size_t count) {
  switch (v.kind()) {
    case json::kind::array:
      for (const auto& e : v.get_array()) {
        if (!placeholdersValid(e, count)) return false;
      }
      return true;
    case json::kind::object: {
      const json::object& o = v.get_object();
      if (const json::value* p = o.if_contains("_placeholder"); p && p->is_bool() && p->get_bool()) {
        const json::value* n = o.if_contains("num");
        if (n && n->is_int64()) return n->get_int64() >= 0 && static_cast<uint64_t>(n->get_int64()) < count;
        if (n && n->is_uint64()) return n->get_uint64() < count;
        return false;
      }
      for (const auto& kv : o) {
        if (!placeholdersValid(kv.value(), count)) return false;
      }
      return true;
    }
    default:
      return true;
  }
}

}  // namespace

class EngineSession;

// An id of at most N characters (Engine.IO sids "<worker>.<20 characters>", socket ids of 20), held inline: a
// std::string of more than 15 characters costs a heap block besides itself.
template <std::size_t N>
class InlineId {
 public:
  InlineId() = default;
  explicit InlineId(std::string_view s) : len_(static_cast<uint8_t>(std::min(s.size(), sizeof(buf_)))) {
    std::memcpy(buf_, s.data(), len_);
  }
  std::string_view view() const { return {buf_, len_}; }
  std::string str() const { return std::string(view()); }
  bool empty() const { return len_ == 0; }

 private:
  char buf_[N] = {};
  uint8_t len_ = 0;
  static_assert(N < 256);
};

using Sid = InlineId<31>;
using SocketId = InlineId<20>;  // randomSocketId(): always 20 characters
using Address = InlineId<45>;   // an IP address in text form (IPv4-mapped IPv6 is the longest)

// A WebSocket transport; lives on `worker`, and `conn` is touched only there (null once the connection is gone).
struct WsLink {
  uint32_t worker = 0;
  http::WsConnection* conn = nullptr;
};

// One room the socket is in, with its own hub endpoint so that every event it gets says which room it came from.
// Who else is in the room is asked of the room core when needed (directed events, a repeated join-room), not kept.
struct Membership final : Connection {
  Membership(EngineSession& s, std::string_view n, bool imp) : session(s), name(n), implicit(imp) {}
  void deliver(const EventPtr& event) override;
  std::string key() const { return roomKey(name, implicit); }  // the room core's name

  std::optional<uint64_t> ack() const {
    return joinAck >= 0 ? std::optional<uint64_t>(static_cast<uint64_t>(joinAck)) : std::nullopt;
  }

  EngineSession& session;
  std::string name;  // as the client names it
  Endpoint endpoint{};
  int64_t joinAck = -1;              // the join-room's ack id, if it asked for one
  std::unique_ptr<Membership> next;  // the socket's next room (EngineSession::memberships_, in join order)
  bool implicit;                     // the room of a socket that joined none (quiet, no announcements)
  bool joined = false;
};

// A directed event on its way to the first of the sender's rooms that has its target (routeDirected).
struct Directed {
  struct Route {
    std::string key;
    Endpoint endpoint;
  };
  boost::container::small_vector<Route, 1> routes;  // the sender's rooms, in the order it joined them
  std::size_t next = 0;
  SocketId id, target;
  std::string event, frames;
  int64_t re = kNoRequest;
};

// Tries the rooms of `d` in turn, each on its owner: the first that has both the sender and the target relays the
// event (and acks it). When none has, the sender gets ev::Error{unknown-peer} naming the event.
static void routeDirected(Hub& hub, Directed&& d) {
  std::string key = d.routes[d.next].key;
  hub.onRoom(key, [&hub, d = std::move(d)](RoomHost& rooms, Outbox& out) mutable {
    const Directed::Route& route = d.routes[d.next];
    Room* r = rooms.find(route.key);
    if (r && r->contains(d.id.view()) && r->contains(d.target.view())) {
      r->relay(route.endpoint, d.id.view(), d.target.view(), {}, std::move(d.frames), false, Clock::now(), out);
      if (d.re != kNoRequest) reply(out, route.endpoint, ev::Ok{d.re});
      return;
    }
    if (++d.next < d.routes.size()) {
      routeDirected(hub, std::move(d));
      return;
    }
    metrics::registry().drop(metrics::Drop::kUnknownPeer);
    ev::Error e{d.re, ErrorCode::kUnknownPeer, "no socket '" + d.target.str() + "' in a room with you"};
    e.event = std::move(d.event);
    reply(out, d.routes.front().endpoint, std::move(e));
  });
}

// Polling and upgrade state, made for sessions that start with long polling (a direct WebSocket never has it) and
// dropped once the upgrade to a WebSocket is done.
struct Polling {
  http::Responder pendingGet;
  std::vector<EioPacket> queue;
  std::size_t queuedBytes = 0;
  std::shared_ptr<WsLink> probe;
  std::unique_ptr<boost::asio::steady_timer> upgradeTimer;  // made by the first upgrade probe
  bool upgrading = false;
};

// What a few sessions carry: the handshake's ?room= and ?token=, the CONNECT's auth token (tokens only with
// --auth-secret), and with --auth-secret the implicit room the token grants.
struct Credentials {
  std::string roomHint, queryToken, authToken;
  std::string implicitRoom;  // "" : none (no valid token for it)
  std::string_view token() const { return authToken.empty() ? queryToken : authToken; }
};

// The registry of one worker's sessions, keyed by their sid (held by the session itself).
struct SidHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view sid) const { return std::hash<std::string_view>{}(sid); }
  std::size_t operator()(const std::shared_ptr<EngineSession>& s) const;
};
struct SidEq {
  using is_transparent = void;
  static std::string_view sidOf(std::string_view sid) { return sid; }
  static std::string_view sidOf(const std::shared_ptr<EngineSession>& s);
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return sidOf(a) == sidOf(b);
  }
};
using SessionSet = std::unordered_set<std::shared_ptr<EngineSession>, SidHash, SidEq>;

struct Service::Impl {
  Impl(Hub& h, net::WorkerPool& p, Options o)
      : hub(h), pool(p), options(std::move(o)), sessions(p.size()), deadlines(p.size()),
        armedFor(p.size(), TimePoint::max()) {
    for (uint32_t w = 0; w < p.size(); ++w)
      tickers.push_back(std::make_unique<boost::asio::steady_timer>(p.context(w)));
    if (options.path.empty() || options.path.front() != '/') options.path.insert(0, 1, '/');
    if (options.path.back() != '/') options.path.push_back('/');
    explicitPolicy.keepDetached = false;
    explicitPolicy.resumable = false;  // a reconnecting socket gets a new id (no connection-state recovery)
    implicitPolicy.keepDetached = false;
    implicitPolicy.resumable = false;
    implicitPolicy.announce = false;
    implicitPolicy.capacity = kImplicitRoomCapacity;
  }

  std::shared_ptr<EngineSession> find(uint32_t worker, std::string_view sid) {
    auto& m = sessions[worker];
    auto it = m.find(sid);
    return it == m.end() ? nullptr : *it;
  }
  std::shared_ptr<EngineSession> create(uint32_t worker, const http::Request& req, std::string_view address);

  common::AddressLimits* addressLimits() const { return hub.options().addressLimits; }
  // A polling handshake from `ip`: nullopt if it may open a session (which then holds a polling place), else the
  // refusal to send.
  std::optional<http::Response> admitPolling(std::string_view ip);

  Hub& hub;
  net::WorkerPool& pool;
  Options options;
  RoomPolicy explicitPolicy, implicitPolicy;
  std::vector<SessionSet> sessions;  // per worker

  // The sessions' deadlines (a ping due, a pong late, a CONNECT late), per worker: a min-heap of (when, sid) and one
  // timer set to the earliest, so that each is met on time while an idle session holds no timer of its own. An entry
  // made stale by a later deadline of the same session just finds nothing to do (EngineSession::tick).
  struct Deadline {
    TimePoint when;
    Sid sid;
    bool operator>(const Deadline& o) const { return when > o.when; }
  };
  std::vector<std::vector<Deadline>> deadlines;                     // per worker
  std::vector<TimePoint> armedFor;                                  // per worker: TimePoint::max() when unarmed
  std::vector<std::unique_ptr<boost::asio::steady_timer>> tickers;  // per worker

  // On `worker`: tick the session `sid` at `when` (or soon after).
  void schedule(uint32_t worker, TimePoint when, const Sid& sid);
  void arm(uint32_t worker, TimePoint when);
  void fire(uint32_t worker);
};

class EngineSession final : public std::enable_shared_from_this<EngineSession> {
 public:
  EngineSession(Service::Impl& svc, uint32_t worker, std::string_view sid, std::string_view address,
                std::string roomHint, std::string queryToken)
      : svc_(svc), sid_(sid), address_(address), connectBy_(Clock::now() + svc.options.connectTimeout),
        limiter_(svc.hub.limits().burst, Clock::now()), worker_(worker) {
    if (!roomHint.empty() || !queryToken.empty()) {
      credentials_ = std::make_unique<Credentials>(Credentials{std::move(roomHint), std::move(queryToken), {}, {}});
    }
  }
  ~EngineSession() { releasePollingPlace(); }
  EngineSession(const EngineSession&) = delete;
  EngineSession& operator=(const EngineSession&) = delete;

  std::string_view sid() const { return sid_.view(); }

  std::string openPacket(bool upgrades) const {
    std::string packet = "0";  // appended, not "0" + string&&: GCC 12 at -O3 warns (-Wrestrict) about the latter
    packet += encodeOpenData(sid_.view(), upgrades, svc_.options.pingInterval.count(), svc_.options.pingTimeout.count(),
                             svc_.options.maxPayload);
    return packet;
  }

  // --- transports -------------------------------------------------------------------------------------------------

  // `holdsPlace`: admitted with AddressLimits::openPollingSession, whose place this session gives back when it ends or
  // upgrades (releasePollingPlace).
  void startPolling(bool holdsPlace) {
    poll_ = std::make_unique<Polling>();
    holdsPollingPlace_ = holdsPlace;
    schedulePing();
    svc_.schedule(worker_, connectBy_, sid_);
  }

  void startWebSocket(std::shared_ptr<WsLink> link) {
    direct_ = true;
    ws_ = std::move(link);
    sendOn(ws_, openPacket(false), false);
    schedulePing();
    svc_.schedule(worker_, connectBy_, sid_);
  }

  void onPollGet(http::Responder respond) {
    if (closed_ || ws_ || !poll_) {
      respond(eioError(EioError::kBadRequest));
      return;
    }
    if (poll_->pendingGet) {  // two long polls at once: the client is broken, as engine.io judges it
      respond(eioError(EioError::kBadRequest));
      close("overlapping polls", true);
      return;
    }
    poll_->pendingGet = std::move(respond);
    // While a WebSocket probe is on, a long poll returns at once (a noop if nothing waits), so that the client can
    // pause polling and finish the upgrade.
    if (!poll_->queue.empty() || poll_->upgrading) flushPoll(poll_->upgrading);
  }

  void onPollPost(const std::string& body, http::Responder respond) {
    if (closed_) {
      respond(eioError(EioError::kUnknownSid));
      return;
    }
    if (body.size() > svc_.options.maxPayload) {
      metrics::registry().drop(metrics::Drop::kTooLarge);
      respond(http::Response::text(413, "payload too large\n"));
      close("payload too large", true);
      return;
    }
    auto packets = decodePayload(body);
    if (!packets) {
      metrics::registry().drop(metrics::Drop::kMalformed);
      respond(eioError(EioError::kBadRequest));
      close("parse error", true);
      return;
    }
    http::Response ok = http::Response::text(200, "ok");
    ok.contentType = "text/html";
    respond(std::move(ok));
    for (auto& p : *packets) {
      if (closed_) break;
      onPacket(std::move(p));
    }
  }

  void attachProbe(std::shared_ptr<WsLink> link) {
    if (closed_ || ws_ || !poll_ || poll_->probe) {
      closeLink(link, kClosePolicy, "no upgrade possible");
      return;
    }
    poll_->probe = std::move(link);
    auto& timer = poll_->upgradeTimer;
    if (!timer) timer = std::make_unique<boost::asio::steady_timer>(svc_.pool.context(worker_));
    timer->expires_after(svc_.options.upgradeTimeout);
    timer->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || !self->poll_ || !self->poll_->probe) return;
      self->closeLink(self->poll_->probe, kClosePolicy, "upgrade timeout");
      self->poll_->probe.reset();
      self->poll_->upgrading = false;
    });
  }

  bool isProbe(const std::shared_ptr<WsLink>& link) const { return poll_ && poll_->probe && link == poll_->probe; }

  void onWsFrame(const std::shared_ptr<WsLink>& link, std::string_view frame, bool binary) {
    if (closed_) return;
    if (frame.size() > svc_.options.maxPayload) {
      metrics::registry().drop(metrics::Drop::kTooLarge);
      if (ws_ && link == ws_) {
        close("payload too large", false, kCloseTooBig);
      } else {
        closeLink(link, kCloseTooBig, "payload too large");
      }
      return;
    }
    if (!binary && ws_ && link == ws_ && onRelayFrame(frame)) return;
    auto packet = decodeFrame(frame, binary);
    if (isProbe(link)) {
      onProbeFrame(packet);
      return;
    }
    if (!ws_ || link != ws_) return;  // a stale transport
    if (!packet) {
      metrics::registry().drop(metrics::Drop::kMalformed);
      close("parse error", false, kClosePolicy);
      return;
    }
    onPacket(std::move(*packet));
  }

  void onWsClosed(const std::shared_ptr<WsLink>& link) {
    if (isProbe(link)) {
      poll_->probe.reset();
      poll_->upgrading = false;
      if (poll_->upgradeTimer) poll_->upgradeTimer->cancel();
    } else if (ws_ && link == ws_) {
      close("transport close", false);
    }
  }

  // --- Engine.IO ---------------------------------------------------------------------------------------------------

  void close(std::string_view why, bool sendClosePacket, uint16_t wsCode = kCloseNormal) {
    if (closed_) return;
    closed_ = true;
    auto self = shared_from_this();  // the registry may hold the last reference
    spdlog::debug("socket.io {}: closed ({})", sid_.view(), why);
    if (poll_) {
      if (poll_->upgradeTimer) poll_->upgradeTimer->cancel();
      if (poll_->pendingGet) {
        auto respond = std::move(poll_->pendingGet);
        poll_->pendingGet = nullptr;
        respond(pollResponse(sendClosePacket ? "1" : "6"));
      }
      poll_->queue.clear();
    }
    if (ws_) {
      if (sendClosePacket) sendOn(ws_, "1", false);
      closeLink(ws_, wsCode, std::string(why));
    }
    if (poll_ && poll_->probe) closeLink(poll_->probe, wsCode, std::string(why));
    disconnectSocket();
    releasePollingPlace();
    auto& registry = svc_.sessions[worker_];
    if (auto it = registry.find(sid_.view()); it != registry.end() && it->get() == this) registry.erase(it);
  }

  // --- room core ----------------------------------------------------------------------------------------------------

  void onRoomEvent(Membership& m, const EventPtr& event) {
    if (closed_) return;
    std::visit([this, &m](const auto& e) { onRoomEvent(m, e); }, *event);
  }

 private:
  void onRoomEvent(Membership& m, const ev::Joined& e) {
    // re set: the answer to a repeated join-room (onJoin), the others as the room has them now.
    if (e.re < 0 && m.joined) return;
    std::string peers = "[";
    for (const auto& p : e.peers) {
      if (peers.size() > 1) peers += ',';
      native::appendJsonString(peers, p.id);
    }
    peers += ']';
    if (e.re >= 0) {
      sendText(encodeAck(static_cast<uint64_t>(e.re), R"({"ok":true,"peers":)" + peers + "}"));
      return;
    }
    m.joined = true;
    if (auto ack = m.ack()) sendText(encodeAck(*ack, R"({"ok":true,"peers":)" + peers + "}"));
  }
  void onRoomEvent(Membership& m, const ev::Error& e) {
    if (e.refusesJoin && !m.joined) {
      std::string name = m.name;
      auto ack = m.ack();
      bool implicit = m.implicit;
      dropMembership(m);  // m is gone after this
      if (!implicit) {
        fail(ack, "join-room", toString(e.code), e.message);
        if (explicitRooms() == 0) joinImplicit();
      } else {
        implicitRefused_ = e.code;  // what its events are told (refuseRoomless)
        spdlog::debug("socket.io {}: not in the room '{}': {}", sid_.view(), name, e.message);
      }
      return;
    }
    if (e.re >= 0) {
      fail(static_cast<uint64_t>(e.re), "", toString(e.code), e.message);
    } else if (!e.event.empty()) {  // a directed event no room could deliver (routeDirected)
      fail(std::nullopt, e.event, toString(e.code), e.message);
    }
  }
  void onRoomEvent(Membership&, const ev::Ok& e) {
    if (e.re >= 0) sendText(encodeAck(static_cast<uint64_t>(e.re), R"({"ok":true})"));
  }
  void onRoomEvent(Membership& m, const ev::PeerJoined& e) {
    if (m.implicit) return;
    std::string arg;
    native::appendJsonString(arg, e.peer.id);
    sendText(encodeEvent("user-joined", arg));
  }
  void onRoomEvent(Membership& m, const ev::PeerLeft& e) {
    if (m.implicit) return;
    std::string arg;
    native::appendJsonString(arg, e.peer);
    sendText(encodeEvent("user-left", arg));
  }
  void onRoomEvent(Membership&, const ev::Signal& e) { sendPacked(e.data); }
  void onRoomEvent(Membership&, const ev::Message& e) { sendPacked(e.data); }
  void onRoomEvent(Membership&, const ev::Bye& e) {
    close(e.reason, true, e.reason == "shutdown" ? kCloseGoingAway : kCloseNormal);
  }
  template <typename E>
  void onRoomEvent(Membership&, const E&) {}  // PeerState, Chat, Expired: nothing on this wire

  // --- Engine.IO internals
  // ---------------------------------------------------------------------------------------------

  void schedulePing() {
    awaitingPong_ = false;
    pingDue_ = Clock::now() + svc_.options.pingInterval;
    svc_.schedule(worker_, pingDue_, sid_);
  }

  // The polling place this session holds (AddressLimits::openPollingSession), given back once: when the session
  // ends, or when it upgrades to a WebSocket (a WebSocket connection from then on, counted as one).
  void releasePollingPlace() {
    if (!holdsPollingPlace_) return;
    holdsPollingPlace_ = false;
    if (auto* limits = svc_.addressLimits()) limits->closePollingSession(address_.view());
  }

 public:
  // At one of this session's deadlines (Service::Impl::fire; a stale one finds nothing due): closes a session whose
  // client sent no CONNECT in time, sends the ping when it is due, closes a session whose pong is late. One timer
  // per worker instead of one per session: an idle session then holds no pending timer operation.
  void tick(TimePoint now) {
    if (closed_) return;
    if (socketId_.empty() && now >= connectBy_) {  // never connected a socket
      close("connect timeout", true);
      return;
    }
    if (pingDue_ == TimePoint{}) return;
    if (!awaitingPong_ && now >= pingDue_) {
      sendPacket(EioPacket{EioType::kPing, {}, false});
      awaitingPong_ = true;
      pingDue_ = now + svc_.options.pingTimeout;  // now the pong's deadline
      svc_.schedule(worker_, pingDue_, sid_);
    } else if (awaitingPong_ && now >= pingDue_) {
      close("ping timeout", false);
    }
  }

 private:
  void onProbeFrame(const std::optional<EioPacket>& p) {
    Polling& poll = *poll_;
    if (p && p->type == EioType::kPing && p->data == "probe" && !poll.upgrading) {
      poll.upgrading = true;
      sendOn(poll.probe, "3probe", false);
      if (poll.pendingGet) flushPoll(true);  // let the long poll return so that the client can finish the upgrade
      return;
    }
    if (p && p->type == EioType::kUpgrade && poll.upgrading) {
      ws_ = std::move(poll.probe);
      if (poll.pendingGet) {
        auto respond = std::move(poll.pendingGet);
        poll.pendingGet = nullptr;
        respond(pollResponse("6"));
      }
      auto queued = std::move(poll.queue);
      poll_.reset();  // the session is a WebSocket one from now on (destroying the timer cancels its wait)
      releasePollingPlace();
      for (auto& q : queued) sendPacket(std::move(q));
      return;
    }
    metrics::registry().drop(metrics::Drop::kMalformed);
    closeLink(poll.probe, kClosePolicy, "bad upgrade");
    poll.probe.reset();
    poll.upgrading = false;
  }

  void onPacket(EioPacket p) {
    switch (p.type) {
      case EioType::kPong:
        if (awaitingPong_) schedulePing();
        return;
      case EioType::kClose:
        close("client close", false);
        return;
      case EioType::kMessage:
        onMessage(std::move(p));
        return;
      case EioType::kPing:  // clients do not ping in v4; answer anyway, as engine.io does
        sendPacket(EioPacket{EioType::kPong, std::move(p.data), false});
        return;
      case EioType::kNoop:
        return;
      default:  // open or upgrade on an established transport
        metrics::registry().drop(metrics::Drop::kMalformed);
        close("unexpected packet", false, kClosePolicy);
        return;
    }
  }

  void sendPacket(EioPacket p) {
    if (closed_) return;
    if (ws_) {
      bool binary = p.binary;
      sendOn(ws_, encodeFrame(p), binary);
      return;
    }
    if (!poll_) return;
    poll_->queuedBytes += p.data.size() + 2;
    if (poll_->queuedBytes > svc_.hub.limits().maxQueuedBytes) {
      metrics::registry().drop(metrics::Drop::kSlowConsumer);
      close("slow consumer", true);
      return;
    }
    poll_->queue.push_back(std::move(p));
    if (poll_->pendingGet) flushPoll();
  }

  void flushPoll(bool noopIfEmpty = false) {
    Polling& poll = *poll_;
    std::string body;
    for (const auto& q : poll.queue) appendToPayload(body, q);
    if (body.empty()) {
      if (!noopIfEmpty) return;
      body = "6";
    }
    metrics::add(metrics::registry().messagesOut, poll.queue.size());
    metrics::add(metrics::registry().bytesOut, body.size());
    poll.queue.clear();
    poll.queuedBytes = 0;
    auto respond = std::move(poll.pendingGet);
    poll.pendingGet = nullptr;
    respond(pollResponse(std::move(body)));
  }

  static void sendNow(WsLink& link, std::string frame, bool binary) {
    if (!link.conn) return;
    if (binary) {
      link.conn->sendBinary(std::move(frame));
    } else {
      link.conn->sendText(std::move(frame));
    }
  }

  void sendOn(const std::shared_ptr<WsLink>& link, std::string frame, bool binary) {
    if (link->worker == worker_) {
      sendNow(*link, std::move(frame), binary);
      return;
    }
    svc_.pool.post(link->worker,
                   [link, frame = std::move(frame), binary]() mutable { sendNow(*link, std::move(frame), binary); });
  }

  void closeLink(const std::shared_ptr<WsLink>& link, uint16_t code, std::string reason) {
    auto run = [link, code, reason = std::move(reason)] {
      if (link->conn) link->conn->close(code, reason);
    };
    if (link->worker == worker_) {
      run();
    } else {
      svc_.pool.post(link->worker, std::move(run));
    }
  }

  void sendText(std::string sio) { sendPacket(EioPacket{EioType::kMessage, std::move(sio), false}); }

  // Frames from packFrames(): to a WebSocket as they are; to a long poll as Engine.IO packets.
  void sendPacked(std::string_view data) {
    unpackFrames(data, [this](std::string_view frame, bool binary) {
      if (closed_) return;
      if (ws_) {
        sendOn(ws_, std::string(frame), binary);
        return;
      }
      if (!binary) frame.remove_prefix(1);  // the Engine.IO type, '4'
      sendPacket(EioPacket{EioType::kMessage, std::string(frame), binary});
    });
  }

  // --- Socket.IO -----------------------------------------------------------------------------------------------------

  // The hot path: a relayed event (offer, ice-candidate...) in a text frame of the WebSocket, decoded and written
  // out for its receivers in one pass, without a copy of the frame or a DOM. False when the frame is anything else
  // (or malformed): then it goes the long way, which judges it.
  bool onRelayFrame(std::string_view frame) {
    if (frame.size() < 3 || frame[0] != '4' || frame[1] != '2' || !connected_ ||
        (assembler_ && assembler_->waiting())) {
      return false;
    }
    auto ev = decodeRelayEvent(frame.substr(1), socketId_.view(), svc_.options.relayUnknownEvents);
    if (!ev) return false;
    metrics::add(metrics::registry().messagesIn);
    metrics::add(metrics::registry().bytesIn, frame.size() - 1);
    if (!allowEvent(ev->ackId, ev->event) || refuseRoomless(ev->ackId, ev->event)) return true;
    if (ev->route == EventRoute::kDirected) {
      relayDirected(ev->event, ev->ackId, ev->target, std::move(ev->frame));
    } else {
      relayBroadcast(ev->relayedAs, ev->ackId, std::move(ev->frame));
    }
    return true;
  }

  void onMessage(EioPacket p) {
    metrics::add(metrics::registry().messagesIn);
    metrics::add(metrics::registry().bytesIn, p.data.size());
    if (p.binary) {
      SioPacket done;
      auto result = assembler_ ? assembler_->add(std::move(p.data), done) : BinaryAssembler::Result::kError;
      if (result != BinaryAssembler::Result::kNeedMore) assembler_.reset();
      switch (result) {
        case BinaryAssembler::Result::kNeedMore:
          return;
        case BinaryAssembler::Result::kComplete:
          onSocketPacket(std::move(done));
          return;
        case BinaryAssembler::Result::kError:
          metrics::registry().drop(metrics::Drop::kMalformed);
          close("bad attachment", false, kClosePolicy);
          return;
      }
      return;
    }
    if (assembler_ && assembler_->waiting()) {  // a text packet while attachments are due
      metrics::registry().drop(metrics::Drop::kMalformed);
      close("attachments missing", false, kClosePolicy);
      return;
    }
    auto packet = decodePacket(p.data);
    if (!packet) {
      metrics::registry().drop(metrics::Drop::kMalformed);
      close("parse error", false, kClosePolicy);
      return;
    }
    if (packet->attachments == 0) {  // as BinaryAssembler::start would return it, without making one
      packet->buffers.clear();
      onSocketPacket(std::move(*packet));
      return;
    }
    // Made only while a packet waits for its attachments.
    if (!assembler_) assembler_ = std::make_unique<BinaryAssembler>(svc_.options.maxPayload);
    if (auto ready = assembler_->start(std::move(*packet))) onSocketPacket(std::move(*ready));
  }

  void onSocketPacket(SioPacket p) {
    switch (p.type) {
      case SioType::kConnect:
        onConnect(std::move(p));
        return;
      case SioType::kDisconnect:
        if (p.nsp == "/") disconnectSocket();
        return;
      case SioType::kEvent:
      case SioType::kBinaryEvent:
        if (!connected_ || p.nsp != "/") {
          metrics::registry().drop(metrics::Drop::kMalformed);
          return;
        }
        if (p.type == SioType::kBinaryEvent && !placeholdersValid(*p.data, p.buffers.size())) {
          metrics::registry().drop(metrics::Drop::kMalformed);
          close("illegal attachments", false, kClosePolicy);
          return;
        }
        onEvent(std::move(p));
        return;
      default:  // the server asks for no acks; CONNECT_ERROR comes from servers only
        metrics::registry().drop(metrics::Drop::kMalformed);
        return;
    }
  }

  void onConnect(SioPacket p) {
    if (p.nsp != "/") {
      SioPacket refuse{
          SioType::kConnectError, p.nsp, {}, 0, json::value(json::object{{"message", "Invalid namespace"}}), {}};
      sendText(encodePacket(refuse));
      return;
    }
    if (connected_) return;
    // A CONNECT joins a room (the implicit one): it counts against the rate like an event, so that a client
    // cycling CONNECT and DISCONNECT is slowed down as one flooding events is.
    if (!limiter_.allow(Clock::now(), svc_.hub.limits().messagesPerSecond, svc_.hub.limits().burst)) {
      metrics::registry().drop(metrics::Drop::kRateLimited);
      SioPacket refuse{SioType::kConnectError,
                       "/",
                       {},
                       0,
                       json::value(json::object{{"message", "rate-limited: too many messages, slow down"}}),
                       {}};
      sendText(encodePacket(refuse));
      return;
    }
    if (p.data && p.data->is_object() && svc_.hub.options().authSecret) {  // a token is only kept to be checked
      if (auto* t = p.data->as_object().if_contains("token");
          t && t->is_string() && !t->as_string().empty() && t->as_string().size() <= kMaxTokenBytes) {
        if (!credentials_) credentials_ = std::make_unique<Credentials>();
        credentials_->authToken = std::string(t->as_string());
      }
    }
    connected_ = true;
    socketId_ = SocketId(randomSocketId());
    std::string data = R"(0{"sid":)";
    native::appendJsonString(data, socketId_.view());
    data += '}';
    sendText(std::move(data));
    joinImplicit();
  }

  // The socket leaves every room (others see user-left) and is no longer connected; the Engine.IO session goes on.
  void disconnectSocket() {
    if (!connected_) return;
    connected_ = false;
    implicitRefused_.reset();
    assembler_.reset();
    while (memberships_) {  // the last first
      Membership* last = memberships_.get();
      while (last->next) last = last->next.get();
      leaveRoom(*last, std::nullopt);
    }
  }

  // The socket's rooms, in join order (a list through the memberships: an idle socket is in one).
  template <typename F>
  void forEachMembership(F&& f) const {
    for (Membership* m = memberships_.get(); m; m = m->next.get()) f(*m);
  }

  std::size_t explicitRooms() const {
    std::size_t n = 0;
    forEachMembership([&n](const Membership& m) { n += m.implicit ? 0 : 1; });
    return n;
  }

  Membership* membership(std::string_view name, bool implicit) {
    for (Membership* m = memberships_.get(); m; m = m->next.get()) {
      if (m->implicit == implicit && m->name == name) return m;
    }
    return nullptr;
  }

  Membership& addMembership(std::string_view name, bool implicit, std::optional<uint64_t> ack) {
    std::unique_ptr<Membership>* tail = &memberships_;
    while (*tail) tail = &(*tail)->next;
    *tail = std::make_unique<Membership>(*this, name, implicit);
    Membership* m = tail->get();
    m->endpoint = svc_.hub.attach(worker_, m);
    m->joinAck = ack ? static_cast<int64_t>(*ack) : -1;
    const RoomPolicy& policy = implicit ? svc_.implicitPolicy : svc_.explicitPolicy;
    std::string key = m->key();
    svc_.hub.onRoom(
        key, [ep = m->endpoint, key, policy, id = socketId_.str(), address = address_](RoomHost& rooms, Outbox& out) {
          ErrorCode refused = ErrorCode::kTooManyRooms;
          Room* r = rooms.findOrCreate(key, policy, RoomCreator{address.view(), Clock::now()}, &refused);
          if (!r) {
            refuseJoin(out, ep, kNoRequest, refused,
                       refused == ErrorCode::kRateLimited ? "this address made too many rooms lately: try again later"
                                                          : "this server holds the most rooms it may");
            return;
          }
          r->join(JoinRequest{ep, kNoRequest, {}, {}, id}, Clock::now(), out);  // no name: nothing here shows one
          rooms.reapIfEmpty(key);
        });
    return *m;
  }

  void dropMembership(Membership& m) {
    svc_.hub.detach(m.endpoint);
    for (std::unique_ptr<Membership>* slot = &memberships_; *slot; slot = &(*slot)->next) {
      if (slot->get() == &m) {
        *slot = std::move(m.next);  // m is gone after this
        return;
      }
    }
  }

  // Leaves the room (the others get user-left); `ack` is answered at once.
  void leaveRoom(Membership& m, std::optional<uint64_t> ack) {
    std::string key = m.key();
    svc_.hub.onRoom(key, [ep = m.endpoint, key, id = socketId_.str()](RoomHost& rooms, Outbox& out) {
      if (Room* r = rooms.find(key)) {
        r->leave(ep, kNoRequest, id, out);  // a join still in flight ran before this: tasks keep their order
        rooms.reapIfEmpty(key);
      }
    });
    dropMembership(m);
    if (ack) sendText(encodeAck(*ack, R"({"ok":true})"));
  }

  void joinImplicit() {
    if (!connected_ || implicitMembership()) return;
    implicitRefused_.reset();  // the room core's last word, if any, was about an earlier try
    std::string_view name = implicitName();
    if (name.empty()) return;  // --auth-secret and no token for it: in no room
    addMembership(name, true, std::nullopt);
  }

  Membership* implicitMembership() const {
    for (Membership* m = memberships_.get(); m; m = m->next.get()) {
      if (m->implicit) return m;
    }
    return nullptr;
  }

  // The implicit room: the handshake's ?room=, else the default room. With --auth-secret only a room the socket's
  // token grants: ?room= if it does; with no ?room=, the room the token names (a token for one room puts its holder
  // there), or the default room for a token for any room ("*"). "" when there is none: the socket is in no room
  // until it joins one its token grants. Checked again each time the socket goes back to it (the token may have
  // expired since).
  std::string_view implicitName() {
    std::string_view hint = credentials_ ? std::string_view(credentials_->roomHint) : std::string_view{};
    const auto& secret = svc_.hub.options().authSecret;
    if (!secret) return hint.empty() ? std::string_view(svc_.options.defaultRoom) : hint;
    if (!credentials_) return {};
    std::string_view token = credentials_->token();
    std::string candidate(hint);
    if (candidate.empty()) {
      candidate = claimedRoom(token);
      if (candidate == "*" || !native::validRoomName(candidate)) candidate = svc_.options.defaultRoom;
    }
    auto v = auth::verifyRoomToken(token, *secret, candidate, wallMillis() / 1000);
    credentials_->implicitRoom = v.claims ? std::move(candidate) : std::string();
    return credentials_->implicitRoom;
  }

  // A socket in no room may only join one: anything else is refused, with what kept it out of its implicit room (no
  // valid token for it, or the room core's refusal). True if `event` was refused.
  bool refuseRoomless(std::optional<uint64_t> ack, std::string_view event) {
    if (memberships_ || event == "join-room") return false;
    if (implicitRefused_) {
      fail(ack, event, toString(*implicitRefused_), "this socket is in no room: join one");
      return true;
    }
    if (svc_.hub.options().authSecret) {
      fail(ack, event, "unauthorized", "this socket has no room token for its room: join-room a room the token grants");
      return true;
    }
    return false;
  }

  // An error for an event: in its ack when it asked for one, else as a `kaiwa:error` event (spaced out, so a flood
  // of bad events does not become a flood of errors).
  void fail(std::optional<uint64_t> ack, std::string_view event, std::string_view code, std::string_view message) {
    metrics::add(metrics::registry().errorsSent);
    if (ack) {
      sendText(encodeAck(*ack, errorJson(code, message)));
      return;
    }
    auto now = Clock::now();
    if (now - lastErrorEvent_ < kErrorEventSpacing) return;
    lastErrorEvent_ = now;
    std::string arg = errorJson(code, message);
    if (!event.empty()) {
      arg.pop_back();
      arg += R"(,"event":)";
      native::appendJsonString(arg, event);
      arg += '}';
    }
    sendText(encodeEvent("kaiwa:error", arg));
  }

  // The rate limit, for every event.
  bool allowEvent(std::optional<uint64_t> ack, std::string_view event) {
    if (limiter_.allow(Clock::now(), svc_.hub.limits().messagesPerSecond, svc_.hub.limits().burst)) return true;
    metrics::registry().drop(metrics::Drop::kRateLimited);
    fail(ack, event, "rate-limited", "too many messages: slow down");
    return false;
  }

  void onEvent(SioPacket p) {
    auto& m = metrics::registry();
    const json::array& args = p.data->as_array();
    std::string event(args[0].as_string());
    if (!allowEvent(p.ackId, event)) return;
    std::size_t bytes = 0;
    for (const auto& b : p.buffers) bytes += b.size();
    if (bytes > svc_.hub.limits().maxMessageBytes) {
      m.drop(metrics::Drop::kTooLarge);
      fail(p.ackId, event, "too-large", "the event is larger than the server accepts");
      return;
    }
    if (event == "join-room") return onJoin(p);
    if (refuseRoomless(p.ackId, event)) return;
    if (event == "leave-room") return onLeave(p);
    if (event == "toggle-audio" || event == "toggle-video") return onToggle(std::move(p), event);
    EventRule rule = ruleOf(event, svc_.options.relayUnknownEvents);
    if (rule.route == EventRoute::kDirected) return onDirected(std::move(p), event);
    if (rule.route == EventRoute::kBroadcast) return onBroadcast(std::move(p), rule.relayedAs);
    m.drop(metrics::Drop::kUnknownPeer);
    fail(p.ackId, event, "unknown-event", "kaiwa does not relay the event '" + event + "' (see docs/socketio.md)");
  }

  static std::optional<std::string> roomArg(const json::array& args) {
    if (args.size() < 2) return std::nullopt;
    if (args[1].is_string()) return std::string(args[1].as_string());
    if (args[1].is_int64()) return std::to_string(args[1].as_int64());
    if (args[1].is_uint64()) return std::to_string(args[1].as_uint64());
    return std::nullopt;
  }

  void onJoin(const SioPacket& p) {
    auto room = roomArg(p.data->as_array());
    if (!room || !native::validRoomName(*room)) {
      metrics::registry().drop(metrics::Drop::kMalformed);
      fail(p.ackId, "join-room", "bad-message", "join-room takes a room name (1-64 printable characters)");
      return;
    }
    if (Membership* m = membership(*room, false)) {  // socket.io's join is idempotent
      if (p.ackId) {                                 // answered with the others in the room (ev::Joined with re)
        std::string key = m->key();
        svc_.hub.onRoom(key, [ep = m->endpoint, key, id = socketId_.str(), re = static_cast<int64_t>(*p.ackId)](
                                 RoomHost& rooms, Outbox& out) {
          std::vector<PeerInfo> others;
          if (Room* r = rooms.find(key); r && r->contains(id)) {
            others = r->members();
            std::erase_if(others, [&id](const PeerInfo& p) { return p.id == id; });
          }
          reply(out, ep, ev::Joined{re, key, id, {}, std::move(others), false});
        });
      }
      return;
    }
    if (explicitRooms() >= kMaxRoomsPerSocket) {
      fail(p.ackId, "join-room", "too-many-rooms", "a socket may be in at most 16 rooms");
      return;
    }
    if (const auto& secret = svc_.hub.options().authSecret) {
      std::string_view token = credentials_ ? credentials_->token() : std::string_view{};
      auto v = auth::verifyRoomToken(token, *secret, *room, wallMillis() / 1000);
      if (!v.claims) {
        fail(p.ackId, "join-room", "unauthorized", "room token refused: " + std::string(auth::toString(v.error)));
        return;
      }
    }
    if (Membership* imp = implicitMembership()) leaveRoom(*imp, std::nullopt);
    if (moveToOwnerOf(*room, p.ackId)) return;  // joins there
    addMembership(*room, false, p.ackId);
  }

  // A socket joins its first room after connecting (the guide's clients name no room in the handshake), so its
  // connection usually lives on another worker than the room, and every event would hop between threads twice. A
  // direct WebSocket session in no other room moves, with its connection, to the room's worker and joins there
  // (docs/architecture.md, "Connection placement"). Nothing else holds it to this worker: its implicit room was
  // just left, and the registry entry moves along; its sid keeps naming this worker, which only a polling request
  // would read, and a WebSocket session takes none.
  bool moveToOwnerOf(const std::string& room, std::optional<uint64_t> ack) {
    uint32_t owner = svc_.hub.ownerOf(roomKey(room, false));
    if (owner == worker_ || !direct_ || !ws_ || !ws_->conn || ws_->worker != worker_ || memberships_ || closed_) {
      return false;
    }
    auto self = shared_from_this();
    bool moving = ws_->conn->moveTo(owner, [self, room, ack](uint32_t worker) { self->arrive(worker, room, ack); });
    if (!moving) return false;
    auto& registry = svc_.sessions[worker_];
    if (auto it = registry.find(sid_.view()); it != registry.end() && it->get() == this) registry.erase(it);
    return true;
  }

  // On the worker the connection is on now (the room's, or still this one if it closed meanwhile).
  void arrive(uint32_t worker, const std::string& room, std::optional<uint64_t> ack) {
    worker_ = worker;
    ws_->worker = worker;
    svc_.sessions[worker].insert(shared_from_this());
    if (pingDue_ != TimePoint{}) svc_.schedule(worker, pingDue_, sid_);  // this worker's timer from now on
    if (closed_ || !connected_) return;
    addMembership(room, false, ack);
  }

  void onLeave(const SioPacket& p) {
    auto room = roomArg(p.data->as_array());
    Membership* m = room ? membership(*room, false) : nullptr;
    if (!m) {  // as in socket.io, leaving a room one is not in does nothing
      if (p.ackId) sendText(encodeAck(*p.ackId, R"({"ok":true})"));
      return;
    }
    leaveRoom(*m, p.ackId);
    if (explicitRooms() == 0) joinImplicit();
  }

  // offer / answer / ice-candidate {to, …}: to the one socket `to`, in a room both are in, as {from, …}.
  void onDirected(SioPacket p, const std::string& event) {
    json::array& args = p.data->as_array();
    json::object* body = args.size() >= 2 ? args[1].if_object() : nullptr;
    const json::value* to = body ? body->if_contains("to") : nullptr;
    if (!to || !to->is_string()) {
      metrics::registry().drop(metrics::Drop::kMalformed);
      fail(p.ackId, event, "bad-message", event + " takes {to, ...}");
      return;
    }
    std::string target(to->as_string());
    json::object out;
    out.reserve(body->size());
    out.emplace("from", socketId_.view());
    for (auto& kv : *body) {
      if (kv.key() != "to" && kv.key() != "from") out.emplace(kv.key(), std::move(kv.value()));
    }
    args[1] = std::move(out);
    std::optional<uint64_t> ack = p.ackId;
    relayDirected(event, ack, target, encodeFor(std::move(p)));
  }

  // To the socket `target`, through the first of the sender's rooms that has it (routeDirected). Every socket id
  // is 20 characters (randomSocketId), and only Socket.IO sockets are in these rooms: another `to` names nobody.
  void relayDirected(std::string_view event, std::optional<uint64_t> ack, std::string_view target, std::string frames) {
    if (!memberships_ || target == socketId_.view() || target.size() != socketId_.view().size()) {
      metrics::registry().drop(metrics::Drop::kUnknownPeer);
      fail(ack, event, "unknown-peer", "no socket '" + std::string(target) + "' in a room with you");
      return;
    }
    Directed d;
    d.re = ack ? static_cast<int64_t>(*ack) : kNoRequest;
    d.frames = std::move(frames);
    forEachMembership([&d](const Membership& m) { d.routes.push_back({m.key(), m.endpoint}); });
    d.id = socketId_;
    d.target = SocketId(target);
    d.event = event;
    routeDirected(svc_.hub, std::move(d));
  }

  // toggle-audio {roomId, isMuted} / toggle-video {roomId, isVideoOff}: the room's media state, and the same event
  // with `from` to the others.
  void onToggle(SioPacket p, const std::string& event) {
    json::array& args = p.data->as_array();
    json::object* body = args.size() >= 2 ? args[1].if_object() : nullptr;
    const json::value* roomId = body ? body->if_contains("roomId") : nullptr;
    const char* flag = event == "toggle-audio" ? "isMuted" : "isVideoOff";
    const json::value* value = body ? body->if_contains(flag) : nullptr;
    if (!roomId || !roomId->is_string() || !value || !value->is_bool()) {
      metrics::registry().drop(metrics::Drop::kMalformed);
      fail(p.ackId, event, "bad-message", event + " takes {roomId, " + flag + "}");
      return;
    }
    Membership* m = membership(roomId->as_string(), false);
    if (!m) {
      fail(p.ackId, event, "not-joined", "join the room first");
      return;
    }
    MediaStatePatch patch;
    (event == "toggle-audio" ? patch.audioMuted : patch.videoOff) = value->as_bool();
    (*body)["from"] = socketId_.view();
    int64_t re = p.ackId ? static_cast<int64_t>(*p.ackId) : kNoRequest;
    std::string frames = encodeFor(std::move(p));
    std::string key = m->key();
    svc_.hub.onRoom(key, [ep = m->endpoint, key, id = socketId_.str(), patch, frames = std::move(frames), re](
                             RoomHost& rooms, Outbox& out) mutable {
      if (Room* r = rooms.find(key)) {
        r->setState(ep, kNoRequest, id, patch, out);
        r->message(ep, re, id, "", std::move(frames), out);
      }
    });
  }

  // The 1:1 examples' unaddressed events (and unknown ones when configured): to the other members of the sender's
  // rooms, or of its implicit room when it joined none; `from` is added to an object argument.
  void onBroadcast(SioPacket p, std::string_view name) {
    json::array& args = p.data->as_array();
    args[0] = json::string(name);
    if (args.size() >= 2) {
      json::object* body = args[1].if_object();
      if (body && !body->contains("_placeholder")) (*body)["from"] = socketId_.view();  // not into a Buffer's stand-in
    }
    std::optional<uint64_t> ack = p.ackId;
    relayBroadcast(name, ack, encodeFor(std::move(p)));
  }

  // To the other members of the sender's rooms, or of its implicit room when it joined none.
  void relayBroadcast(std::string_view name, std::optional<uint64_t> ack, std::string frames) {
    boost::container::small_vector<Membership*, 2> targets;
    for (Membership* m = memberships_.get(); m; m = m->next.get()) {
      if (!m->implicit) targets.push_back(m);
    }
    if (targets.empty()) {
      if (Membership* imp = implicitMembership()) targets.push_back(imp);
    }
    if (targets.empty()) {
      fail(ack, std::string(name), "not-joined", "this socket is in no room");
      return;
    }
    for (std::size_t i = 0; i < targets.size(); ++i) {
      int64_t re = (i == 0 && ack) ? static_cast<int64_t>(*ack) : kNoRequest;
      std::string key = targets[i]->key();
      std::string data = i + 1 < targets.size() ? frames : std::move(frames);
      svc_.hub.onRoom(key, [ep = targets[i]->endpoint, key, id = socketId_, data = std::move(data), re](
                               RoomHost& rooms, Outbox& out) mutable {
        if (Room* r = rooms.find(key)) r->message(ep, re, id.view(), "", std::move(data), out);
      });
    }
  }

  // The receivers' frames for an event, without the sender's ack id.
  static std::string encodeFor(SioPacket p) {
    p.ackId.reset();
    p.type = p.buffers.empty() ? SioType::kEvent : SioType::kBinaryEvent;
    std::string text = encodePacket(p);
    return packFrames(std::move(text), p.buffers);
  }

  // An idle WebSocket session holds only what is below; polling, attachments and credentials live apart, made when
  // used.
  Service::Impl& svc_;
  Sid sid_;
  SocketId socketId_;    // set by the first CONNECT
  Address address_;      // the client's, for the per-address limits
  TimePoint connectBy_;  // a session that connected no socket by then is closed
  TimePoint pingDue_{};  // when to ping, or (awaitingPong_) when the pong is late
  TimePoint lastErrorEvent_{};
  TokenBucket limiter_;  // Limits::messagesPerSecond, Limits::burst
  std::shared_ptr<WsLink> ws_;
  std::unique_ptr<Polling> poll_;               // sessions that started with long polling, until they upgrade
  std::unique_ptr<BinaryAssembler> assembler_;  // while a packet waits for its attachments
  std::unique_ptr<Credentials> credentials_;    // when the handshake or the CONNECT carried any
  std::unique_ptr<Membership> memberships_;     // the first room; the others follow through Membership::next
  uint32_t worker_;
  bool closed_ = false, awaitingPong_ = false, connected_ = false;
  bool holdsPollingPlace_ = false;            // releasePollingPlace
  std::optional<ErrorCode> implicitRefused_;  // why the room core refused the implicit room, if it did
  bool direct_ = false;  // opened as a WebSocket (never polled): its transport and it share a worker, and may move
};

std::size_t SidHash::operator()(const std::shared_ptr<EngineSession>& s) const { return (*this)(s->sid()); }
std::string_view SidEq::sidOf(const std::shared_ptr<EngineSession>& s) { return s->sid(); }

void Membership::deliver(const EventPtr& event) { session.onRoomEvent(*this, event); }

void Service::Impl::schedule(uint32_t worker, TimePoint when, const Sid& sid) {
  auto& heap = deadlines[worker];
  heap.push_back(Deadline{when, sid});
  std::push_heap(heap.begin(), heap.end(), std::greater<>());
  if (when < armedFor[worker]) arm(worker, when);
}

void Service::Impl::arm(uint32_t worker, TimePoint when) {
  armedFor[worker] = when;
  tickers[worker]->expires_at(when);  // cancels the wait set for a later time
  tickers[worker]->async_wait([this, worker](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: armed again for an earlier deadline
    armedFor[worker] = TimePoint::max();
    fire(worker);
  });
}

void Service::Impl::fire(uint32_t worker) {
  auto& heap = deadlines[worker];
  TimePoint now = Clock::now();
  while (!heap.empty() && heap.front().when <= now) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    Sid sid = heap.back().sid;
    heap.pop_back();
    if (auto s = find(worker, sid.view())) s->tick(now);  // may schedule again (a pong's deadline)
  }
  if (!heap.empty() && heap.front().when < armedFor[worker]) arm(worker, heap.front().when);
  if (heap.empty() && heap.capacity() > 1024) heap.shrink_to_fit();
}

std::optional<http::Response> Service::Impl::admitPolling(std::string_view ip) {
  common::AddressLimits* limits = addressLimits();
  if (!limits) return std::nullopt;
  if (!limits->allowHandshake(ip, Clock::now())) {
    return handshakeRefused(429, "Too many handshakes from this address: try again later");
  }
  if (!limits->openPollingSession(ip)) {
    std::size_t total = limits->options().pollingSessionsTotal;
    if (total && limits->pollingSessionsTotal() >= total) {
      return handshakeRefused(503, "This server holds the most polling sessions it may: try again later");
    }
    return handshakeRefused(429, "Too many polling sessions from this address");
  }
  return std::nullopt;
}

std::shared_ptr<EngineSession> Service::Impl::create(uint32_t worker, const http::Request& req,
                                                     std::string_view address) {
  std::string sid = std::to_string(worker) + "." + randomSocketId();
  auto room = req.queryParam("room");
  if (room && !native::validRoomName(*room)) room.reset();
  std::optional<std::string> token;  // kept only where it is checked, and only of a size a token has
  if (hub.options().authSecret) token = req.queryParam("token");
  if (token && token->size() > kMaxTokenBytes) token.reset();
  auto s = std::make_shared<EngineSession>(*this, worker, sid, address, room.value_or(""), token.value_or(""));
  sessions[worker].insert(s);
  return s;
}

namespace {

// The WebSocket side of a session, on the worker that accepted the connection; the session may live elsewhere.
class WsTransport final : public http::WsHandler {
 public:
  WsTransport(Service::Impl& svc, http::WsConnection& conn, http::Request req, std::optional<uint32_t> owner,
              std::string sid)
      : svc_(svc), conn_(conn), req_(std::make_unique<http::Request>(std::move(req))),
        owner_(owner.value_or(conn.worker())), sid_(sid), upgrade_(owner.has_value()) {
    link_ = std::make_shared<WsLink>();
    link_->worker = conn.worker();
  }

  void onOpen() override {
    link_->conn = &conn_;
    auto req = std::move(req_);
    if (!upgrade_) {
      std::string remote = conn_.remoteAddress();
      std::string_view ip = ipOf(remote);
      // The handshake rate was applied to this WebSocket's upgrade by the HTTP server (one rule for every upgrade,
      // docs/configuration.md); a polling handshake is applied it in admitPolling.
      auto s = svc_.create(owner_, *req, ip);
      sid_ = Sid(s->sid());
      session_ = s;
      s->startWebSocket(link_);
      return;
    }
    onOwner([link = link_, worker = link_->worker, &svc = svc_](EngineSession* s) {
      if (s) {
        s->attachProbe(link);
      } else {
        svc.pool.post(worker, [link] {
          if (link->conn) link->conn->close(kClosePolicy, "Session ID unknown");
        });
      }
    });
  }

  void onMessage(std::string_view payload, bool binary) override {
    if (owner() == link_->worker) {  // the common case: no copy of the frame, no lookup
      auto s = session_.lock();
      if (!s) session_ = s = svc_.find(owner(), sid_.view());
      if (s) s->onWsFrame(link_, payload, binary);
      return;
    }
    onOwner([link = link_, data = std::string(payload), binary](EngineSession* s) {
      if (s) s->onWsFrame(link, data, binary);
    });
  }

  void onClose() override {
    link_->conn = nullptr;
    onOwner([link = link_](EngineSession* s) {
      if (s) s->onWsClosed(link);
    });
  }

 private:
  // The session's worker: an upgrade's session stays where its handshake was; a direct WebSocket's session is where
  // its connection is (they move together: EngineSession::moveToOwnerOf).
  uint32_t owner() const { return upgrade_ ? owner_ : link_->worker; }

  template <typename F>
  void onOwner(F&& f) {
    if (owner() == link_->worker) {
      auto s = svc_.find(owner(), sid_.view());
      f(s.get());
      return;
    }
    svc_.pool.post(owner_, [&svc = svc_, owner = owner_, sid = sid_, f = std::forward<F>(f)]() mutable {
      auto s = svc.find(owner, sid.view());
      f(s.get());
    });
  }

  Service::Impl& svc_;
  http::WsConnection& conn_;
  std::unique_ptr<http::Request> req_;  // until onOpen: an idle socket keeps no copy of its request
  uint32_t owner_;
  Sid sid_;
  bool upgrade_;
  std::shared_ptr<WsLink> link_;
  std::weak_ptr<EngineSession> session_;  // once found, while on the session's worker
};

// Engine.IO's handshake checks, common to both transports: nullopt when fine.
std::optional<EioError> checkHandshake(const http::Request& req, std::string_view transport) {
  auto eio = req.queryParam("EIO");
  if (!eio || *eio != "4") return EioError::kUnsupportedProtocolVersion;
  auto t = req.queryParam("transport");
  if (!t || (*t != "polling" && *t != "websocket")) return EioError::kUnknownTransport;
  if (*t != transport) return EioError::kBadRequest;
  return std::nullopt;
}

}  // namespace

Service::Service(Hub& hub, net::WorkerPool& pool, Options options)
    : impl_(std::make_unique<Impl>(hub, pool, std::move(options))) {}

Service::~Service() = default;

const Options& Service::options() const { return impl_->options; }

bool Service::http(const http::Request& req, http::Responder& respond) {
  if (!impl_->options.enabled || req.path != impl_->options.path) return false;
  auto fail = [&](EioError e) {
    metrics::registry().drop(metrics::Drop::kHttpBad);
    respond(eioError(e));
    return true;
  };
  if (auto t = req.queryParam("transport"); t && *t == "websocket") return fail(EioError::kBadRequest);  // no upgrade
  if (auto e = checkHandshake(req, "polling")) return fail(*e);
  auto sid = req.queryParam("sid");
  if (!sid) {
    if (req.method != "GET") return fail(EioError::kBadHandshakeMethod);
    if (auto refused = impl_->admitPolling(req.remoteAddress)) {
      respond(std::move(*refused));  // counted by AddressLimits (kaiwa_address_refused_total)
      return true;
    }
    auto s = impl_->create(req.worker, req, req.remoteAddress);
    s->startPolling(impl_->addressLimits() != nullptr);
    respond(pollResponse(s->openPacket(true)));
    return true;
  }
  auto owner = ownerOfSid(*sid, impl_->pool.size());
  if (!owner) return fail(EioError::kUnknownSid);
  if (req.method != "GET" && req.method != "POST") return fail(EioError::kBadRequest);
  auto run = [impl = impl_.get(), owner = *owner, sid = *sid, get = req.method == "GET", body = req.body,
              respond = std::move(respond)]() mutable {
    auto s = impl->find(owner, sid);
    if (!s) {
      metrics::registry().drop(metrics::Drop::kHttpBad);
      respond(eioError(EioError::kUnknownSid));
    } else if (get) {
      s->onPollGet(std::move(respond));
    } else {
      s->onPollPost(body, std::move(respond));
    }
  };
  if (*owner == req.worker) {
    run();
  } else {
    impl_->pool.post(*owner, std::move(run));
  }
  return true;
}

std::unique_ptr<http::WsHandler> Service::websocket(http::WsConnection& conn, const http::Request& req) {
  if (!impl_->options.enabled || req.path != impl_->options.path) return nullptr;
  if (checkHandshake(req, "websocket")) {
    metrics::registry().drop(metrics::Drop::kHttpBad);
    return nullptr;
  }
  auto sid = req.queryParam("sid");
  std::optional<uint32_t> owner;
  if (sid) {
    owner = ownerOfSid(*sid, impl_->pool.size());
    if (!owner) return nullptr;
  }
  return std::make_unique<WsTransport>(*impl_, conn, req, owner, sid.value_or(""));
}

}  // namespace kaiwa::signal::socketio
