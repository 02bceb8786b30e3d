// fuzz_socketio_session: the Socket.IO front door end to end below the socket. A WorkerPool(2) that is never
// started, a Hub and a socketio::Service over it with a fake clock, and up to 4 clients, each on a fake WebSocket or
// on long polling (the Service's HTTP entry with captured responders); the input is a script of what the clients
// send and of time passing. A client's requests and WebSocket connections alternate between the two workers, so
// that sessions are reached from the other worker too (handed over by posted tasks, as SO_REUSEPORT makes happen).
// After each step the pool is drained with poll(), exactly as the worker threads would run the tasks; time moves
// only when the script says so, and the service's deadlines are met by Service::tick on each worker.
//
// Input format (docs/fuzzing.md):
//   byte 0: configuration: bit0 auth secret set; bit1 rate limit (5/s, burst 3); bit2 small limits (2 peers/room,
//           2 rooms, 256-byte events, 4 KiB queued); bit3 relay unknown events; bits4-5: clients - 1 (1..4);
//           bits 6-7: which clients start on polling (0: none, 1: the last, 2: odd ones, 3: all).
//   then lines separated by '\n', each a control byte followed by a payload; slot = (c & 15) % clients:
//     0x00-0x3F: WebSocket text frame `payload` (a polling client POSTs it as a one-packet body instead)
//     0x40-0x4F: WebSocket binary frame (polling: POST "b" + the payload as is, i.e. usually bad base64)
//     0x50-0x5F: polling POST with `payload` as the whole body (a WebSocket client sends a text frame)
//     0x60-0x6F: polling GET (a long poll; answered now or later)
//     0x70-0x77: the client's connection drops; a new client opens in the slot (WebSocket or polling, alternating)
//     0x78-0x7F: a polling client opens a WebSocket with its sid (the upgrade probe) if it has none, and sends
//                `payload` (if any) as a text frame on it; later frames go to it too
//     0x80-0xBF: the clock moves (c & 63) * 500 ms, and the service is ticked (pings, ping / connect / upgrade
//                timeouts; the fake clients never answer a ping)
//     0xC0-0xFF: Hub::shutdown(ByeReason::kShutdown), then drain
//   In a payload, $S<k> is replaced by the socket id client k got in its CONNECT reply.
//   Before the script every client connects (40) and joins room "fz" (with a token when the secret is set).
//
// Invariants: every WebSocket text frame and every polling response decodes (Engine.IO packet/payload, and the
// Socket.IO packet inside a message); the first packet is the open packet; acks answer ids the client sent;
// nobody is told about itself (user-joined, user-left, `from`); nothing is sent on a connection after onClose;
// every responder is called exactly once; no deadline of the service is left in the past after a tick; at the end
// (every client closed, the sessions abandoned by a vanished polling client ended by their ping timeout) no session
// is left (no deadline), no room and no peer, and every polling place (common::AddressLimits) was given back exactly
// once; ASan/LSan: no use-after-free, no leak.
#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.hpp"
#include "common/metrics.hpp"
#include "fuzz_util.hpp"
#include "http/handler.hpp"
#include "net/worker_pool.hpp"
#include "signal/hub.hpp"
#include "signal/socketio/codec.hpp"
#include "signal/socketio/session.hpp"

namespace json = boost::json;
using namespace kaiwa;
using namespace kaiwa::signal::socketio;

namespace {

constexpr std::size_t kMaxClients = 4;
constexpr uint32_t kWorkers = 2;
constexpr std::size_t kMaxSteps = 256;
const std::string kSecret = "fuzz-secret";
const bool kTrace = std::getenv("KAIWA_FUZZ_TRACE") != nullptr;

struct Client;

class FakeConn final : public http::WsConnection {
 public:
  FakeConn(Client& c, uint32_t worker) : client_(c), worker_(worker) {}
  SendResult sendText(std::string frame) override;
  SendResult sendBinary(std::string frame) override;
  void close(uint16_t code, std::string_view) override {
    FUZZ_CHECK(!dead, "close() after onClose");
    FUZZ_CHECK(code >= 1000 && code < 5000, "bad close code");
    closeRequested = true;
  }
  uint32_t worker() const override { return worker_; }
  std::string remoteAddress() const override { return "fuzz"; }

  bool dead = false;
  bool closeRequested = false;

 private:
  Client& client_;
  uint32_t worker_;
};

struct Client {
  std::size_t index = 0;
  bool polling = false;
  std::string sid;       // Engine.IO session id
  std::string socketId;  // from 40{"sid":…}
  std::set<uint64_t> sentAcks;
  std::size_t packets = 0;
  std::size_t pendingAttachments = 0;
  // WebSocket (direct, or the probe/upgrade of a polling session)
  std::unique_ptr<FakeConn> conn;
  std::unique_ptr<http::WsHandler> handler;
  bool upgraded = false;  // a polling client that opened a WebSocket
  uint32_t arrivals = 0;  // requests and connections so far: each goes to the next worker

  void onPacket(const EioPacket& p);
  void onSocketIo(std::string_view text);
};

void Client::onSocketIo(std::string_view text) {
  auto p = decodePacket(text);
  FUZZ_CHECK(p.has_value(), std::string("server sent a bad Socket.IO packet: ") + std::string(text));
  pendingAttachments = p->attachments;
  switch (p->type) {
    case SioType::kConnect:
      FUZZ_CHECK(p->data && p->data->is_object() && p->data->as_object().contains("sid"), text);
      socketId = std::string(p->data->as_object().at("sid").as_string());
      break;
    case SioType::kAck:
      FUZZ_CHECK(p->ackId && sentAcks.contains(*p->ackId),
                 std::string("ack for an id never sent: ") + std::string(text));
      break;
    case SioType::kEvent:
    case SioType::kBinaryEvent: {
      const json::array& a = p->data->as_array();
      std::string_view name = a[0].as_string();
      if ((name == "user-joined" || name == "user-left") && a.size() > 1 && a[1].is_string()) {
        FUZZ_CHECK(a[1].as_string() != socketId || socketId.empty(),
                   std::string("told about itself: ") + std::string(text));
      }
      if (a.size() > 1 && a[1].is_object()) {
        if (const json::value* from = a[1].as_object().if_contains("from");
            from && from->is_string() && name != "kaiwa:error") {
          FUZZ_CHECK(from->as_string() != socketId, std::string("own event came back: ") + std::string(text));
        }
      }
      break;
    }
    case SioType::kConnectError:
    case SioType::kDisconnect:
      break;
    default:
      FUZZ_CHECK(false, std::string("unexpected packet type from the server: ") + std::string(text));
  }
}

void Client::onPacket(const EioPacket& p) {
  if (packets++ == 0) {
    FUZZ_CHECK(p.type == EioType::kOpen, "the first packet is not open");
    auto v = kaiwa::fuzz::parseJson(p.data);
    FUZZ_CHECK(v && v->is_object() && v->as_object().contains("sid"), p.data);
    sid = std::string(v->as_object().at("sid").as_string());
    return;
  }
  if (p.type != EioType::kMessage) return;
  if (p.binary) {
    FUZZ_CHECK(pendingAttachments > 0, "a binary message nobody announced");
    --pendingAttachments;
    return;
  }
  onSocketIo(p.data);
}

FakeConn::SendResult FakeConn::sendText(std::string frame) {
  FUZZ_CHECK(!dead, "frame sent after onClose: " + frame);
  if (kTrace) std::fprintf(stderr, "  <- [%zu] %s\n", client_.index, frame.c_str());
  auto p = decodeFrame(frame, false);
  FUZZ_CHECK(p.has_value(), "bad Engine.IO frame: " + frame);
  if (client_.upgraded && p->type == EioType::kPong && p->data == "probe") return SendResult::kQueued;
  client_.onPacket(*p);
  return closeRequested ? SendResult::kClosed : SendResult::kQueued;
}

FakeConn::SendResult FakeConn::sendBinary(std::string frame) {
  FUZZ_CHECK(!dead, "binary frame sent after onClose");
  client_.onPacket(EioPacket{EioType::kMessage, std::move(frame), true});
  return closeRequested ? SendResult::kClosed : SendResult::kQueued;
}

// One pool for the whole process, never started: building a WorkerPool per input (an io_context and a loop per
// worker, with their epoll sets, timer descriptors and Asio services) cost more than a short input. Sharing it is sound
// because no input leaves anything in it: each ends with the pool drained (no task left), before its Hub is destroyed,
// and with no watch and no timer registered in any loop (checked at the end of each input). Everything else (Hub,
// sessions, rooms, limits) is built fresh per input.
net::WorkerPool& sharedPool() {
  static net::WorkerPool pool(kWorkers);
  return pool;
}

// The shared pool after an input: nothing of it is left for the next one.
void checkIdle(net::WorkerPool& pool) {
  for (uint32_t w = 0; w < pool.size(); ++w) {
    FUZZ_CHECK(pool.loop(w).timers() == 0 && pool.loop(w).watching() == 0, "a timer or watch outlived its input");
    FUZZ_CHECK(pool.context(w).poll() == 0, "a task outlived its input");
  }
}

struct Harness {
  net::WorkerPool& pool = sharedPool();
  signal::HubOptions options;
  std::unique_ptr<signal::Hub> hub;
  std::unique_ptr<Service> service;
  std::vector<Client> clients;
  std::string token;
  std::size_t respondersMade = 0, respondersCalled = 0;
  TimePoint now = TimePoint{} + std::chrono::hours(1);  // the fake clock

  // The clock moves by `d`, stopping at each deadline of the service on the way to tick it then, as a worker's
  // timer would.
  void advance(Millis d) {
    const TimePoint end = now + d;
    for (int i = 0; nextDeadline() <= end; ++i) {
      FUZZ_CHECK(i < 10000, "the deadlines never move past the end");
      now = std::max(now, nextDeadline());
      for (uint32_t w = 0; w < kWorkers; ++w) service->tick(w, now);
      drain();
      FUZZ_CHECK(nextDeadline() > now, "a deadline left in the past after a tick");
    }
    now = end;
  }

  TimePoint nextDeadline() const {
    TimePoint next = TimePoint::max();
    for (uint32_t w = 0; w < kWorkers; ++w) next = std::min(next, service->nextDeadline(w));
    return next;
  }

  void drain() {
    for (int i = 0;; ++i) {
      std::size_t ran = 0;
      for (uint32_t w = 0; w < kWorkers; ++w) {
        auto& io = pool.context(w);
        if (io.stopped()) io.restart();
        ran += io.poll();
      }
      if (ran == 0) break;
      FUZZ_CHECK(i < 1000, "the workers never become idle");
    }
    for (auto& c : clients) {
      if (c.conn && c.conn->closeRequested && !c.conn->dead) closeWs(c);
    }
  }

  http::Request request(Client& c, std::string method, bool websocket, std::string body = {}) {
    http::Request r;
    r.worker = c.arrivals++ % kWorkers;
    r.method = std::move(method);
    r.path = "/socket.io/";
    r.query = std::string("EIO=4&transport=") + (websocket ? "websocket" : "polling");
    if (!c.sid.empty()) r.query += "&sid=" + c.sid;
    r.target = r.path + "?" + r.query;
    r.body = std::move(body);
    return r;
  }

  // One HTTP request; the response (now or later) is checked when it comes.
  void http(Client& c, std::string method, std::string body = {}) {
    http::Request req = request(c, method, false, std::move(body));
    if (kTrace) std::fprintf(stderr, "-> [%zu] HTTP %s %s\n", c.index, req.method.c_str(), req.body.c_str());
    ++respondersMade;
    bool get = req.method == "GET";
    http::Responder respond = [this, &c, get, called = std::make_shared<bool>(false)](http::Response res) {
      FUZZ_CHECK(!*called, "a responder called twice");
      *called = true;
      ++respondersCalled;
      if (kTrace) std::fprintf(stderr, "  <- [%zu] HTTP %u %s\n", c.index, res.status, res.body.c_str());
      if (res.status != 200) {
        FUZZ_CHECK(res.status == 400 || res.status == 403 || res.status == 413, "unexpected status");
        return;
      }
      if (!get) {
        FUZZ_CHECK(res.body == "ok", res.body);
        return;
      }
      auto packets = decodePayload(res.body);
      FUZZ_CHECK(packets.has_value(), "bad polling payload: " + res.body);
      for (const auto& p : *packets) c.onPacket(p);
    };
    FUZZ_CHECK(service->http(req, respond), "the service refused its own path");
  }

  void openWs(Client& c, bool probe) {
    c.conn = std::make_unique<FakeConn>(c, c.arrivals++ % kWorkers);
    c.upgraded = probe;
    if (!probe) {
      c.sid.clear();
      c.packets = 0;
    }
    c.handler = service->websocket(*c.conn, request(c, "GET", true));
    FUZZ_CHECK(c.handler != nullptr, "no WebSocket handler");
    c.handler->onOpen();
  }

  void closeWs(Client& c) {
    if (!c.handler) return;
    c.handler->onClose();
    c.conn->dead = true;
    c.handler.reset();
    c.conn.reset();
  }

  void open(Client& c, bool polling) {
    closeWs(c);
    // An earlier polling session of this slot is left open, as a vanished client's: its ping timeout ends it.
    c.polling = polling;
    c.socketId.clear();
    c.sentAcks.clear();
    c.pendingAttachments = 0;
    c.upgraded = false;
    if (polling) {
      c.sid.clear();
      c.packets = 0;
      http(c, "GET");
    } else {
      openWs(c, false);
    }
    drain();
  }

  std::string substitute(std::string_view payload) const {
    std::string out;
    for (std::size_t i = 0; i < payload.size(); ++i) {
      if (payload[i] == '$' && i + 2 < payload.size() && payload[i + 1] == 'S' && payload[i + 2] >= '0' &&
          payload[i + 2] <= '9') {
        out += clients[static_cast<std::size_t>(payload[i + 2] - '0') % clients.size()].socketId;
        i += 2;
        continue;
      }
      out.push_back(payload[i]);
    }
    return out;
  }

  // Remembers the ack id of an EVENT the client sends, so acks can be matched.
  static void noteAck(Client& c, std::string_view text) {
    if (text.size() < 2 || text[0] != '4') return;
    if (auto p = decodePacket(text.substr(1)); p && p->ackId) c.sentAcks.insert(*p->ackId);
  }

  void sendText(Client& c, std::string_view payload) {
    std::string frame = substitute(payload);
    noteAck(c, frame);
    if (kTrace) std::fprintf(stderr, "-> [%zu] %s\n", c.index, frame.c_str());
    if (c.handler && !c.conn->closeRequested) {
      c.handler->onMessage(frame, false);
    } else if (c.polling) {
      http(c, "POST", frame);
    }
  }

  void sendBinary(Client& c, std::string_view payload) {
    if (c.handler && !c.conn->closeRequested) {
      c.handler->onMessage(payload, true);
    } else if (c.polling) {
      http(c, "POST", "b" + std::string(payload));
    }
  }

  void post(Client& c, std::string_view payload) {
    std::string body = substitute(payload);
    for (std::size_t start = 0; start <= body.size();) {  // every packet of the body, for the ack bookkeeping
      auto end = body.find('\x1e', start);
      noteAck(c, std::string_view(body).substr(start, end == std::string::npos ? std::string::npos : end - start));
      if (end == std::string::npos) break;
      start = end + 1;
    }
    if (!c.polling) {
      if (c.handler && !c.conn->closeRequested) c.handler->onMessage(body, false);
      return;
    }
    http(c, "POST", body);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const uint8_t config = data[0];
  in.remove_prefix(1);

  auto& m = metrics::registry();
  const int64_t rooms0 = m.rooms.load(), peers0 = m.peers.load();
  common::AddressLimits addressLimits;  // the polling places: each taken is given back exactly once
  {
    Harness h;
    h.options.addressLimits = &addressLimits;
    signal::Limits& lim = h.options.limits;
    lim.messagesPerSecond = 0;
    if (config & 1) h.options.authSecret = kSecret;
    if (config & 2) {
      lim.messagesPerSecond = 5;
      lim.burst = 3;
    }
    if (config & 4) {
      lim.peersPerRoom = 2;
      lim.maxRooms = 2;
      lim.maxMessageBytes = 256;
      lim.maxQueuedBytes = 4096;
    }
    Options o;
    o.relayUnknownEvents = (config & 8) != 0;
    const std::size_t n = std::min<std::size_t>(1 + ((config >> 4) & 3), kMaxClients);
    const unsigned pollingMode = config >> 6;
    if (h.options.authSecret) {
      h.token = auth::signRoomToken({"fz", "fuzz-user", 4102444800 /* 2100-01-01 */, 0}, *h.options.authSecret);
    }
    h.hub = std::make_unique<signal::Hub>(h.pool, h.options);
    h.service = std::make_unique<Service>(*h.hub, h.pool, o, [&h] { return h.now; });
    h.clients.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      Client& c = h.clients[i];
      c.index = i;
      bool polling = pollingMode == 3 || (pollingMode == 2 && i % 2 == 1) || (pollingMode == 1 && i == n - 1);
      h.open(c, polling);
      std::string connect = h.token.empty() ? "40" : R"(40{"token":")" + h.token + "\"}";
      h.sendText(c, connect);
      h.drain();
      if (c.polling) h.http(c, "GET");
      h.sendText(c, R"(421["join-room","fz"])");
      h.drain();
    }

    std::size_t steps = 0;
    bool reopenPolling = true;
    while (!in.empty() && steps++ < kMaxSteps) {
      auto nl = in.find('\n');
      std::string_view line = in.substr(0, nl);
      in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
      if (line.empty()) continue;
      const uint8_t c = static_cast<uint8_t>(line[0]);
      std::string_view payload = line.substr(1);
      Client& cl = h.clients[(c & 15) % n];
      if (c < 0x40) {
        h.sendText(cl, payload);
      } else if (c < 0x50) {
        h.sendBinary(cl, payload);
      } else if (c < 0x60) {
        h.post(cl, payload);
      } else if (c < 0x70) {
        if (cl.polling) h.http(cl, "GET");
      } else if (c < 0x78) {
        h.open(cl, reopenPolling);
        reopenPolling = !reopenPolling;
      } else if (c < 0x80) {
        if (cl.polling && !cl.sid.empty() && !cl.handler) h.openWs(cl, true);
        if (!payload.empty()) h.sendText(cl, payload);
      } else if (c < 0xC0) {
        h.advance(Millis(500) * (c & 63));
      } else {
        h.hub->shutdown(signal::ByeReason::kShutdown);
      }
      h.drain();
    }

    // Everybody goes: polling sessions say close, WebSockets drop; the sessions of vanished polling clients end at
    // their ping timeout.
    for (auto& c : h.clients) {
      if (c.polling && !c.sid.empty()) h.http(c, "POST", "1");
      h.closeWs(c);
      h.drain();
    }
    h.drain();
    h.advance(o.pingInterval + o.pingTimeout + o.connectTimeout + o.upgradeTimeout);
    FUZZ_CHECK(h.nextDeadline() == TimePoint::max(), "a session outlived its ping timeout");
    FUZZ_CHECK(h.respondersCalled == h.respondersMade, "a request was never answered");
    FUZZ_CHECK(m.rooms.load() == rooms0, "rooms left behind");
    FUZZ_CHECK(m.peers.load() == peers0, "peers left behind");
  }
  checkIdle(sharedPool());
  FUZZ_CHECK(addressLimits.pollingSessionsTotal() == 0, "a polling place was not given back, or given back twice");
  return 0;
}
