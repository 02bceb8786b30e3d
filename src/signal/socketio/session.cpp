#include "signal/socketio/session.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <unordered_set>
#include <vector>

#include "common/address_limits.hpp"
#include "common/json_text.hpp"
#include "common/metrics.hpp"
#include "net/loop.hpp"
#include "signal/names.hpp"
#include "signal/room.hpp"
#include "signal/socketio/codec.hpp"
#include "signal/socketio/engineio.hpp"
#include "signal/socketio/events.hpp"
#include "signal/socketio/forward.hpp"
#include "signal/socketio/inline_id.hpp"
#include "signal/socketio/socket.hpp"

namespace kaiwa::signal::socketio {
namespace {

using engineio::kClosePolicy;
using engineio::LinkId;

// The node a sid names ("<node>~<worker>.<random>" in a cluster), "" when it names none.
std::string_view nodeOfSid(std::string_view sid) {
  auto tilde = sid.rfind('~');
  return tilde == std::string_view::npos ? std::string_view{} : sid.substr(0, tilde);
}

std::optional<uint32_t> ownerOfSid(std::string_view sid, uint32_t workers) {
  if (auto tilde = sid.rfind('~'); tilde != std::string_view::npos) sid.remove_prefix(tilde + 1);
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
  common::appendJsonString(body, message);
  body += '}';
  return http::Response::json(status, std::move(body));
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

}  // namespace

class Client;
class HttpForward;

// A WebSocket transport; lives on `worker`, and `conn` is touched only there (null once the connection is gone).
// `id` names it to its session's engineio::Session (kNoLink until it is attached to one).
struct WsLink {
  uint32_t worker = 0;
  http::WsConnection* conn = nullptr;
  LinkId id = engineio::kNoLink;
};

// The registry of one worker's sessions, keyed by their sid (held by the session itself).
struct SidHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view sid) const { return std::hash<std::string_view>{}(sid); }
  std::size_t operator()(const std::shared_ptr<Client>& s) const;
};
struct SidEq {
  using is_transparent = void;
  static std::string_view sidOf(std::string_view sid) { return sid; }
  static std::string_view sidOf(const std::shared_ptr<Client>& s);
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return sidOf(a) == sidOf(b);
  }
};
using SessionSet = std::unordered_set<std::shared_ptr<Client>, SidHash, SidEq>;

struct Service::Impl {
  Impl(Hub& h, net::WorkerPool& p, Options o, std::function<TimePoint()> c)
      : hub(h), pool(p), options(std::move(o)), clock(std::move(c)), sessions(p.size()), deadlines(p.size()),
        armedFor(p.size(), TimePoint::max()), timers(p.size(), 0) {
    forwards.resize(p.size());
    if (options.path.empty() || options.path.front() != '/') options.path.insert(0, 1, '/');
    if (options.path.back() != '/') options.path.push_back('/');
    engine.pingInterval = options.pingInterval;
    engine.pingTimeout = options.pingTimeout;
    engine.upgradeTimeout = options.upgradeTimeout;
    engine.connectTimeout = options.connectTimeout;
    engine.maxPayload = options.maxPayload;
    engine.maxQueuedBytes = hub.limits().maxQueuedBytes;
    socket.relayUnknownEvents = options.relayUnknownEvents;
    socket.keepAuthToken = hub.options().authSecret.has_value();
    socket.maxPayload = options.maxPayload;
    socket.messagesPerSecond = hub.limits().messagesPerSecond;
    socket.burst = hub.limits().burst;
    events.relayUnknownEvents = options.relayUnknownEvents;
    events.defaultRoom = options.defaultRoom;
    events.authSecret = hub.options().authSecret;
    events.maxMessageBytes = hub.limits().maxMessageBytes;
  }

  // After the workers stopped: the timers still registered go from the loops (which outlive the service).
  ~Impl();

  // The only place the front door reads the clock (and the loops' timers, which pass the time they ran at).
  TimePoint now() const { return clock ? clock() : Clock::now(); }

  // Every session of a worker is reached through here, on that worker.
  std::shared_ptr<Client> find(uint32_t worker, std::string_view sid) {
    KAIWA_ON_LOOP(pool.loop(worker));
    auto& m = sessions[worker];
    auto it = m.find(sid);
    return it == m.end() ? nullptr : *it;
  }
  std::shared_ptr<Client> create(uint32_t worker, const http::Request& req, std::string_view address);

  common::AddressLimits* addressLimits() const { return hub.options().addressLimits; }

  // In a cluster (docs/socketio.md, "Across nodes"): the relay, this node's sid prefix ("<node>~"), the requests
  // forwarded from here that wait for their answer (per worker, by link), and the counts for /metrics.
  Relay* relay = nullptr;
  std::string sidPrefix;
  std::vector<std::unordered_map<uint64_t, std::unique_ptr<HttpForward>>> forwards;
  std::atomic<uint64_t> forwardsInFlight{0};
  struct ForwardStats {
    std::atomic<uint64_t> requests{0};    // HTTP requests forwarded to the session's node
    std::atomic<uint64_t> webSockets{0};  // WebSockets linked to it
    std::atomic<uint64_t> served{0};      // requests and WebSockets other nodes forwarded here
    std::atomic<uint64_t> refused{0};     // over --socketio-max-forwarded
    std::atomic<uint64_t> failed{0};      // the node gone or unknown, or an answer that does not parse
  } fwd;
  // Forwards the request to `node` (its session's), or with no node to the holder of Socket.IO's placement.
  void forward(const http::Request& req, http::Responder& respond, std::string_view node);
  // A polling handshake from `ip`: nullopt if it may open a session (which then holds a polling place), else the
  // refusal to send.
  std::optional<http::Response> admitPolling(std::string_view ip);

  // Runs a socket's room op on the room's owner, and on the next room's while it goes on (a directed event).
  struct OpTask {
    Impl* svc;
    RoomOp op;
    void operator()(RoomHost& rooms, Outbox& out) {
      if (applyRoomOp(op, rooms, out, svc->now())) svc->run(std::move(op));
    }
  };
  void run(RoomOp&& op) {
    OpTask task{this, std::move(op)};
    // The name is read from the task's own op: Hub::onRoom finds the owner before it moves the task anywhere.
    std::string_view key = roomOf(task.op);
    hub.onRoom(key, std::move(task));
  }

  Hub& hub;
  net::WorkerPool& pool;
  Options options;
  std::function<TimePoint()> clock;  // empty: Clock::now(), and the loops' timers below
  engineio::Config engine;
  Socket::Config socket;
  GuideEvents::Config events;
  std::vector<SessionSet> sessions;  // per worker

  // The sessions' deadlines (engineio::Session::nextDeadline), per worker: a min-heap of (when, sid), so that each
  // is met on time while an idle session holds no timer of its own. An entry made stale by a later deadline of the
  // same session just finds nothing to do when it comes (Client::tick).
  struct Deadline {
    TimePoint when;
    Sid sid;
    bool operator>(const Deadline& o) const { return when > o.when; }
  };
  std::vector<std::vector<Deadline>> deadlines;  // per worker
  std::vector<TimePoint> armedFor;               // per worker: TimePoint::max() when unarmed
  std::vector<net::Loop::TimerId> timers;        // per worker, with the real clock only: a one-shot timer of its loop

  // On `worker`: tick the session `sid` at `when` (or soon after).
  void schedule(uint32_t worker, TimePoint when, const Sid& sid);
  void tick(uint32_t worker, TimePoint now);
  // With the real clock: the worker's loop timer, set to its earliest deadline (on the worker's thread).
  void arm(uint32_t worker);
};

// One client of the front door: its Engine.IO session, its Socket.IO socket and its side of the guide's events,
// wired to each other and to the transports, the hub and the worker.
class Client final : public std::enable_shared_from_this<Client>,
                     engineio::Session::Listener,
                     Socket::Listener,
                     GuideEvents::Listener {
 public:
  Client(Service::Impl& svc, uint32_t worker, std::string_view sid, std::string_view address, std::string roomHint,
         std::string queryToken, TimePoint now)
      : svc_(svc), engine_(*this, svc.engine, sid), socket_(*this, svc.socket, now),
        events_(*this, svc.events, address, std::move(roomHint), std::move(queryToken)), worker_(worker) {}
  ~Client() override { releasePollingPlace(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  std::string_view sid() const { return engine_.sid(); }

  // --- from the service: each input ends with settle(), which keeps the links and the deadline in step

  // `holdsPlace`: admitted with AddressLimits::openPollingSession, whose place this session gives back when it ends
  // or upgrades (releasePollingPlace). Returns the handshake's body.
  std::string startPolling(bool holdsPlace, TimePoint now) {
    polling_ = std::make_unique<PollingIo>();
    holdsPollingPlace_ = holdsPlace;
    std::string open = engine_.openPolling(now);
    settle();
    return open;
  }

  void startWebSocket(std::shared_ptr<WsLink> link, TimePoint now) {
    direct_ = true;
    link->id = nextLink_++;
    ws_ = std::move(link);
    engine_.openWebSocket(ws_->id, now);
    settle();
  }

  void onPollGet(http::Responder respond, TimePoint now) {
    auto answer = engine_.onPollGet(now);
    switch (answer.kind) {
      case engineio::Session::GetAnswer::Kind::kHold:
        polling_->heldGet = std::move(respond);
        break;
      case engineio::Session::GetAnswer::Kind::kNow:
        respond(pollResponse(std::move(answer.body)));
        break;
      case engineio::Session::GetAnswer::Kind::kBadRequest:
        respond(eioError(EioError::kBadRequest));
        break;
    }
    settle();
  }

  void onPollPost(std::string_view body, http::Responder respond, TimePoint now) {
    switch (engine_.onPollPost(body, now)) {
      case engineio::Session::PostAnswer::kOk: {
        http::Response ok = http::Response::text(200, "ok");
        ok.contentType = "text/html";
        respond(std::move(ok));
        break;
      }
      case engineio::Session::PostAnswer::kTooLarge:
        respond(http::Response::text(413, "payload too large\n"));
        break;
      case engineio::Session::PostAnswer::kBadRequest:
        respond(eioError(EioError::kBadRequest));
        break;
      case engineio::Session::PostAnswer::kUnknownSid:
        respond(eioError(EioError::kUnknownSid));
        break;
    }
    settle();
  }

  void attachProbe(std::shared_ptr<WsLink> link, TimePoint now) {
    link->id = nextLink_++;
    if (polling_ && engine_.attachProbe(link->id, now)) {
      polling_->probe = std::move(link);
    } else {
      closeOn(std::move(link), kClosePolicy, "no upgrade possible");
    }
    settle();
  }

  void onWsFrame(const std::shared_ptr<WsLink>& link, std::string_view frame, bool binary, TimePoint now) {
    engine_.onFrame(link->id, frame, binary, now);
    settle();
  }

  void onWsClosed(const std::shared_ptr<WsLink>& link) {
    engine_.onLinkClosed(link->id);
    settle();
  }

  // At one of this session's deadlines (Service::Impl::tick; a stale one finds nothing due).
  void tick(TimePoint now) {
    engine_.tick(now);
    if (scheduled_ <= now) scheduled_ = TimePoint::max();
    settle();
  }

 private:
  // Long polling's transport side, for sessions that start with it: the long poll held, the upgrade probe.
  struct PollingIo {
    http::Responder heldGet;
    std::shared_ptr<WsLink> probe;
  };

  void settle() {
    if (polling_ && polling_->probe && engine_.probe() != polling_->probe->id) polling_->probe.reset();
    TimePoint next = engine_.nextDeadline();
    if (next < scheduled_) {
      scheduled_ = next;
      svc_.schedule(worker_, next, Sid(engine_.sid()));
    }
  }

  const std::shared_ptr<WsLink>* link(LinkId id) const {
    if (ws_ && ws_->id == id) return &ws_;
    if (polling_ && polling_->probe && polling_->probe->id == id) return &polling_->probe;
    return nullptr;
  }

  // --- engineio::Session::Listener

  void sendFrame(LinkId id, std::string frame, bool binary) override {
    const std::shared_ptr<WsLink>* l = link(id);
    if (!l) return;
    if ((*l)->worker == worker_) {
      sendNow(**l, std::move(frame), binary);
      return;
    }
    svc_.pool.post((*l)->worker, [shared = *l, frame = std::move(frame), binary]() mutable {
      sendNow(*shared, std::move(frame), binary);
    });
  }

  void closeLink(LinkId id, uint16_t code, std::string_view reason) override {
    if (const std::shared_ptr<WsLink>* l = link(id)) closeOn(*l, code, reason);
  }

  // Closes a transport, on its worker.
  void closeOn(std::shared_ptr<WsLink> l, uint16_t code, std::string_view reason) {
    if (l->worker == worker_) {
      if (l->conn) l->conn->close(code, reason);
      return;
    }
    uint32_t worker = l->worker;  // read before the task takes `l`: argument evaluation order is unspecified
    svc_.pool.post(worker, [l = std::move(l), code, reason = std::string(reason)] {
      if (l->conn) l->conn->close(code, reason);
    });
  }

  void answerPoll(std::string body) override {
    if (!polling_ || !polling_->heldGet) return;
    auto respond = std::move(polling_->heldGet);
    polling_->heldGet = nullptr;
    respond(pollResponse(std::move(body)));
  }

  void onMessage(std::string_view data, bool binary, TimePoint now) override { socket_.onMessage(data, binary, now); }

  void onUpgraded() override {
    ws_ = std::move(polling_->probe);
    polling_.reset();  // a WebSocket session from now on
    releasePollingPlace();
  }

  void onClosed(std::string_view why) override {
    spdlog::debug("socket.io {}: closed ({})", engine_.sid(), why);
    socket_.disconnect();
    releasePollingPlace();
    auto& registry = svc_.sessions[worker_];
    if (auto it = registry.find(engine_.sid()); it != registry.end() && it->get() == this) {
      // Kept until the call chain that closed it is over (it may be deep inside this session), then let go.
      svc_.pool.post(worker_, [keep = *it] {});
      registry.erase(it);
    }
  }

  // --- Socket::Listener

  void sendPacket(std::string text) override { engine_.sendMessage(std::move(text)); }
  void protocolError(std::string_view why) override { engine_.close(why, false, kClosePolicy); }
  void onConnected(std::string_view authToken, std::string answer, TimePoint now) override {
    engine_.socketConnected();
    events_.onConnected(socket_.id(), authToken, std::move(answer), now);
  }
  void onDisconnected() override { events_.onDisconnected(); }
  void onEvent(SioPacket packet, TimePoint now) override { events_.onEvent(std::move(packet), now); }
  void onRelayEvent(RelayEvent& event, TimePoint now) override { events_.onRelayEvent(event, now); }
  void onRateLimited(std::optional<uint64_t> ack, std::string_view event, TimePoint now) override {
    events_.onRateLimited(ack, event, now);
  }

  // --- GuideEvents::Listener (sendPacket above)

  void sendFrame(std::string_view frame, bool binary) override { engine_.sendFrame(frame, binary); }
  Endpoint attach(Membership& membership) override { return svc_.hub.attach(worker_, &membership); }
  void detach(Endpoint endpoint) override { svc_.hub.detach(endpoint); }
  void run(RoomOp&& op) override { svc_.run(std::move(op)); }
  void close(std::string_view why, uint16_t wsCode) override {
    engine_.close(why, true, wsCode);
    settle();
  }
  TimePoint now() override { return svc_.now(); }
  int64_t wallSeconds() override { return wallMillis() / 1000; }

  // A socket joins its first room after connecting (the guide's clients name no room in the handshake), so its
  // connection usually lives on another worker than the room, and every event would hop between threads twice. A
  // direct WebSocket session in no other room moves, with its connection, to the room's worker and joins there
  // (docs/architecture.md, "Connection placement"). Nothing else holds it to this worker: its implicit room was
  // just left, and the registry entry moves along; its sid keeps naming this worker, which only a polling request
  // would read, and a WebSocket session takes none.
  bool moveToOwnerOf(const std::string& room, std::optional<uint64_t> ack) override {
    uint32_t owner = svc_.hub.ownerOf(roomKey(room, false));
    if (owner == worker_ || !direct_ || !ws_ || !ws_->conn || ws_->worker != worker_ || engine_.closed()) {
      return false;
    }
    auto self = shared_from_this();
    bool moving = ws_->conn->moveTo(owner, [self, room, ack](uint32_t worker) { self->arrive(worker, room, ack); });
    if (!moving) return false;
    auto& registry = svc_.sessions[worker_];
    if (auto it = registry.find(engine_.sid()); it != registry.end() && it->get() == this) registry.erase(it);
    return true;
  }

  // On the worker the connection is on now (the room's, or still this one if it closed meanwhile).
  void arrive(uint32_t worker, const std::string& room, std::optional<uint64_t> ack) {
    worker_ = worker;
    ws_->worker = worker;
    if (engine_.closed()) return;
    svc_.sessions[worker].insert(shared_from_this());
    scheduled_ = TimePoint::max();  // this worker's deadlines from now on
    settle();
    if (!socket_.connected()) return;
    events_.join(room, ack);
  }

  static void sendNow(WsLink& link, std::string frame, bool binary) {
    if (!link.conn) return;
    if (binary) {
      link.conn->sendBinary(std::move(frame));
    } else {
      link.conn->sendText(std::move(frame));
    }
  }

  // The polling place this session holds (AddressLimits::openPollingSession), given back once: when the session
  // ends, or when it upgrades to a WebSocket (a WebSocket connection from then on, counted as one).
  void releasePollingPlace() {
    if (!holdsPollingPlace_) return;
    holdsPollingPlace_ = false;
    if (auto* limits = svc_.addressLimits()) limits->closePollingSession(events_.address());
  }

  // An idle WebSocket session holds only what is below; polling lives apart, made when used.
  Service::Impl& svc_;
  engineio::Session engine_;
  Socket socket_;
  GuideEvents events_;
  std::shared_ptr<WsLink> ws_;              // the WebSocket transport (direct, or upgraded)
  std::unique_ptr<PollingIo> polling_;      // sessions that started with long polling, until they upgrade
  TimePoint scheduled_ = TimePoint::max();  // the earliest entry of this session in its worker's deadlines
  uint32_t worker_;
  LinkId nextLink_ = 1;
  bool holdsPollingPlace_ = false;  // releasePollingPlace
  bool direct_ = false;  // opened as a WebSocket (never polled): its transport and it share a worker, and may move
};

std::size_t SidHash::operator()(const std::shared_ptr<Client>& s) const { return (*this)(s->sid()); }
std::string_view SidEq::sidOf(const std::shared_ptr<Client>& s) { return s->sid(); }

void Service::Impl::schedule(uint32_t worker, TimePoint when, const Sid& sid) {
  KAIWA_ON_LOOP(pool.loop(worker));
  auto& heap = deadlines[worker];
  heap.push_back(Deadline{when, sid});
  std::push_heap(heap.begin(), heap.end(), std::greater<>());
  if (!clock && when < armedFor[worker]) arm(worker);
}

void Service::Impl::tick(uint32_t worker, TimePoint now) {
  KAIWA_ON_LOOP(pool.loop(worker));
  auto& heap = deadlines[worker];
  while (!heap.empty() && heap.front().when <= now) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    Sid sid = heap.back().sid;
    heap.pop_back();
    if (auto s = find(worker, sid.view())) s->tick(now);  // may schedule again (a pong's deadline)
  }
  if (heap.empty() && heap.capacity() > 1024) heap.shrink_to_fit();
}

void Service::Impl::arm(uint32_t worker) {
  const auto& heap = deadlines[worker];
  if (heap.empty()) return;
  TimePoint when = heap.front().when;
  armedFor[worker] = when;
  net::Loop& loop = pool.loop(worker);
  if (timers[worker] && loop.reschedule(timers[worker], when)) return;
  timers[worker] = loop.at(when, [this, worker](TimePoint now) {
    timers[worker] = 0;  // a one-shot timer is gone once it ran
    armedFor[worker] = TimePoint::max();
    tick(worker, now);
    arm(worker);
  });
}

std::optional<http::Response> Service::Impl::admitPolling(std::string_view ip) {
  common::AddressLimits* limits = addressLimits();
  if (!limits) return std::nullopt;
  if (!limits->allowHandshake(ip, now())) {
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

std::shared_ptr<Client> Service::Impl::create(uint32_t worker, const http::Request& req, std::string_view address) {
  KAIWA_ON_LOOP(pool.loop(worker));
  std::string sid = sidPrefix + std::to_string(worker) + "." + randomSocketId();
  auto room = req.queryParam("room");
  if (room && !validRoomName(*room)) room.reset();
  std::optional<std::string> token;  // kept only where it is checked, and only of a size a token has
  if (hub.options().authSecret) token = req.queryParam("token");
  if (token && token->size() > kMaxTokenBytes) token.reset();
  auto s = std::make_shared<Client>(*this, worker, sid, address, room.value_or(""), token.value_or(""), now());
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
      s->startWebSocket(link_, svc_.now());
      return;
    }
    onOwner([link = link_, worker = link_->worker, &svc = svc_](Client* s) {
      if (s) {
        s->attachProbe(link, svc.now());
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
      if (s) s->onWsFrame(link_, payload, binary, svc_.now());
      return;
    }
    onOwner([link = link_, data = std::string(payload), binary, &svc = svc_](Client* s) {
      if (s) s->onWsFrame(link, data, binary, svc.now());
    });
  }

  void onClose() override {
    link_->conn = nullptr;
    onOwner([link = link_](Client* s) {
      if (s) s->onWsClosed(link);
    });
  }

 private:
  // The session's worker: an upgrade's session stays where its handshake was; a direct WebSocket's session is where
  // its connection is (they move together: Client::moveToOwnerOf).
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
  std::weak_ptr<Client> session_;  // once found, while on the session's worker
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

bool serveHttp(Service::Impl& impl, const http::Request& req, http::Responder& respond, bool forwarded);
std::unique_ptr<http::WsHandler> serveWebSocket(Service::Impl& impl, http::WsConnection& conn, const http::Request& req,
                                                bool forwarded);

// Socket.IO's placement (docs/socketio.md, "Across nodes"): the node that holds it makes every new session.
constexpr std::string_view kPlacementKey = "socket.io";
constexpr uint16_t kCloseTryAgain = 1013;
constexpr std::size_t kMaxFramesBeforePlaced = 16;

}  // namespace

// An HTTP request whose session lives on another node (or, for a handshake, that is made there), on the request's
// worker: forwarded on a link, answered with what the owner answers. Owned by Impl::forwards until it is over.
class HttpForward final : public RemoteLink {
 public:
  HttpForward(Service::Impl& svc, const http::Request& req, http::Responder respond)
      : svc_(svc), req_(req), respond_(std::move(respond)) {}

  void start(uint64_t link, std::string_view node) {
    link_ = link;
    auto sid = req_.queryParam("sid");
    if (node.empty()) {
      svc_.relay->place(req_.worker, link_, Door::kSocketIo, std::string(kPlacementKey), req_.remoteAddress);
    } else {
      svc_.relay->connect(req_.worker, link_, Door::kSocketIo, std::string(node), sid.value_or(""), req_.remoteAddress);
    }
  }

  void onPlaced(Placement where) override {
    switch (where) {
      case Placement::kHere:  // a handshake, and this node holds the placement
        svc_.relay->detach(req_.worker, link_);
        serveHttp(svc_, req_, respond_, true);
        return finish();
      case Placement::kElsewhere:
        svc_.relay->send(req_.worker, link_, encodeHttpForward(req_.method, req_.query, req_.body));
        req_.body = {};
        return;
      case Placement::kUnavailable:
      case Placement::kFull:  // (the cluster holds --max-rooms rooms and the socket.io placement was gone)
        svc_.relay->detach(req_.worker, link_);
        return fail();
    }
  }

  void onRelayText(std::string_view frame) override {
    if (done_) return;
    if (auto r = decodeForwardedResponse(frame)) {
      answer(std::move(*r));
    } else {
      fail();
    }
    svc_.relay->close(req_.worker, link_, false);
  }

  void onRelayClose(uint16_t /*code*/, std::string_view /*reason*/) override { fail(); }

 private:
  // The session's node is gone (or the answer made no sense): the session is as good as unknown there. A handshake
  // that found no node to make it (Redis unreachable and nothing cached) is told to come back.
  void fail() {
    if (done_) return;
    svc_.fwd.failed.fetch_add(1, std::memory_order_relaxed);
    metrics::registry().drop(metrics::Drop::kHttpBad);
    if (req_.queryParam("sid")) {
      answer(eioError(EioError::kUnknownSid));
    } else {
      answer(handshakeRefused(503, "No node can take a new session now: try again later"));
    }
  }

  void answer(http::Response r) {
    if (done_) return;
    respond_(std::move(r));
    finish();
  }

  void finish() {
    if (done_) return;
    done_ = true;
    svc_.forwardsInFlight.fetch_sub(1, std::memory_order_relaxed);
    // Let go of after this call chain (the relay is calling into it).
    svc_.pool.post(req_.worker,
                   [&svc = svc_, worker = req_.worker, link = link_] { svc.forwards[worker].erase(link); });
  }

  Service::Impl& svc_;
  http::Request req_;
  http::Responder respond_;
  uint64_t link_ = 0;
  bool done_ = false;
};

namespace {

// A WebSocket whose session lives on another node (an upgrade naming its sid), or that opens a session made there:
// its frames go to that node on a link, and the frames its session writes come back. When the placement says here,
// it is served here after all (the frames that came meanwhile are handed over in order).
class WsForward final : public http::WsHandler, public RemoteLink {
 public:
  WsForward(Service::Impl& svc, http::WsConnection& conn, const http::Request& req, std::string node)
      : svc_(svc), conn_(conn), req_(std::make_unique<http::Request>(req)), node_(std::move(node)) {}

  void onOpen() override {
    link_ = svc_.relay->attach(conn_.worker(), this);
    svc_.fwd.webSockets.fetch_add(1, std::memory_order_relaxed);
    if (node_.empty()) {
      svc_.relay->place(conn_.worker(), link_, Door::kSocketIo, std::string(kPlacementKey), conn_.remoteAddress());
    } else {
      svc_.relay->connect(conn_.worker(), link_, Door::kSocketIo, node_, req_->queryParam("sid").value_or(""),
                          conn_.remoteAddress());
    }
  }

  void onMessage(std::string_view payload, bool binary) override {
    if (local_) return local_->onMessage(payload, binary);
    if (relayed_) return svc_.relay->send(conn_.worker(), link_, wrapWsFrame(payload, binary));
    if (!link_) return;
    if (early_.size() >= kMaxFramesBeforePlaced) {
      metrics::registry().drop(metrics::Drop::kRateLimited);
      conn_.close(kClosePolicy, "too many frames before the session was found");
      return;
    }
    early_.emplace_back(wrapWsFrame(payload, binary));
  }

  void onClose() override {
    if (local_) return local_->onClose();
    if (link_) svc_.relay->close(conn_.worker(), link_, conn_.peerCloseCode() == ws::kCloseGoingAway);
    link_ = 0;
  }

  void onPlaced(Placement where) override {
    if (where == Placement::kElsewhere) {
      relayed_ = true;
      svc_.relay->send(conn_.worker(), link_, encodeWsForward(req_->query));
      for (auto& f : early_) svc_.relay->send(conn_.worker(), link_, std::move(f));
      early_.clear();
      req_.reset();
      return;
    }
    svc_.relay->detach(conn_.worker(), link_);
    link_ = 0;
    if (where == Placement::kHere) local_ = serveWebSocket(svc_, conn_, *req_, true);
    req_.reset();
    if (!local_) {
      svc_.fwd.failed.fetch_add(1, std::memory_order_relaxed);
      early_.clear();
      conn_.close(where == Placement::kHere ? kClosePolicy : kCloseTryAgain,
                  node_.empty() ? "no node can take a new session now" : "Session ID unknown");
      return;
    }
    local_->onOpen();
    auto early = std::move(early_);
    for (const auto& f : early) {
      if (auto w = unwrapWsFrame(f)) local_->onMessage(w->data, w->binary);
    }
  }

  void onRelayText(std::string_view frame) override {
    if (auto f = unwrapWsFrame(frame)) {
      if (f->binary) {
        conn_.sendBinary(std::string(f->data));
      } else {
        conn_.sendText(std::string(f->data));
      }
    } else {
      svc_.fwd.failed.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void onRelayClose(uint16_t code, std::string_view reason) override {
    link_ = 0;
    relayed_ = false;
    conn_.close(code, reason);
  }

 private:
  Service::Impl& svc_;
  http::WsConnection& conn_;
  std::unique_ptr<http::Request> req_;  // until placed
  std::string node_;                    // the sid's node; empty: wherever Socket.IO's placement is
  uint64_t link_ = 0;
  bool relayed_ = false;
  std::vector<std::string> early_;          // frames that came before the placement (wrapped)
  std::unique_ptr<http::WsHandler> local_;  // placed here after all
};

// The connection a forwarded WebSocket's session sees on the owner: the proxy, with each frame marked text or binary.
class FramedConn final : public http::WsConnection {
 public:
  explicit FramedConn(http::WsConnection& proxy) : proxy_(proxy) {}
  SendResult sendText(std::string frame) override { return proxy_.sendText(wrapWsFrame(frame, false)); }
  SendResult sendBinary(std::string frame) override { return proxy_.sendText(wrapWsFrame(frame, true)); }
  void close(uint16_t code, std::string_view reason) override { proxy_.close(code, reason); }
  uint32_t worker() const override { return proxy_.worker(); }
  std::string remoteAddress() const override { return proxy_.remoteAddress(); }
  uint16_t peerCloseCode() const override { return proxy_.peerCloseCode(); }

 private:
  http::WsConnection& proxy_;
};

// The owner's side of a link of Door::kSocketIo: its first frame says what another node forwarded (forward.hpp).
class RemoteEntry final : public http::WsHandler {
 public:
  RemoteEntry(Service::Impl& svc, http::WsConnection& proxy)
      : svc_(svc), proxy_(proxy), alive_(std::make_shared<Alive>(Alive{&proxy})) {}

  void onMessage(std::string_view payload, bool /*binary*/) override {
    if (inner_) {
      if (auto f = unwrapWsFrame(payload)) {
        inner_->onMessage(f->data, f->binary);
      } else {
        metrics::registry().drop(metrics::Drop::kMalformed);
      }
      return;
    }
    if (started_) {  // an HTTP request's link carries nothing more
      metrics::registry().drop(metrics::Drop::kMalformed);
      return;
    }
    started_ = true;
    auto fwd = decodeForward(payload);
    if (!fwd) {
      metrics::registry().drop(metrics::Drop::kMalformed);
      proxy_.close(kClosePolicy, "not a forwarded request");
      return;
    }
    svc_.fwd.served.fetch_add(1, std::memory_order_relaxed);
    http::Request req;
    req.path = svc_.options.path;
    req.query = std::string(fwd->query);
    req.target = req.path + "?" + req.query;
    req.worker = proxy_.worker();
    if (fwd->kind == ForwardedRequest::Kind::kWebSocket) {
      req.method = "GET";
      conn_ = std::make_unique<FramedConn>(proxy_);
      inner_ = serveWebSocket(svc_, *conn_, req, true);
      if (!inner_) {
        proxy_.close(kClosePolicy, "Session ID unknown");
        return;
      }
      inner_->onOpen();
      return;
    }
    req.method = std::string(fwd->method);
    req.body = std::string(fwd->body);
    req.remoteAddress = proxy_.remoteAddress();  // the client's IP, as its node saw it
    http::Responder respond = [alive = alive_, &pool = svc_.pool, worker = proxy_.worker()](http::Response r) {
      auto send = [alive, r = std::move(r)] {
        if (!alive->conn) return;
        alive->conn->sendText(encodeForwardedResponse(r));
        alive->conn->close(ws::kCloseNormal, "answered");
        alive->conn = nullptr;
      };
      if (net::WorkerPool::current() == worker) {
        send();
      } else {
        pool.post(worker, std::move(send));
      }
    };
    if (!serveHttp(svc_, req, respond, true)) respond(eioError(EioError::kBadRequest));
  }

  void onClose() override {
    alive_->conn = nullptr;
    if (inner_) inner_->onClose();
  }

 private:
  struct Alive {
    http::WsConnection* conn;  // the proxy, until it closes
  };
  Service::Impl& svc_;
  http::WsConnection& proxy_;
  std::shared_ptr<Alive> alive_;
  std::unique_ptr<FramedConn> conn_;
  std::unique_ptr<http::WsHandler> inner_;
  bool started_ = false;
};

std::unique_ptr<http::WsHandler> serveWebSocket(Service::Impl& impl, http::WsConnection& conn, const http::Request& req,
                                                bool forwarded) {
  if (!impl.options.enabled || req.path != impl.options.path) return nullptr;
  if (checkHandshake(req, "websocket")) {
    metrics::registry().drop(metrics::Drop::kHttpBad);
    return nullptr;
  }
  auto sid = req.queryParam("sid");
  if (impl.relay && !forwarded) {
    std::string_view node = sid ? nodeOfSid(*sid) : std::string_view{};
    if (!sid || (!node.empty() && node != impl.relay->nodeId())) {
      return std::make_unique<WsForward>(impl, conn, req, std::string(node));
    }
  }
  std::optional<uint32_t> owner;
  if (sid) {
    owner = ownerOfSid(*sid, impl.pool.size());
    if (!owner) return nullptr;
  }
  return std::make_unique<WsTransport>(impl, conn, req, owner, sid.value_or(""));
}

}  // namespace

Service::Impl::~Impl() {
  for (uint32_t w = 0; w < timers.size(); ++w) pool.loop(w).cancel(timers[w]);
}

void Service::Impl::forward(const http::Request& req, http::Responder& respond, std::string_view node) {
  if (forwardsInFlight.load(std::memory_order_relaxed) >= options.maxForwarded) {
    fwd.refused.fetch_add(1, std::memory_order_relaxed);
    respond(handshakeRefused(503, "This node forwards the most requests it may: try again later"));
    return;
  }
  forwardsInFlight.fetch_add(1, std::memory_order_relaxed);
  fwd.requests.fetch_add(1, std::memory_order_relaxed);
  auto f = std::make_unique<HttpForward>(*this, req, std::move(respond));
  HttpForward& ref = *f;
  uint64_t link = relay->attach(req.worker, &ref);
  forwards[req.worker][link] = std::move(f);
  ref.start(link, node);
}

Service::Service(Hub& hub, net::WorkerPool& pool, Options options, std::function<TimePoint()> clock)
    : impl_(std::make_unique<Impl>(hub, pool, std::move(options), std::move(clock))) {}

Service::~Service() = default;

const Options& Service::options() const { return impl_->options; }

bool Service::http(const http::Request& req, http::Responder& respond) {
  return serveHttp(*impl_, req, respond, false);
}

namespace {

// `forwarded`: another node sent it here (Door::kSocketIo); served here whatever the placement says.
bool serveHttp(Service::Impl& impl, const http::Request& req, http::Responder& respond, bool forwarded) {
  auto* impl_ = &impl;
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
    if (impl_->relay && !forwarded) {  // made on the node that holds Socket.IO's placement
      impl_->forward(req, respond, {});
      return true;
    }
    if (auto refused = impl_->admitPolling(req.remoteAddress)) {
      respond(std::move(*refused));  // counted by AddressLimits (kaiwa_address_refused_total)
      return true;
    }
    auto s = impl_->create(req.worker, req, req.remoteAddress);
    respond(pollResponse(s->startPolling(impl_->addressLimits() != nullptr, impl_->now())));
    return true;
  }
  if (req.method != "GET" && req.method != "POST") return fail(EioError::kBadRequest);
  if (auto node = nodeOfSid(*sid); impl_->relay && !forwarded && !node.empty() && node != impl_->relay->nodeId()) {
    impl_->forward(req, respond, node);  // the session lives on another node: served through it
    return true;
  }
  auto owner = ownerOfSid(*sid, impl_->pool.size());
  if (!owner) return fail(EioError::kUnknownSid);
  auto run = [impl = impl_, owner = *owner, sid = *sid, get = req.method == "GET", body = req.body,
              respond = std::move(respond)]() mutable {
    auto s = impl->find(owner, sid);
    if (!s) {
      metrics::registry().drop(metrics::Drop::kHttpBad);
      respond(eioError(EioError::kUnknownSid));
    } else if (get) {
      s->onPollGet(std::move(respond), impl->now());
    } else {
      s->onPollPost(body, std::move(respond), impl->now());
    }
  };
  if (*owner == req.worker) {
    run();
  } else {
    impl_->pool.post(*owner, std::move(run));
  }
  return true;
}

}  // namespace

void Service::tick(uint32_t worker, TimePoint now) { impl_->tick(worker, now); }

TimePoint Service::nextDeadline(uint32_t worker) const {
  const auto& heap = impl_->deadlines[worker];
  return heap.empty() ? TimePoint::max() : heap.front().when;
}

std::unique_ptr<http::WsHandler> Service::websocket(http::WsConnection& conn, const http::Request& req) {
  return serveWebSocket(*impl_, conn, req, false);
}

std::unique_ptr<http::WsHandler> Service::remote(http::WsConnection& proxy) {
  return std::make_unique<RemoteEntry>(*impl_, proxy);
}

bool Service::setCluster(Relay* relay) {
  if (relay && relay->nodeId().size() > kMaxNodeIdInSid) return false;
  impl_->relay = relay;
  impl_->sidPrefix = relay ? relay->nodeId() + "~" : "";
  return true;
}

std::string Service::renderMetrics() const {
  if (!impl_->relay) return {};
  std::string out;
  auto emit = [&out](std::string_view name, std::string_view type, std::string_view help, uint64_t value) {
    fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
  };
  auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  const auto& f = impl_->fwd;
  emit("kaiwa_socketio_forwarded_requests_total", "counter",
       "Engine.IO HTTP requests forwarded to the node holding their session.", load(f.requests));
  emit("kaiwa_socketio_forwarded_websockets_total", "counter",
       "Engine.IO WebSockets linked to the node holding their session.", load(f.webSockets));
  emit("kaiwa_socketio_forwarded_in_flight", "gauge", "Forwarded HTTP requests waiting for their answer (long polls).",
       load(impl_->forwardsInFlight));
  emit("kaiwa_socketio_forwarded_refused_total", "counter",
       "Requests not forwarded: --socketio-max-forwarded requests were in flight.", load(f.refused));
  emit("kaiwa_socketio_forwarded_failed_total", "counter",
       "Forwarded requests the session's node did not answer: the node gone, or an answer that does not parse.",
       load(f.failed));
  emit("kaiwa_socketio_served_for_nodes_total", "counter",
       "Requests and WebSockets that other nodes forwarded to this one.", load(f.served));
  return out;
}

}  // namespace kaiwa::signal::socketio
