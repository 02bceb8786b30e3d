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
constexpr std::size_t kMaxTokenBytes = 4096;  // room tokens (JWT) are longer than PeerJS's own

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

Service::Service(Hub& hub, Options options) : hub_(hub), options_(std::move(options)), room_("peerjs:" + options_.key) {
  if (options_.path.empty() || options_.path.front() != '/') options_.path.insert(0, 1, '/');
  if (options_.path.back() != '/') options_.path.push_back('/');
  policy_.capacity = options_.concurrentLimit;
  policy_.announce = false;
  policy_.keepDetached = false;
  policy_.holdForAbsent = options_.expireTimeout;
  policy_.aliveTimeout = options_.aliveTimeout;
}

std::optional<http::Response> Service::http(const http::Request& req) {
  const std::string& base = options_.path;
  if (!req.path.starts_with(base)) return std::nullopt;
  std::string_view rest = std::string_view(req.path).substr(base.size());
  bool get = req.method == "GET" || req.method == "HEAD";
  auto finish = [&](http::Response r) {
    addCors(r, req);
    return std::optional<http::Response>(std::move(r));
  };
  if (rest.empty()) {
    if (base == "/" || !get) return std::nullopt;  // '/' is kaiwa's web app (docs/peerjs.md)
    return finish(http::Response::json(
        200,
        R"({"name":"PeerJS Server","description":"A server side element to broker connections between PeerJS clients.","website":"https://peerjs.com/"})"));
  }
  auto slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
  // PeerServer does not check the key here; kaiwa neither, except that /room/... stays the web app's.
  std::string_view key = rest.substr(0, slash);
  if (base == "/" && key == "room" && options_.key != "room") return std::nullopt;
  std::string_view what = rest.substr(slash + 1);
  if (what != "id" && what != "peers") return std::nullopt;
  if (req.method == "OPTIONS") {  // CORS preflight, as the `cors` middleware answers it
    http::Response r = http::Response::text(204, "");
    r.headers.emplace_back("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
    return finish(std::move(r));
  }
  if (!get) return finish(http::Response::text(404, "Not Found"));
  if (what == "id") {
    http::Response r = http::Response::text(200, randomId());
    r.contentType = "text/html; charset=utf-8";
    r.headers.emplace_back("Cache-Control", "no-store");
    return finish(std::move(r));
  }
  if (!options_.discovery) return finish(http::Response::text(401, "Unauthorized"));
  std::string body = "[";
  for (const auto& id : directory_.list()) {
    if (body.size() > 1) body += ',';
    common::appendJsonString(body, id);
  }
  body += ']';
  http::Response r = http::Response::json(200, std::move(body));
  r.headers.emplace_back("Cache-Control", "no-store");
  return finish(std::move(r));
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
  return std::make_unique<Session>(*this, conn, req.queryParam("key"), req.queryParam("id"), req.queryParam("token"));
}

Session::Session(Service& service, http::WsConnection& conn, std::optional<std::string> key,
                 std::optional<std::string> id, std::optional<std::string> token)
    : service_(service), conn_(conn),
      handshake_(std::make_unique<Handshake>(Handshake{std::move(key), std::move(token)})), id_(id.value_or("")),
      limiter_(service.hub().limits().burst, service.hub().now()) {}

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
  auto handshake = std::move(handshake_);
  const auto& key = handshake->key;
  auto& token = handshake->token;
  // PeerServer's order: missing parameters, wrong key, then (in the room) a taken id, then the limit.
  if (!key || !token || key->empty() || id_.empty() || token->empty()) {
    refuse(encodeError(kNoParams));
    return;
  }
  if (*key != service_.options().key) {
    refuse(encodeError(kInvalidKey));
    return;
  }
  if (!validId(id_) || token->size() > kMaxTokenBytes) {
    metrics::registry().drop(metrics::Drop::kMalformed);
    refuse(encodeError("Invalid id or token"));
    return;
  }
  if (const auto& secret = hub.options().authSecret) {
    auto v = auth::verifyRoomToken(*token, *secret, service_.room(), wallMillis() / 1000);
    if (!v.claims) {
      refuse(encodeError("Invalid token: " + std::string(auth::toString(v.error))));
      return;
    }
  }
  phase_ = Phase::kJoining;
  hub.onRoom(service_.room(), [hub = &hub, ep = endpoint(), room = service_.room(), policy = service_.policy(),
                               id = id_, token = std::move(*token)](RoomHost& rooms, Outbox& out) mutable {
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

void Session::onClose() {
  if (!open_) return;
  open_ = false;
  service_.hub().detach(endpoint());
  unlist();
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
