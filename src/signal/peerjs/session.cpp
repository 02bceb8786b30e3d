#include "signal/peerjs/session.hpp"

#include <spdlog/spdlog.h>

#include "auth/jwt.hpp"
#include "common/json_text.hpp"
#include "common/metrics.hpp"
#include "signal/peerjs/codec.hpp"
#include "ws/close_code.hpp"

namespace kaiwa::signal::peerjs {
namespace {

using ws::kCloseGoingAway;
using ws::kCloseNormal;
constexpr std::size_t kMaxTokenBytes = 4096;     // room tokens (JWT) are longer than PeerJS's own
constexpr std::size_t kMaxPeersQueries = 1000;   // GET /{key}/peers asked of another node at once, per node
constexpr std::size_t kMaxPendingMessages = 64;  // a client's messages kept while its key's room is located

void addCors(http::Response& r, const http::Request& req) {
  if (!req.origin.empty()) r.headers.emplace_back("Access-Control-Allow-Origin", req.origin);
  r.headers.emplace_back("Vary", "Origin");
}

}  // namespace

void Directory::add(const std::string& id) {
  std::lock_guard lock(mutex_);
  ++ids_[id];
}

void Directory::remove(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = ids_.find(id);
  if (it != ids_.end() && --it->second <= 0) ids_.erase(it);
}

std::vector<std::string> Directory::list() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  out.reserve(ids_.size());
  for (const auto& [id, n] : ids_) out.push_back(id);
  return out;
}

// A GET /{key}/peers on a node of a cluster: the key's room is located, and if it lives on another node, the
// question goes there over a link; the answer comes back as the link's one frame, then the link ends
// (docs/cluster.md, "PeerJS across nodes"). Owned by Service::queries_; called on the request's worker.
class Service::PeersQuery final : public RemoteLink {
 public:
  PeersQuery(Service& service, http::Request req, http::Responder respond)
      : service_(service), req_(std::move(req)), respond_(std::move(respond)) {}

  uint64_t attach() { return link_ = service_.relay_->attach(req_.worker, this); }
  void place() { service_.relay_->place(req_.worker, link_, Door::kPeerjs, service_.room_, req_.remoteAddress); }
  void onPlaced(Placement where) override {
    if (where == Placement::kElsewhere) {
      service_.relay_->send(req_.worker, link_, std::string(kLinkPeers));
      return;
    }
    service_.relay_->detach(req_.worker, link_);
    if (where == Placement::kHere) {
      finish(service_.peersResponse(req_, service_.peersJson()));
    } else {
      finish(unavailable());
    }
  }
  void onRelayText(std::string_view frame) override { answer_ = std::string(frame); }
  // The owner's session closes the link after its answer; a link that ends without one (the owner died) is a 503.
  void onRelayClose(uint16_t, std::string_view) override {
    if (answer_) {
      finish(service_.peersResponse(req_, std::move(*answer_)));
    } else {
      finish(unavailable());
    }
  }

 private:
  http::Response unavailable() const {
    auto r = http::Response::text(503, "the node that holds this key's peers cannot be reached now: try again\n");
    addCors(r, req_);
    return r;
  }
  // Answers, then ends this query: it is destroyed later, by the next question's call.
  void finish(http::Response r) {
    respond_(std::move(r));
    service_.endQuery(link_);
  }

  Service& service_;
  http::Request req_;
  http::Responder respond_;
  uint64_t link_ = 0;
  std::optional<std::string> answer_;
};

Service::Service(Hub& hub, Options options) : hub_(hub), options_(std::move(options)), room_("peerjs:" + options_.key) {
  if (options_.path.empty() || options_.path.front() != '/') options_.path.insert(0, 1, '/');
  if (options_.path.back() != '/') options_.path.push_back('/');
  policy_.capacity = options_.concurrentLimit;
  policy_.announce = false;
  policy_.keepDetached = false;
  policy_.holdForAbsent = options_.expireTimeout;
  policy_.aliveTimeout = options_.aliveTimeout;
}

Service::~Service() = default;

std::optional<std::string_view> Service::route(const http::Request& req) const {
  const std::string& base = options_.path;
  if (!req.path.starts_with(base)) return std::nullopt;
  std::string_view rest = std::string_view(req.path).substr(base.size());
  if (rest.empty()) {
    if (base == "/") return std::nullopt;  // '/' is kaiwa's web app (docs/peerjs.md)
    return std::string_view{};
  }
  auto slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
  // PeerServer does not check the key here; kaiwa neither, except that /room/... stays the web app's.
  std::string_view key = rest.substr(0, slash);
  if (base == "/" && key == "room" && options_.key != "room") return std::nullopt;
  std::string_view what = rest.substr(slash + 1);
  if (what != "id" && what != "peers") return std::nullopt;
  return what;
}

std::optional<http::Response> Service::http(const http::Request& req) {
  auto what = route(req);
  if (!what) return std::nullopt;
  bool get = req.method == "GET" || req.method == "HEAD";
  auto finish = [&](http::Response r) {
    addCors(r, req);
    return std::optional<http::Response>(std::move(r));
  };
  if (what->empty()) {
    if (!get) return std::nullopt;
    return finish(http::Response::json(
        200,
        R"({"name":"PeerJS Server","description":"A server side element to broker connections between PeerJS clients.","website":"https://peerjs.com/"})"));
  }
  if (req.method == "OPTIONS") {  // CORS preflight, as the `cors` middleware answers it
    http::Response r = http::Response::text(204, "");
    r.headers.emplace_back("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
    return finish(std::move(r));
  }
  if (!get) return finish(http::Response::text(404, "Not Found"));
  if (*what == "id") {
    http::Response r = http::Response::text(200, randomId());
    r.contentType = "text/html; charset=utf-8";
    r.headers.emplace_back("Cache-Control", "no-store");
    return finish(std::move(r));
  }
  if (!options_.discovery) return finish(http::Response::text(401, "Unauthorized"));
  return peersResponse(req, peersJson());
}

std::string Service::peersJson() const {
  std::string body = "[";
  for (const auto& id : directory_.list()) {
    if (body.size() > 1) body += ',';
    common::appendJsonString(body, id);
  }
  body += ']';
  return body;
}

http::Response Service::peersResponse(const http::Request& req, std::string body) const {
  http::Response r = http::Response::json(200, std::move(body));
  r.headers.emplace_back("Cache-Control", "no-store");
  addCors(r, req);
  return r;
}

bool Service::deferred(const http::Request& req, http::Responder& respond) {
  if (relay_ == nullptr || !options_.discovery || (req.method != "GET" && req.method != "HEAD")) return false;
  auto what = route(req);
  if (!what || *what != "peers") return false;
  std::vector<std::unique_ptr<PeersQuery>> finished;  // answered ones, destroyed here, out of their own calls
  {
    std::lock_guard lock(queriesMutex_);
    finished.swap(finished_);
    if (queries_.size() >= kMaxPeersQueries) {
      http::Response r = http::Response::text(503, "too many questions to other nodes at once: try again\n");
      addCors(r, req);
      respond(std::move(r));
      return true;
    }
  }
  auto query = std::make_unique<PeersQuery>(*this, req, std::move(respond));
  PeersQuery& q = *query;
  uint64_t link = q.attach();
  {
    std::lock_guard lock(queriesMutex_);
    queries_.emplace(link, std::move(query));
  }
  q.place();
  return true;
}

void Service::endQuery(uint64_t link) {
  std::lock_guard lock(queriesMutex_);
  auto it = queries_.find(link);
  if (it == queries_.end()) return;
  finished_.push_back(std::move(it->second));
  queries_.erase(it);
}

bool Service::isWebSocketPath(std::string_view path) const {
  return path.size() == options_.path.size() + 6 && path.starts_with(options_.path) && path.ends_with("peerjs");
}

std::optional<uint32_t> Service::websocketWorker(const http::Request& req) const {
  if (!isWebSocketPath(req.path)) return std::nullopt;
  return hub_.ownerOf(room_);
}

std::unique_ptr<http::WsHandler> Service::websocket(http::WsConnection& conn, const http::Request& req) {
  if (!isWebSocketPath(req.path)) return nullptr;
  return std::make_unique<Session>(*this, conn, req.queryParam("key"), req.queryParam("id"), req.queryParam("token"),
                                   req.query, relay_);
}

std::unique_ptr<http::WsHandler> Service::linkedSession(http::WsConnection& conn) {
  return std::make_unique<Session>(*this, conn);
}

Session::Session(Service& service, http::WsConnection& conn, std::optional<std::string> key,
                 std::optional<std::string> id, std::optional<std::string> token, std::string query, Relay* relay)
    : service_(service), conn_(conn),
      handshake_(std::make_unique<Handshake>(Handshake{std::move(key), std::move(token)})), id_(id.value_or("")),
      limiter_(service.hub().limits().burst, service.hub().now()), relay_(relay), query_(std::move(query)) {}

Session::Session(Service& service, http::WsConnection& conn)
    : service_(service), conn_(conn), limiter_(service.hub().limits().burst, service.hub().now()), awaitHello_(true) {}

Session::~Session() = default;

void Session::refuse(std::string frame) {
  metrics::add(metrics::registry().errorsSent);
  conn_.sendText(std::move(frame));
  conn_.close(kCloseNormal, "");
}

void Session::onOpen() {
  open_ = true;
  Hub& hub = service_.hub();
  session_ = hub.attach(conn_.worker(), this).session;
  if (awaitHello_) return;  // a linked client: its handshake is the first message from its node
  auto handshake = std::move(handshake_);
  if (!admit(handshake->key, handshake->token)) return;
  if (relay_ == nullptr) {
    query_.clear();
    join(std::move(*handshake->token));
    return;
  }
  // In a cluster the key's room lives on one node: ask which (docs/cluster.md, "PeerJS"); onPlaced goes on.
  placing_ = true;
  token_ = std::move(*handshake->token);
  link_ = relay_->attach(conn_.worker(), this);
  relay_->place(conn_.worker(), link_, Door::kPeerjs, service_.room(), conn_.remoteAddress());
}

bool Session::admit(const std::optional<std::string>& key, const std::optional<std::string>& token) {
  // PeerServer's order: missing parameters, wrong key, then (in the room) a taken id, then the limit.
  if (!key || !token || key->empty() || id_.empty() || token->empty()) {
    refuse(encodeError(kNoParams));
    return false;
  }
  if (*key != service_.options().key) {
    refuse(encodeError(kInvalidKey));
    return false;
  }
  if (!validId(id_) || token->size() > kMaxTokenBytes) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    refuse(encodeError("Invalid id or token"));
    return false;
  }
  if (const auto& secret = service_.hub().options().authSecret) {
    auto v = auth::verifyRoomToken(*token, *secret, service_.room(), wallMillis() / 1000);
    if (!v.claims) {
      refuse(encodeError("Invalid token: " + std::string(auth::toString(v.error))));
      return false;
    }
  }
  return true;
}

void Session::join(std::string token) {
  Hub& hub = service_.hub();
  phase_ = Phase::kJoining;
  hub.onRoom(service_.room(), [hub = &hub, ep = endpoint(), room = service_.room(), policy = service_.policy(),
                               id = id_, token = std::move(token)](RoomHost& rooms, Outbox& out) mutable {
    Room* r = rooms.findOrCreate(room, policy);
    if (!r) {
      refuseJoin(out, ep, kNoRequest, ErrorCode::kTooManyRooms, "this server holds the most rooms it may");
      return;
    }
    if (r->contains(id)) {
      r->resume(ep, kNoRequest, id, token, hub->now(), out);  // same token: this socket replaces the old one
    } else {
      // No name: the room is quiet, nobody is ever shown one (and the id is not held twice).
      r->join(JoinRequest{ep, kNoRequest, {}, {}, id, std::move(token)}, hub->now(), out);
    }
    rooms.reapIfEmpty(room);
  });
}

void Session::linkHello(std::string_view payload) {
  auto hello = decodeLinkHello(payload);
  if (!hello) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    conn_.close(kCloseNormal, "");
    return;
  }
  if (hello->peers) {  // GET /{key}/peers asked at another node: this node holds the key's room
    conn_.sendText(service_.options().discovery ? service_.peersJson() : "[]");
    conn_.close(kCloseNormal, "");
    return;
  }
  id_ = hello->id.value_or("");
  if (admit(hello->key, hello->token)) join(std::move(*hello->token));
}

void Session::onPlaced(Placement where) {
  if (!open_ || link_ == 0) return;
  placing_ = false;
  if (where == Placement::kElsewhere) {
    relayed_ = true;
    relay_->send(conn_.worker(), link_, std::string(kLinkOpen) + query_);
    for (auto& m : pending_) relay_->send(conn_.worker(), link_, std::move(m));
    pending_ = {};
    query_ = {};
    token_ = {};
    return;
  }
  relay_->detach(conn_.worker(), link_);
  link_ = 0;
  query_ = {};
  if (where == Placement::kUnavailable || where == Placement::kFull) {  // (never made here: a second owner)
    refuse(encodeError("The cluster cannot place this key's peers now: try again"));
    return;
  }
  join(std::move(token_));
  auto pending = std::move(pending_);
  for (const auto& m : pending) handle(m);
}

void Session::onRelayText(std::string_view frame) {
  if (open_) conn_.sendText(std::string(frame));
}

void Session::onRelayClose(uint16_t code, std::string_view reason) {
  link_ = 0;  // the relay detached it
  if (open_) conn_.close(code, reason);
}

void Session::onClose() {
  if (!open_) return;
  open_ = false;
  service_.hub().detach(endpoint());
  unlist();
  if (link_ != 0) {  // locating the room, or linked to its node: the owner's side ends too
    relay_->close(conn_.worker(), link_, conn_.peerCloseCode() == kCloseGoingAway);
    link_ = 0;
    return;
  }
  if (phase_ == Phase::kIdle) return;
  phase_ = Phase::kIdle;
  service_.hub().onRoom(service_.room(), [hub = &service_.hub(), ep = endpoint(), room = service_.room(), id = id_](
                                             RoomHost& rooms, Outbox& out) {
    if (Room* r = rooms.find(room)) {
      r->detach(ep, hub->now(), out, false, id);
      rooms.reapIfEmpty(room);
    }
  });
}

void Session::unlist() {
  if (!listed_) return;
  listed_ = false;
  if (Directory* d = service_.directory()) d->remove(id_);
}

void Session::onMessage(std::string_view payload, bool binary) {
  if (awaitHello_) {  // from the client's node, not from the client (docs/cluster.md, "PeerJS")
    awaitHello_ = false;
    linkHello(payload);
    return;
  }
  auto& m = metrics::registry();
  metrics::count(metrics::Count::kMessagesIn);
  // PeerServer answers nothing to what it does not like, and an ERROR would make the client give up: drop + count.
  Hub& hub = service_.hub();
  if (!limiter_.allow(hub.now(), hub.limits().messagesPerSecond, hub.limits().burst)) {
    m.drop(metrics::Drop::kRateLimited);
    return;
  }
  if (payload.size() > hub.limits().maxMessageBytes) {
    m.drop(metrics::Drop::kTooLarge);
    return;
  }
  if (binary) {
    m.drop(metrics::Drop::kMalformed);
    return;
  }
  if (relayed_) {  // the key's room lives on another node: its session there decodes and relays
    if (link_ != 0) relay_->send(conn_.worker(), link_, std::string(payload));
    return;
  }
  if (placing_) {  // kept, in order, until the room is found
    if (pending_.size() >= kMaxPendingMessages) {
      m.drop(metrics::Drop::kQueueFull);
      return;
    }
    pending_.emplace_back(payload);
    return;
  }
  handle(payload);
}

void Session::handle(std::string_view payload) {
  auto& m = metrics::registry();
  Hub& hub = service_.hub();
  auto msg = decode(payload);
  if (!msg || msg->type == MessageType::kUnknown) {
    m.drop(metrics::Drop::kMalformed);
    return;
  }
  if (phase_ == Phase::kIdle) return;  // refused, left, or replaced
  // Tasks posted from one worker run in order on the owner, so messages sent while the join is in flight follow it.
  const std::string& room = service_.room();
  if (msg->type == MessageType::kHeartbeat) {
    hub.onRoom(room, [hub = &hub, ep = endpoint(), room, id = id_](RoomHost& rooms, Outbox&) {
      if (Room* r = rooms.find(room)) r->touch(ep, id, hub->now());
    });
    return;
  }
  if (!msg->dst) {
    if (msg->type != MessageType::kLeave) return;  // PeerServer drops it too
    phase_ = Phase::kIdle;
    unlist();
    hub.onRoom(room, [ep = endpoint(), room, id = id_](RoomHost& rooms, Outbox& out) {
      if (Room* r = rooms.find(room)) {
        r->leave(ep, kNoRequest, id, out);
        rooms.reapIfEmpty(room);
      }
    });
    return;
  }
  hub.onRoom(room, [hub = &hub, ep = endpoint(), room, id = id_, dst = std::move(*msg->dst),
                    kind = std::string(toString(msg->type)), data = std::move(msg->payload),
                    hold = heldForAbsent(msg->type)](RoomHost& rooms, Outbox& out) mutable {
    if (Room* r = rooms.find(room)) r->relay(ep, id, dst, std::move(kind), std::move(data), hold, hub->now(), out);
  });
}

void Session::deliver(const EventPtr& event) {
  if (!open_) return;
  std::visit(
      [this](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, ev::Signal>) {
          conn_.sendText(encodeRelay(e.kind, e.from, id_, e.data));
        } else if constexpr (std::is_same_v<T, ev::Expired>) {
          conn_.sendText(encodeRelay("EXPIRE", e.peer, id_, {}));
        } else if constexpr (std::is_same_v<T, ev::Joined>) {
          if (phase_ != Phase::kJoining) return;
          phase_ = Phase::kJoined;
          if (Directory* d = service_.directory(); d && !listed_) {
            d->add(id_);
            listed_ = true;
          }
          if (!e.resumed) conn_.sendText(encodeOpen());  // a reconnect with the same token gets no OPEN
        } else if constexpr (std::is_same_v<T, ev::Error>) {
          if (!e.refusesJoin || phase_ != Phase::kJoining) return;  // e.g. not-joined for a relay after a refusal
          phase_ = Phase::kIdle;
          if (e.code == ErrorCode::kResumeFailed) {
            refuse(encodeIdTaken());
          } else if (e.code == ErrorCode::kRoomFull) {
            refuse(encodeError(kLimitReached));
          } else {
            refuse(encodeError(e.message));
          }
        } else if constexpr (std::is_same_v<T, ev::Bye>) {
          // replaced: the id lives on in a newer socket; timeout: the room removed it; shutdown: closing anyway.
          phase_ = Phase::kIdle;
          unlist();
          conn_.close(e.reason == ByeReason::kShutdown ? kCloseGoingAway : kCloseNormal, toString(e.reason));
        }
        // Ok (the answer to LEAVE) and the announcements a quiet room never makes: nothing on the wire.
      },
      *event);
}

}  // namespace kaiwa::signal::peerjs
