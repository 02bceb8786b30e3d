// fuzz_native_session: the native WebSocket entry path, end to end below the socket. A WorkerPool(1) that is never
// started, a Hub over it with a fake clock (HubOptions::clock) and up to 5 signal::native::Sessions on fake
// WsConnections; the input is a script of frames those sessions send and of time passing (format below). After each
// step the pool is drained with poll() so room tasks and deliveries run, exactly as the worker thread would run them;
// time moves only when the script says so.
//
// Input format (docs/fuzzing.md):
//   byte 0: configuration: bit0 auth secret set; bits1-2 resumeGrace (0, 1 ms, 60 s, 60 s); bit3 rate limit
//           (5/s, burst 3); bit4 small limits (3 peers/room, 2 rooms, 512-byte messages, 3-message resume queue);
//           bits5-6 number of sessions - 2 (2..5); bit7 ticking: Hub::tick runs whenever the clock moves, so
//           detached peers expire and the room's peer-left/disconnected path runs.
//   then lines separated by '\n', each a control byte followed by a payload:
//     control c, slot = (c & 15) % sessions:
//       0x30-0x3F ('0'..'?'), and anything below 0x30: text frame `payload` from slot, then drain
//       0x40-0x4F ('@','A'..'O'): text frame without draining (frames pile up like on a busy worker)
//       0x50-0x5F ('P'..'_'):  binary frame, then drain
//       0x60-0x6F ('`','a'..'o'): the connection drops (onClose, the Session is destroyed) and a new one opens in
//                                 the slot
//       0x70-0x77 ('p'..'w'): slot becomes a slow consumer: sendText returns kClosed and requests a close
//       0x78-0x7F ('x'..DEL): the clock moves ('x'..'{': 1.1 ms, '|': 250 ms, '}': 1 s, '~': 5 s, DEL: 61 s; at
//                           most 16 times per input), the hub ticks (if ticking), then drain
//       0x80-0xBF:          the connection ends with a close frame 1001 (going away: a browser leaving the page,
//                           the peer leaves at once) and a new one opens in the slot
//       0xC0-0xFF:          Hub::shutdown(ByeReason::kShutdown) (every connection gets `bye`), then drain
//   In a payload, $P<k> / $R<k> are replaced by the peer id / resume token slot k last got in a join or resume
//   reply, and $T by a valid room token (room "*") when the auth secret is set.
//   Before the script, slots 0 and 1 join room "fz" as "A" and "B" (so deep paths are reached at once).
//
// Invariants: every frame a session sends is a JSON object with "v":1 and a known type, hello first; error codes,
// leave and bye reasons are documented ones (never `internal`); `re` answers an id the session sent; nobody hears
// peer-joined/signal/message from their own peer id; nothing is sent on a connection after onClose (the Hub must have
// forgotten it; the Session is destroyed at once, so ASan sees any late delivery); at the end (everybody closed, grace
// 0) no room and no peer is left, and after the Hub is gone the room/peer/detached gauges are back where they started;
// ASan/LSan: no use-after-free, no leak.
#include <boost/json.hpp>

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
#include "signal/native/session.hpp"

namespace json = boost::json;
using namespace kaiwa;
using kaiwa::fuzz::parseJson;
using kaiwa::fuzz::str;

namespace {

constexpr std::size_t kMaxSessions = 5;
constexpr std::size_t kMaxSteps = 256;
constexpr int kMaxWaits = 16;
// What 'x'..DEL (0x78-0x7F) move the fake clock by: past a 1 ms grace, past a second of the rate limiter, past a 60 s
// grace.
constexpr std::chrono::microseconds kWaits[8] = {std::chrono::microseconds(1100), std::chrono::microseconds(1100),
                                                 std::chrono::microseconds(1100), std::chrono::microseconds(1100),
                                                 std::chrono::milliseconds(250),  std::chrono::seconds(1),
                                                 std::chrono::seconds(5),         std::chrono::seconds(61)};
const std::string kSecret = "fuzz-secret";

const std::set<std::string_view> kEventTypes = {
    "hello",   "ok",   "error", "peer-joined", "peer-left",  "peer-state",     "signal",
    "message", "chat", "pong",  "bye",         "media-mode", "subscribe-offer"};
// docs/protocol.md's error codes, less `internal` ("a bug; please report"), which is a failure here.
const std::set<std::string_view> kErrorCodes = {
    "bad-message", "too-large", "rate-limited", "not-joined", "already-joined", "room-full", "too-many-rooms",
    "unknown-peer", "unauthorized", "resume-failed",
    // SFU rooms (this fuzzer's hub has no media service: SFU requests are answered not-sfu).
    "not-sfu", "bad-sdp", "too-many-publishers", "too-many-tracks", "stale-answer"};
const std::set<std::string_view> kLeaveReasons = {"left", "disconnected", "timeout", "kicked"};
const std::set<std::string_view> kByeReasons = {"shutdown", "slow-consumer", "timeout", "replaced"};

bool oneOf(const json::value* v, const std::set<std::string_view>& allowed) {
  return v && v->is_string() && allowed.contains(kaiwa::fuzz::str(*v));
}

struct Slot;

class FakeConn final : public http::WsConnection {
 public:
  explicit FakeConn(Slot& slot) : slot_(slot) {}
  SendResult sendText(std::string frame) override;
  SendResult sendBinary(std::string frame) override {
    FUZZ_CHECK(false, "the native front door never sends binary frames");
    return SendResult::kClosed;
  }
  void close(uint16_t code, std::string_view reason) override;
  uint32_t worker() const override { return 0; }
  std::string remoteAddress() const override { return "fuzz"; }
  uint16_t peerCloseCode() const override { return goingAway ? 1001 : 0; }

  bool dead = false;            // onClose has been called: any use is a bug
  bool closeRequested = false;  // close() was called (or the connection was a slow consumer)
  bool slow = false;
  bool goingAway = false;  // the peer's close frame said 1001

 private:
  Slot& slot_;
};

struct Slot {
  std::unique_ptr<FakeConn> conn;
  std::unique_ptr<signal::native::Session> session;
  std::set<int64_t> sentIds;  // request ids this connection sent
  std::string peer, resume;   // from the last join/resume reply (kept across reconnects, for $P / $R)
  std::string currentPeer;    // the same, for the current connection only
  std::size_t frames = 0;
  std::size_t index = 0;
};

// The parsed frames' memory: a buffer per call, no heap block per JSON node (see parseJson).
constexpr std::size_t kJsonScratch = 16 * 1024;

void checkFrame(Slot& slot, const std::string& frame) {
  unsigned char scratch[kJsonScratch];
  json::monotonic_resource memory(scratch, sizeof scratch);
  auto v = parseJson(frame, &memory);
  FUZZ_CHECK(v && v->is_object(), frame);
  const json::object& o = v->as_object();
  const json::value* ver = o.if_contains("v");
  FUZZ_CHECK(ver && ver->is_int64() && ver->as_int64() == 1, frame);
  const json::value* type = o.if_contains("type");
  FUZZ_CHECK(type && type->is_string() && kEventTypes.contains(str(*type)), frame);
  std::string_view t = str(*type);
  if (slot.frames++ == 0) {
    FUZZ_CHECK(t == "hello", frame);  // hello comes first
  } else {
    FUZZ_CHECK(t != "hello", frame);
  }
  if (const json::value* re = o.if_contains("re")) {
    FUZZ_CHECK(t == "ok" || t == "error", frame);
    FUZZ_CHECK(re->is_int64() && slot.sentIds.contains(re->as_int64()), frame);
  }
  if (t == "ok") {
    const json::value* peer = o.if_contains("peer");
    const json::value* resume = o.if_contains("resume");
    if (peer && resume && peer->is_string() && resume->is_string()) {
      slot.peer = std::string(str(*peer));
      slot.resume = std::string(str(*resume));
      slot.currentPeer = slot.peer;
    }
  } else if (t == "error") {
    FUZZ_CHECK(oneOf(o.if_contains("code"), kErrorCodes), frame);
    FUZZ_CHECK(o.contains("message") && o.at("message").is_string(), frame);
  } else if (t == "peer-left") {
    FUZZ_CHECK(oneOf(o.if_contains("reason"), kLeaveReasons), frame);
  } else if (t == "bye") {
    FUZZ_CHECK(oneOf(o.if_contains("reason"), kByeReasons), frame);
  }
  if (t == "peer-joined" || t == "signal" || t == "message") {
    // Nobody hears about their own peer, nor gets their own signals/messages back.
    const json::value* p = t == "peer-joined" ? o.at("peer").as_object().if_contains("id") : o.if_contains("from");
    FUZZ_CHECK(p && p->is_string(), frame);
    FUZZ_CHECK(slot.currentPeer.empty() || str(*p) != slot.currentPeer, frame);
  }
}

// KAIWA_FUZZ_TRACE=1 in the environment prints the conversation (for writing seeds, or reading a crash input).
const bool kTrace = std::getenv("KAIWA_FUZZ_TRACE") != nullptr;

FakeConn::SendResult FakeConn::sendText(std::string frame) {
  FUZZ_CHECK(!dead, "frame sent on a connection after onClose: " + frame);
  if (kTrace) std::fprintf(stderr, "  <- [%zu] %s\n", slot_.index, frame.c_str());
  checkFrame(slot_, frame);
  if (slow || closeRequested) return SendResult::kClosed;
  return SendResult::kQueued;
}

void FakeConn::close(uint16_t code, std::string_view reason) {
  FUZZ_CHECK(!dead, "close() after onClose");
  FUZZ_CHECK(code >= 1000 && code < 5000, "bad close code");
  closeRequested = true;
}

// One pool for the whole process, never started: building a WorkerPool per input (an io_context and a loop per
// worker, with their epoll sets, timer descriptors and Asio services) cost more than a short input. Sharing it is sound
// because no input leaves anything in it: each ends with the pool drained (no task left), before its Hub is destroyed,
// and with no watch and no timer registered in any loop (checked at the end of each input). Everything else (Hub,
// sessions, rooms, limits) is built fresh per input.
net::WorkerPool& sharedPool() {
  static net::WorkerPool pool(1);
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
  std::vector<Slot> slots;
  std::string token;
  TimePoint now = TimePoint{} + std::chrono::hours(1);  // the fake clock (HubOptions::clock)
  bool ticking = false;

  // The clock moves by `d`; with the tick on, the hub's tick runs then, as the worker's timer would have.
  void advance(std::chrono::microseconds d) {
    now += d;
    if (ticking) hub->tick(0, now);
    drain();
  }

  void drain() {
    auto& io = pool.context(0);
    // poll() runs every ready handler, including those posted meanwhile. A bound, not a loop: a task that keeps
    // re-posting itself would be a livelock, reported as a failure.
    for (int i = 0;; ++i) {
      if (io.stopped()) io.restart();
      std::size_t n = io.poll();
      if (n == 0) break;
      FUZZ_CHECK(i < 1000, "the worker never becomes idle");
    }
    // What the server does for a connection it closed (bye, slow consumer): onClose, then it forgets the handler.
    for (auto& s : slots) {
      if (s.conn && s.conn->closeRequested && !s.conn->dead) closeSlot(s, false);
    }
  }

  void open(Slot& s) {
    s.conn = std::make_unique<FakeConn>(s);
    s.session = std::make_unique<signal::native::Session>(*hub, *s.conn);
    s.sentIds.clear();
    s.frames = 0;
    s.currentPeer.clear();
    s.session->onOpen();
  }

  void closeSlot(Slot& s, bool reopen) {
    if (kTrace) std::fprintf(stderr, "-- [%zu] %s\n", s.index, reopen ? "reconnects" : "closed");
    if (!s.session) {
      if (reopen) open(s);
      return;
    }
    s.session->onClose();
    s.conn->dead = true;
    // The server destroys the handler right after onClose; the Hub must not reach it any more.
    s.session.reset();
    s.conn.reset();
    if (reopen) open(s);
  }

  std::string substitute(std::string_view payload) const {
    std::string out;
    out.reserve(payload.size());
    for (std::size_t i = 0; i < payload.size(); ++i) {
      if (payload[i] == '$' && i + 1 < payload.size()) {
        char kind = payload[i + 1];
        if (kind == 'T') {
          out += token;
          ++i;
          continue;
        }
        if ((kind == 'P' || kind == 'R') && i + 2 < payload.size() && payload[i + 2] >= '0' && payload[i + 2] <= '9') {
          std::size_t k = static_cast<std::size_t>(payload[i + 2] - '0') % slots.size();
          out += kind == 'P' ? slots[k].peer : slots[k].resume;
          i += 2;
          continue;
        }
      }
      out.push_back(payload[i]);
    }
    return out;
  }

  void send(Slot& s, std::string_view payload, bool binary) {
    if (!s.session || s.conn->closeRequested) return;  // the server reads nothing more from a closing connection
    std::string frame = substitute(payload);
    if (!binary) {
      // Remember the request id, so replies can be matched (invalid JSON simply has none).
      unsigned char scratch[kJsonScratch];
      json::monotonic_resource memory(scratch, sizeof scratch);
      if (auto v = parseJson(frame, &memory); v && v->is_object()) {
        const json::object& o = v->as_object();
        if (const json::value* id = o.if_contains("id")) {
          if (id->is_int64()) s.sentIds.insert(id->as_int64());
          if (id->is_uint64() && id->as_uint64() <= INT64_MAX) s.sentIds.insert(static_cast<int64_t>(id->as_uint64()));
        }
      }
    }
    if (kTrace) std::fprintf(stderr, "-> [%zu]%s %s\n", s.index, binary ? " (binary)" : "", frame.c_str());
    s.session->onMessage(frame, binary);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const uint8_t config = data[0];
  in.remove_prefix(1);

  auto& m = metrics::registry();
  const int64_t rooms0 = m.rooms.load(), peers0 = m.peers.load(), detached0 = m.detachedPeers.load();
  {
    Harness h;
    signal::Limits& lim = h.options.limits;
    lim.messagesPerSecond = 0;  // unlimited unless asked for: keeps runs deterministic
    static constexpr int kGraceMs[] = {0, 1, 60000, 60000};
    lim.resumeGrace = Millis(kGraceMs[(config >> 1) & 3]);
    if (config & 1) h.options.authSecret = kSecret;
    if (config & 8) {
      lim.messagesPerSecond = 5;
      lim.burst = 3;
    }
    if (config & 16) {
      lim.peersPerRoom = 3;
      lim.maxRooms = 2;
      lim.maxMessageBytes = 512;
      lim.resumeQueueMessages = 3;
      lim.resumeQueueBytes = 600;
    }
    const std::size_t sessions = std::min<std::size_t>(2 + ((config >> 5) & 3), kMaxSessions);
    h.ticking = (config & 0x80) != 0;
    h.options.clock = [&h] { return h.now; };
    if (h.options.authSecret) {
      h.token = auth::signRoomToken({"*", "fuzz-user", 4102444800 /* 2100-01-01 */, 0}, *h.options.authSecret);
    }
    h.hub = std::make_unique<signal::Hub>(h.pool, h.options);
    h.slots.resize(sessions);
    for (std::size_t i = 0; i < sessions; ++i) h.slots[i].index = i;
    for (auto& s : h.slots) h.open(s);
    h.drain();
    h.send(h.slots[0], R"({"v":1,"type":"join","id":1,"room":"fz","name":"A","token":"$T"})", false);
    h.drain();
    h.send(h.slots[1], R"({"v":1,"type":"join","id":1,"room":"fz","name":"B","token":"$T"})", false);
    h.drain();

    std::size_t steps = 0;
    int waits = 0;
    while (!in.empty() && steps++ < kMaxSteps) {
      auto nl = in.find('\n');
      std::string_view line = in.substr(0, nl);
      in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
      if (line.empty()) continue;
      const uint8_t c = static_cast<uint8_t>(line[0]);
      std::string_view payload = line.substr(1);
      Slot& s = h.slots[(c & 15) % sessions];
      switch (c >> 4) {
        case 4:
          h.send(s, payload, false);
          break;  // no drain
        case 5:
          h.send(s, payload, true);
          h.drain();
          break;
        case 6:
          h.closeSlot(s, true);
          h.drain();
          break;
        case 7:
          if (c < 0x78) {
            if (s.conn) {
              s.conn->slow = true;
              s.conn->closeRequested = true;
            }
          } else if (waits++ < kMaxWaits) {
            // Time passes on the fake clock: grace periods run out, the rate limiter refills and, with the tick on,
            // detached peers expire.
            h.advance(kWaits[c - 0x78]);
          }
          break;
        default:
          if (c >= 0xC0) {
            // As src/app/server.cpp does on SIGTERM. ("replaced" is the room's word for one peer, never the Hub's.)
            h.hub->shutdown(signal::ByeReason::kShutdown);
          } else if (c >= 0x80) {
            if (s.conn) s.conn->goingAway = true;
            h.closeSlot(s, true);
          } else {
            h.send(s, payload, false);
          }
          h.drain();
          break;
      }
    }
    h.drain();
    // Everybody leaves. With no grace period nothing may remain in any room.
    for (auto& s : h.slots) h.closeSlot(s, false);
    h.drain();
    // Whatever is left in a room is waiting for a resume: nobody may stay attached to a closed connection.
    FUZZ_CHECK(m.peers.load() - peers0 == m.detachedPeers.load() - detached0,
               "a peer is still attached after every connection closed");
    if (lim.resumeGrace.count() == 0) {
      FUZZ_CHECK(m.peers.load() == peers0, "peers left in rooms after every connection closed (grace 0)");
      FUZZ_CHECK(m.rooms.load() == rooms0, "rooms left after every connection closed (grace 0)");
    }
    h.hub.reset();
  }
  checkIdle(sharedPool());
  FUZZ_CHECK(m.rooms.load() == rooms0, "rooms gauge unbalanced");
  FUZZ_CHECK(m.peers.load() == peers0, "peers gauge unbalanced");
  FUZZ_CHECK(m.detachedPeers.load() == detached0, "detachedPeers gauge unbalanced");
  return 0;
}
