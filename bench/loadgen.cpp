// kaiwa-loadgen: WebSocket signaling load generator (relay latency/throughput, idle connection holding).
//
// Design: --threads worker threads, each with its own epoll loop, owning whole rooms (so both ends of every
// relayed message live on the same thread and no state is shared between threads). Raw non-blocking sockets,
// a minimal RFC 6455 client (ws_codec.hpp), protocol adapters for the signaling dialect (protocol.hpp).
// Timeline, decided up front once every connection is set up so every thread agrees on it:
//   setup (connect + upgrade + join) → warm-up (traffic, not measured) → measure (--duration) → drain (no new
//   sends, late arrivals still counted) → closing (leave, close frame, wait briefly for the server to close).
// A message is "measured" when its send timestamp falls inside the measure window; loss = measured sent −
// measured received at the end of the drain.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "histogram.hpp"
#include "protocol.hpp"
#include "ws_codec.hpp"

namespace kaiwa::bench {
namespace {

int64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

constexpr int64_t kNsPerSec = 1000000000;
constexpr char kMarker[] = "~KWB";  // never in a peer id (alphanumeric) nor in JSON syntax
constexpr size_t kMarkerLen = 4;
constexpr size_t kStampLen = kMarkerLen + 16 + 8 + 8;  // marker, send time, sequence, sender index (hex)

void writeHex(char* p, uint64_t v, int n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = n - 1; i >= 0; --i) {
    p[i] = kDigits[v & 15];
    v >>= 4;
  }
}

uint64_t parseHex(const char* p, int n, bool& ok) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) {
    const char ch = p[i];
    uint64_t d;
    if (ch >= '0' && ch <= '9') {
      d = uint64_t(ch - '0');
    } else if (ch >= 'a' && ch <= 'f') {
      d = uint64_t(ch - 'a' + 10);
    } else {
      ok = false;
      return 0;
    }
    v = v << 4 | d;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// Options

struct Options {
  std::string mode = "relay";  // relay | idle
  std::string protocol = "native";
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string path;  // empty: the protocol's default
  int clients = 200;
  int roomSize = 2;
  int payloadBytes = 300;
  double rate = 8000;  // total msgs/s; 0 = window mode
  int window = 8;
  double windowTimeout = 2.0;
  double duration = 10;
  double warmup = 2;
  double drain = 2;
  int threads = 1;
  int rampConcurrency = 256;
  double connectRate = 0;  // connections/s, 0 = unbounded (still bounded by rampConcurrency)
  double setupTimeout = 60;
  double handshakeTimeout = 10;
  double closeWait = 1.0;
  double timeout = 0;  // hard wall-clock limit; 0 = derived
  double tickMs = 1.0;
  bool join = true;
  bool json = false;
  bool quiet = false;
  int serverPid = 0;
  std::vector<in_addr> sourceIps;
  std::string roomPrefix;
  size_t maxMessage = 16u << 20;
};

void usage() {
  std::puts(
      "usage: kaiwa-loadgen [relay|idle] [options]\n"
      "  --url ws://127.0.0.1:8080/ws   target (loopback only)\n"
      "  --protocol native|peerjs|socketio|floor  signaling dialect (default native)\n"
      "  --clients N          connections (default 200)\n"
      "  --room-size K        clients per room (default 2)\n"
      "  --payload-bytes B    relayed data string length (default 300, min 36)\n"
      "  --rate R             total relayed msgs/s, spread evenly over clients (default 8000)\n"
      "                       0 = as fast as possible with --window in-flight messages per client\n"
      "  --window W           in-flight messages per client when --rate 0 (default 8)\n"
      "  --duration S         measured seconds (relay) or hold time (idle) (default 10)\n"
      "  --warmup S  --drain S   (default 2, 2)\n"
      "  --threads T          worker threads (default 1)\n"
      "  --ramp-concurrency P pending handshakes at most (default 256)\n"
      "  --connect-rate C     new connections per second at most (default unbounded)\n"
      "  --setup-timeout S  --handshake-timeout S  --timeout S (hard limit, default derived)\n"
      "  --no-join            idle: hold plain connections without joining rooms\n"
      "  --source-ips A,B,..  bind() connections round-robin to these local addresses (>60k connections)\n"
      "  --server-pid PID     sample the server's CPU time and RSS from /proc around the measure window\n"
      "  --tick-ms MS         pacing timer period (default 1)\n"
      "  --json               also print one JSON line with the figures\n"
      "  --quiet              no progress lines\n"
      "  --self-test          run the codec/histogram self tests and exit");
}

bool parseUrl(const std::string& url, Options& o) {
  std::string_view u(url);
  if (u.rfind("ws://", 0) != 0) return false;
  u.remove_prefix(5);
  const size_t slash = u.find('/');
  std::string_view hostport = u.substr(0, slash);
  o.path = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
  const size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos) {
    o.host = std::string(hostport);
    o.port = 80;
  } else {
    o.host = std::string(hostport.substr(0, colon));
    o.port = std::atoi(std::string(hostport.substr(colon + 1)).c_str());
  }
  if (o.host == "localhost") o.host = "127.0.0.1";
  return o.port > 0 && o.port < 65536;
}

bool isLoopback(const std::string& host) {
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1) return false;
  return (ntohl(a.s_addr) >> 24) == 127;
}

// ---------------------------------------------------------------------------------------------------------
// Shared state between the main thread and workers (timeline only; everything else is per worker).

enum Phase : int { kSetup = 0, kTraffic = 1, kClosing = 2 };

struct Timeline {
  std::atomic<int> phase{kSetup};
  std::atomic<int64_t> trafficStart{0};
  std::atomic<int64_t> measureStart{0};
  std::atomic<int64_t> measureEnd{0};  // also the end of sending
  std::atomic<bool> abort{false};
};

struct Stats {
  uint64_t established = 0, failed = 0, dropped = 0, heldAtEnd = 0;
  std::map<std::string, uint64_t> failReasons, dropReasons, serverErrors, byeReasons;
  std::map<std::string, int64_t> serverLimits;
  uint64_t sentTotal = 0, sentMeasured = 0, recvTotal = 0, recvMeasured = 0, recvInWindow = 0;
  uint64_t outOfOrder = 0, gapMessages = 0, unparsed = 0, foreign = 0, latePastDrain = 0;
  uint64_t pings = 0, binaryFrames = 0, fragmentedMessages = 0, closedCleanly = 0;
  uint64_t scheduleSlip = 0, sendBlocked = 0, windowStalls = 0, noPartner = 0;
  uint64_t bytesOut = 0, bytesIn = 0;
  LatencyHistogram latency;
  LatencyHistogram connectTime;

  void merge(const Stats& o) {
    established += o.established;
    failed += o.failed;
    dropped += o.dropped;
    heldAtEnd += o.heldAtEnd;
    for (auto& [k, v] : o.failReasons) failReasons[k] += v;
    for (auto& [k, v] : o.dropReasons) dropReasons[k] += v;
    for (auto& [k, v] : o.serverErrors) serverErrors[k] += v;
    for (auto& [k, v] : o.byeReasons) byeReasons[k] += v;
    for (auto& [k, v] : o.serverLimits) serverLimits[k] = v;
    sentTotal += o.sentTotal;
    sentMeasured += o.sentMeasured;
    recvTotal += o.recvTotal;
    recvMeasured += o.recvMeasured;
    recvInWindow += o.recvInWindow;
    outOfOrder += o.outOfOrder;
    gapMessages += o.gapMessages;
    unparsed += o.unparsed;
    foreign += o.foreign;
    latePastDrain += o.latePastDrain;
    pings += o.pings;
    binaryFrames += o.binaryFrames;
    fragmentedMessages += o.fragmentedMessages;
    closedCleanly += o.closedCleanly;
    scheduleSlip += o.scheduleSlip;
    sendBlocked += o.sendBlocked;
    windowStalls += o.windowStalls;
    noPartner += o.noPartner;
    bytesOut += o.bytesOut;
    bytesIn += o.bytesIn;
    latency.merge(o.latency);
    connectTime.merge(o.connectTime);
  }
};

// ---------------------------------------------------------------------------------------------------------
// One client connection, owned by one worker.

enum class ConnState : uint8_t { kIdle, kConnecting, kUpgrading, kOpen, kEstablished, kClosing, kClosed };

struct Conn {
  int fd = -1;
  ConnState state = ConnState::kIdle;
  bool dirty = false;
  bool closeSent = false;
  bool inWindowQueue = false;
  uint32_t global = 0;     // index over all clients of this run
  uint32_t localRoom = 0;  // index into Worker::rooms_
  int64_t startedAt = 0;   // connect() time
  std::string in;          // unparsed input (usually empty: reads go through the worker's scratch buffer)
  std::string out;         // pending output
  size_t outOff = 0;
  std::string wsKey;  // until the upgrade completes
  FrameDecoder decoder;
  std::string peerId;      // how others address this client
  std::string protoState;  // the adapter's scratch (Session::state)
  // relay state
  std::vector<uint32_t> partners;  // local indices
  std::vector<uint32_t> seqTo;     // next sequence per partner
  uint32_t nextPartner = 0;
  std::vector<std::pair<uint32_t, uint32_t>> expect;  // sender global index → next expected sequence
  uint32_t inflight = 0;
  int64_t lastProgress = 0;
};

struct Room {
  std::string name;
  std::vector<uint32_t> members;  // local indices
};

class Worker;

class ConnSession final : public Session {
 public:
  ConnSession(Worker& w, Conn& c) : w_(w), c_(c) {}
  void sendText(std::string_view text) override;
  void established(std::string_view selfId) override;
  void setupFailed(std::string_view reason) override;
  void relayed(std::string_view text) override;
  void serverError(std::string_view code) override;
  void bye(std::string_view reason) override;
  void serverLimit(std::string_view name, int64_t value) override;
  bool wantsJoin() const override;
  bool isEstablished() const override { return c_.state == ConnState::kEstablished; }
  const std::string& room() const override;
  const std::string& name() const override;
  std::string& state() override { return c_.protoState; }

 private:
  Worker& w_;
  Conn& c_;
  mutable std::string name_;
};

class Worker {
 public:
  Worker(int id, const Options& o, const Protocol& proto, Timeline& tl, std::vector<uint32_t> roomIds)
      : id_(id), o_(o), proto_(proto), tl_(tl),
        rng_(0x9E3779B97F4A7C15ull ^ (uint64_t(id + 1) * 0x1234567ull) ^ uint64_t(nowNs())) {
    // Rooms r*K .. r*K+K-1 (clamped to clients) for each assigned room id r.
    size_t total = 0;
    for (uint32_t r : roomIds) {
      const uint32_t first = r * uint32_t(o.roomSize);
      const uint32_t last = std::min<uint32_t>(first + uint32_t(o.roomSize), uint32_t(o.clients));
      total += last - first;
    }
    conns_.resize(total);
    rooms_.reserve(roomIds.size());
    size_t li = 0;
    for (uint32_t r : roomIds) {
      Room room;
      room.name = o.roomPrefix + "r" + std::to_string(r);
      const uint32_t first = r * uint32_t(o.roomSize);
      const uint32_t last = std::min<uint32_t>(first + uint32_t(o.roomSize), uint32_t(o.clients));
      for (uint32_t g = first; g < last; ++g) {
        conns_[li].global = g;
        conns_[li].localRoom = uint32_t(rooms_.size());
        room.members.push_back(uint32_t(li));
        ++li;
      }
      rooms_.push_back(std::move(room));
    }
    pendingLimit_ = std::max(1, (o.rampConcurrency + o.threads - 1) / o.threads);
    scratch_.resize(256 * 1024);
    stampTemplate_.assign(size_t(std::max<int>(o.payloadBytes, int(kStampLen))), 'x');
    std::memcpy(stampTemplate_.data(), kMarker, kMarkerLen);
  }

  void run();
  const Stats& stats() const { return stats_; }
  uint32_t settled() const { return settled_.load(std::memory_order_relaxed); }
  uint32_t open() const { return open_.load(std::memory_order_relaxed); }
  size_t size() const { return conns_.size(); }

  // Called by ConnSession.
  void sendText(Conn& c, std::string_view text) {
    appendFrame(c.out, Opcode::kText, text, uint32_t(nextRandom()));
    markDirty(c);
  }
  void onEstablished(Conn& c, std::string_view selfId);
  void onSetupFailed(Conn& c, std::string_view reason) { fail(c, std::string(reason)); }
  void onRelayed(Conn& c, std::string_view text);
  void onServerError(std::string_view code) { ++stats_.serverErrors[std::string(code)]; }
  void onBye(Conn& c, std::string_view reason) { ++stats_.byeReasons[std::string(reason.empty() ? "?" : reason)]; }
  void onServerLimit(std::string_view name, int64_t v) {
    auto it = stats_.serverLimits.find(std::string(name));
    if (it == stats_.serverLimits.end()) stats_.serverLimits.emplace(std::string(name), v);
  }
  const Options& options() const { return o_; }
  const std::string& roomName(const Conn& c) const { return rooms_[c.localRoom].name; }

 private:
  uint64_t nextRandom() {  // xorshift64*
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 0x2545F4914F6CDD1Dull;
  }

  void markDirty(Conn& c) {
    if (!c.dirty && c.fd >= 0) {
      c.dirty = true;
      dirty_.push_back(uint32_t(&c - conns_.data()));
    }
  }

  void startConnect(Conn& c);
  void onEvent(Conn& c, uint32_t events);
  void onConnected(Conn& c);
  void readAll(Conn& c);
  size_t consume(Conn& c, const char* data, size_t len);
  size_t consumeHttp(Conn& c, const char* data, size_t len);
  size_t consumeFrames(Conn& c, const char* data, size_t len);
  void flush(Conn& c);
  void flushDirty();
  void closeFd(Conn& c);
  void fail(Conn& c, std::string reason);
  void drop(Conn& c, std::string reason);
  void rampUp(int64_t now);
  void checkTimeouts(int64_t now);
  void beginTraffic(int64_t now);
  void pacedSends(int64_t now);
  void windowSends(int64_t now);
  void sendOne(Conn& c, int64_t now);
  void beginClosing();
  bool sending(int64_t now) const { return now >= trafficStart_ && now < measureEnd_; }
  bool measured(int64_t ts) const { return ts >= measureStart_ && ts < measureEnd_; }
  int localIndexOf(uint32_t global) const;

  int id_;
  const Options& o_;
  const Protocol& proto_;
  Timeline& tl_;
  uint64_t rng_;
  int ep_ = -1;
  int timerFd_ = -1;
  std::vector<Conn> conns_;
  std::vector<Room> rooms_;
  std::vector<uint32_t> dirty_;
  std::vector<uint32_t> pending_;  // local indices with a handshake in progress
  std::vector<uint32_t> senders_;  // local indices that have partners
  std::vector<uint32_t> windowQueue_;
  std::string scratch_;
  std::string stampTemplate_;
  std::string encodeBuf_;
  size_t nextToConnect_ = 0;
  int pendingLimit_ = 1;
  double connectTokens_ = 0;
  int64_t lastRamp_ = 0;
  int64_t lastTimeoutCheck_ = 0;
  bool trafficBegun_ = false;
  int64_t trafficStart_ = INT64_MAX, measureStart_ = INT64_MAX, measureEnd_ = INT64_MAX;
  double threadRate_ = 0;  // msgs/s of this worker
  uint64_t scheduled_ = 0;
  uint32_t senderCursor_ = 0;
  std::atomic<uint32_t> settled_{0};
  std::atomic<uint32_t> open_{0};
  Stats stats_;
  friend class ConnSession;
};

void ConnSession::sendText(std::string_view text) { w_.sendText(c_, text); }
void ConnSession::established(std::string_view selfId) { w_.onEstablished(c_, selfId); }
void ConnSession::setupFailed(std::string_view reason) { w_.onSetupFailed(c_, reason); }
void ConnSession::relayed(std::string_view text) { w_.onRelayed(c_, text); }
void ConnSession::serverError(std::string_view code) { w_.onServerError(code); }
void ConnSession::bye(std::string_view reason) { w_.onBye(c_, reason); }
void ConnSession::serverLimit(std::string_view name, int64_t value) { w_.onServerLimit(name, value); }
bool ConnSession::wantsJoin() const { return w_.options().join; }
const std::string& ConnSession::room() const { return w_.roomName(c_); }
const std::string& ConnSession::name() const {
  if (name_.empty()) name_ = w_.options().roomPrefix + "c" + std::to_string(c_.global);
  return name_;
}

int Worker::localIndexOf(uint32_t global) const {
  // Rooms are assigned round-robin: room r goes to worker r % T as its (r / T)-th local room.
  const uint32_t k = uint32_t(o_.roomSize);
  const uint32_t r = global / k;
  if (int(r % uint32_t(o_.threads)) != id_) return -1;
  const uint32_t lr = r / uint32_t(o_.threads);
  if (lr >= rooms_.size()) return -1;
  const uint32_t off = global - r * k;
  const auto& m = rooms_[lr].members;
  if (off >= m.size()) return -1;
  return int(m[off]);
}

void Worker::startConnect(Conn& c) {
  c.startedAt = nowNs();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(c, std::string("socket:") + strerrorname_np(errno));
    return;
  }
  c.fd = fd;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!o_.sourceIps.empty()) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr = o_.sourceIps[c.global % o_.sourceIps.size()];
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      fail(c, std::string("bind:") + strerrorname_np(errno));
      return;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(o_.port));
  inet_pton(AF_INET, o_.host.c_str(), &addr.sin_addr);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &c;
  if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    fail(c, std::string("epoll_ctl:") + strerrorname_np(errno));
    return;
  }
  c.state = ConnState::kConnecting;
  pending_.push_back(uint32_t(&c - conns_.data()));
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno != EINPROGRESS) {
    fail(c, std::string("connect:") + strerrorname_np(errno));
    return;
  }
  // Completion (even an immediate one) is reported by EPOLLOUT.
}

void Worker::onConnected(Conn& c) {
  uint8_t key[16];
  const uint64_t a = nextRandom(), b = nextRandom();
  std::memcpy(key, &a, 8);
  std::memcpy(key + 8, &b, 8);
  c.wsKey = base64(key, 16);
  ConnSession s(*this, c);
  std::string req = "GET ";
  req.append(proto_.requestTarget(o_.path, s));
  req.append(" HTTP/1.1\r\nHost: ").append(o_.host).append(":").append(std::to_string(o_.port));
  req.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ").append(c.wsKey);
  req.append("\r\nSec-WebSocket-Version: 13\r\nUser-Agent: kaiwa-loadgen\r\n\r\n");
  c.out.append(req);
  c.state = ConnState::kUpgrading;
  markDirty(c);
}

void Worker::onEvent(Conn& c, uint32_t events) {
  if (c.fd < 0) return;
  if (c.state == ConnState::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      fail(c, std::string("connect:") + strerrorname_np(err));
      return;
    }
    onConnected(c);
    return;  // the request goes out in flushDirty(); the response triggers EPOLLIN later
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readAll(c);
  if (c.fd >= 0 && (events & EPOLLOUT) && c.outOff < c.out.size()) flush(c);
}

void Worker::readAll(Conn& c) {
  // Edge-triggered: read until EAGAIN. Bounded by the socket's receive queue and an iteration cap.
  for (int iter = 0; iter < 4096 && c.fd >= 0; ++iter) {
    const ssize_t n = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
    if (n > 0) {
      stats_.bytesIn += uint64_t(n);
      if (c.in.empty()) {
        const size_t used = consume(c, scratch_.data(), size_t(n));
        if (c.fd >= 0 && used < size_t(n)) c.in.assign(scratch_.data() + used, size_t(n) - used);
      } else {
        c.in.append(scratch_.data(), size_t(n));
        const size_t used = consume(c, c.in.data(), c.in.size());
        if (c.fd >= 0) c.in.erase(0, used);
      }
      // A short read drained the socket: any later data (or FIN) raises a new edge, so skip the EAGAIN read.
      if (size_t(n) < scratch_.size()) return;
      continue;
    }
    if (n == 0) {
      if (c.state == ConnState::kClosing) {
        ++stats_.closedCleanly;
        closeFd(c);
      } else if (c.state == ConnState::kEstablished) {
        drop(c, "eof");
      } else {
        fail(c, "eof-during-setup");
      }
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    const std::string why = std::string("recv:") + strerrorname_np(errno);
    if (c.state == ConnState::kClosing) {
      closeFd(c);
    } else if (c.state == ConnState::kEstablished) {
      drop(c, why);
    } else {
      fail(c, why);
    }
    return;
  }
}

size_t Worker::consume(Conn& c, const char* data, size_t len) {
  size_t used = 0;
  if (c.state == ConnState::kUpgrading) {
    used = consumeHttp(c, data, len);
    if (c.fd < 0 || c.state == ConnState::kUpgrading) return used;
  }
  return used + consumeFrames(c, data + used, len - used);
}

size_t Worker::consumeHttp(Conn& c, const char* data, size_t len) {
  const std::string_view v(data, len);
  const size_t end = v.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (len > 16384) fail(c, "http-header-too-large");
    return 0;  // wait for more (the caller keeps the bytes in c.in)
  }
  const std::string_view head = v.substr(0, end + 2);
  if (head.rfind("HTTP/1.1 101", 0) != 0) {
    const size_t sp = head.find(' ');
    fail(c, "http-" + std::string(head.substr(sp == std::string_view::npos ? 0 : sp + 1, 3)));
    return len;
  }
  std::string_view accept;
  size_t pos = head.find("\r\n") + 2;
  while (pos < head.size()) {
    const size_t eol = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (auto& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (name == "sec-websocket-accept") {
      accept = line.substr(colon + 1);
      while (!accept.empty() && accept.front() == ' ') accept.remove_prefix(1);
      while (!accept.empty() && accept.back() == ' ') accept.remove_suffix(1);
    }
  }
  if (accept != websocketAccept(c.wsKey)) {
    fail(c, "bad-sec-websocket-accept");
    return len;
  }
  c.wsKey.clear();
  c.wsKey.shrink_to_fit();
  c.state = ConnState::kOpen;
  ConnSession s(*this, c);
  proto_.opened(s);
  return end + 4;
}

size_t Worker::consumeFrames(Conn& c, const char* data, size_t len) {
  const uint64_t fragBefore = c.decoder.fragmentedMessages();
  const size_t used = c.decoder.parse(
      data, len, o_.maxMessage,
      [&](Opcode op, std::string_view payload) {
        if (op == Opcode::kText) {
          ConnSession s(*this, c);
          proto_.text(s, payload);
        } else {
          ++stats_.binaryFrames;
        }
        return c.fd >= 0;
      },
      [&](Opcode op, std::string_view payload) {
        if (op == Opcode::kPing) {
          ++stats_.pings;
          appendFrame(c.out, Opcode::kPong, payload, uint32_t(nextRandom()));
          markDirty(c);
        } else if (op == Opcode::kClose) {
          if (c.state == ConnState::kClosing) {
            ++stats_.closedCleanly;
            closeFd(c);
            return false;
          }
          uint16_t code = 0;
          if (payload.size() >= 2) code = uint16_t(uint8_t(payload[0]) << 8 | uint8_t(payload[1]));
          appendFrame(c.out, Opcode::kClose, payload.substr(0, 2), uint32_t(nextRandom()));
          flush(c);
          const std::string why = "server-close-" + std::to_string(code);
          if (c.state == ConnState::kEstablished) {
            drop(c, why);
          } else {
            fail(c, why);
          }
          return false;
        }
        return c.fd >= 0;
      });
  stats_.fragmentedMessages += c.decoder.fragmentedMessages() - fragBefore;
  if (c.fd >= 0 && c.decoder.error() != FrameDecoder::Error::kNone) {
    const std::string why = FrameDecoder::errorName(c.decoder.error());
    if (c.state == ConnState::kEstablished) {
      drop(c, why);
    } else {
      fail(c, why);
    }
    return len;
  }
  return used;
}

void Worker::flush(Conn& c) {
  while (c.fd >= 0 && c.outOff < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.outOff, c.out.size() - c.outOff, MSG_NOSIGNAL);
    if (n > 0) {
      c.outOff += size_t(n);
      stats_.bytesOut += uint64_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT (edge) will call us again
    const std::string why = std::string("send:") + strerrorname_np(errno);
    if (c.state == ConnState::kClosing) {
      closeFd(c);
    } else if (c.state == ConnState::kEstablished) {
      drop(c, why);
    } else {
      fail(c, why);
    }
    return;
  }
  if (c.outOff >= c.out.size()) {
    c.out.clear();
    c.outOff = 0;
    if (c.out.capacity() > 65536) c.out.shrink_to_fit();
  }
}

void Worker::flushDirty() {
  // One write per connection per loop turn: everything queued this turn goes out together.
  for (size_t i = 0; i < dirty_.size(); ++i) {
    Conn& c = conns_[dirty_[i]];
    c.dirty = false;
    if (c.fd >= 0 && c.state != ConnState::kConnecting) flush(c);
  }
  dirty_.clear();
}

void Worker::closeFd(Conn& c) {
  if (c.fd < 0) return;
  ::close(c.fd);  // also removes it from the epoll set
  c.fd = -1;
  if (c.state == ConnState::kEstablished || c.state == ConnState::kClosing) {
    open_.fetch_sub(1, std::memory_order_relaxed);
  }
  c.state = ConnState::kClosed;
  c.in.clear();
  c.in.shrink_to_fit();
  c.out.clear();
  c.out.shrink_to_fit();
  c.outOff = 0;
}

void Worker::fail(Conn& c, std::string reason) {
  if (c.state == ConnState::kClosed) return;
  ++stats_.failed;
  ++stats_.failReasons[reason];
  closeFd(c);
  c.state = ConnState::kClosed;
  settled_.fetch_add(1, std::memory_order_relaxed);
}

void Worker::drop(Conn& c, std::string reason) {
  ++stats_.dropped;
  ++stats_.dropReasons[reason];
  closeFd(c);
}

void Worker::onEstablished(Conn& c, std::string_view selfId) {
  if (c.state != ConnState::kOpen) return;
  c.peerId.assign(selfId);
  c.state = ConnState::kEstablished;
  ++stats_.established;
  stats_.connectTime.record(uint64_t(nowNs() - c.startedAt));
  open_.fetch_add(1, std::memory_order_relaxed);
  settled_.fetch_add(1, std::memory_order_relaxed);
}

void Worker::rampUp(int64_t now) {
  // Drop finished handshakes from the pending list.
  pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                [&](uint32_t i) {
                                  const auto st = conns_[i].state;
                                  return st != ConnState::kConnecting && st != ConnState::kUpgrading &&
                                         st != ConnState::kOpen;
                                }),
                 pending_.end());
  if (nextToConnect_ >= conns_.size()) return;
  if (o_.connectRate > 0) {
    const double perThread = o_.connectRate / o_.threads;
    if (lastRamp_ == 0) lastRamp_ = now;
    connectTokens_ =
        std::min(connectTokens_ + perThread * double(now - lastRamp_) / kNsPerSec, std::max(1.0, perThread / 100));
    lastRamp_ = now;
  }
  while (nextToConnect_ < conns_.size() && int(pending_.size()) < pendingLimit_) {
    if (o_.connectRate > 0) {
      if (connectTokens_ < 1) break;
      connectTokens_ -= 1;
    }
    startConnect(conns_[nextToConnect_++]);
  }
}

void Worker::checkTimeouts(int64_t now) {
  const int64_t limit = int64_t(o_.handshakeTimeout * kNsPerSec);
  for (uint32_t i : pending_) {
    Conn& c = conns_[i];
    if ((c.state == ConnState::kConnecting || c.state == ConnState::kUpgrading || c.state == ConnState::kOpen) &&
        now - c.startedAt > limit) {
      fail(c, c.state == ConnState::kConnecting  ? "timeout-connect"
              : c.state == ConnState::kUpgrading ? "timeout-upgrade"
                                                 : "timeout-join");
    }
  }
}

void Worker::beginTraffic(int64_t now) {
  trafficBegun_ = true;
  trafficStart_ = tl_.trafficStart.load();
  measureStart_ = tl_.measureStart.load();
  measureEnd_ = tl_.measureEnd.load();
  // Whatever is not set up by now will not be.
  for (auto& c : conns_) {
    if (c.state == ConnState::kIdle) {
      c.state = ConnState::kOpen;  // so fail() counts it
      fail(c, "not-started");
    } else if (c.state == ConnState::kConnecting || c.state == ConnState::kUpgrading || c.state == ConnState::kOpen) {
      fail(c, "setup-timeout");
    }
  }
  nextToConnect_ = conns_.size();
  if (o_.mode != "relay") return;
  for (auto& room : rooms_) {
    for (uint32_t i : room.members) {
      Conn& c = conns_[i];
      if (c.state != ConnState::kEstablished) continue;
      for (uint32_t j : room.members) {
        if (j != i && conns_[j].state == ConnState::kEstablished) c.partners.push_back(j);
      }
      c.seqTo.assign(c.partners.size(), 0);
      c.expect.reserve(c.partners.size());
      c.lastProgress = now;
      if (c.partners.empty()) {
        ++stats_.noPartner;
      } else {
        senders_.push_back(i);
      }
    }
  }
  // Each client sends at rate/clients (configured clients: failed ones lower the achieved total, which the
  // report shows as sent/s).
  threadRate_ = o_.rate * double(senders_.size()) / double(o_.clients);
  if (o_.rate <= 0) {
    for (uint32_t i : senders_) {
      conns_[i].inWindowQueue = true;
      windowQueue_.push_back(i);
    }
  }
}

void Worker::sendOne(Conn& c, int64_t now) {
  if (c.out.size() - c.outOff > 256 * 1024) {  // the server is not reading from us: do not queue without bound
    ++stats_.sendBlocked;
    return;
  }
  const size_t p = c.nextPartner++ % c.partners.size();
  const Conn& to = conns_[c.partners[p]];
  const uint32_t seq = c.seqTo[p]++;
  char* d = stampTemplate_.data() + kMarkerLen;
  writeHex(d, uint64_t(now), 16);
  writeHex(d + 16, seq, 8);
  writeHex(d + 24, c.global, 8);
  encodeBuf_.clear();
  proto_.encodeRelay(encodeBuf_, to.peerId, stampTemplate_);
  appendFrame(c.out, Opcode::kText, encodeBuf_, uint32_t(nextRandom()));
  markDirty(c);
  ++stats_.sentTotal;
  if (measured(now)) ++stats_.sentMeasured;
  ++c.inflight;
}

void Worker::pacedSends(int64_t now) {
  if (senders_.empty() || !sending(now)) return;
  const double elapsed = double(std::min(now, measureEnd_) - trafficStart_) / kNsPerSec;
  const uint64_t target = uint64_t(elapsed * threadRate_);
  if (target <= scheduled_) return;
  uint64_t due = target - scheduled_;
  // Never burst more than 20 ms worth (or 64): falling further behind is the generator's limit, counted as
  // slip.
  const uint64_t maxBurst = std::max<uint64_t>(64, uint64_t(threadRate_ * 0.02));
  if (due > maxBurst) {
    stats_.scheduleSlip += due - maxBurst;
    scheduled_ += due - maxBurst;
    due = maxBurst;
  }
  for (uint64_t k = 0; k < due; ++k) {
    Conn& c = conns_[senders_[senderCursor_++ % senders_.size()]];
    ++scheduled_;
    if (c.fd < 0 || c.state != ConnState::kEstablished) continue;
    sendOne(c, now);
  }
}

void Worker::windowSends(int64_t now) {
  if (o_.rate > 0) return;
  if (!sending(now)) {
    if (now < trafficStart_) return;  // keep the queue until traffic starts
    for (uint32_t i : windowQueue_) conns_[i].inWindowQueue = false;
    windowQueue_.clear();
    return;
  }
  for (size_t q = 0; q < windowQueue_.size(); ++q) {
    Conn& c = conns_[windowQueue_[q]];
    c.inWindowQueue = false;
    if (c.fd < 0 || c.state != ConnState::kEstablished) continue;
    while (c.inflight < uint32_t(o_.window) && c.fd >= 0) {
      const uint64_t before = stats_.sendBlocked;
      sendOne(c, now);
      if (stats_.sendBlocked != before) break;
    }
  }
  windowQueue_.clear();
  // Messages dropped by the server (rate limit, loss) would stall a window forever: give up on them.
  if (now - lastTimeoutCheck_ > 100 * 1000000LL) {
    lastTimeoutCheck_ = now;
    const int64_t limit = int64_t(o_.windowTimeout * kNsPerSec);
    for (uint32_t i : senders_) {
      Conn& c = conns_[i];
      if (c.inflight > 0 && now - c.lastProgress > limit && c.fd >= 0) {
        ++stats_.windowStalls;
        c.inflight = 0;
        c.lastProgress = now;
        if (!c.inWindowQueue) {
          c.inWindowQueue = true;
          windowQueue_.push_back(i);
        }
      }
    }
  }
}

void Worker::onRelayed(Conn& c, std::string_view text) {
  const int64_t now = nowNs();
  const size_t at = text.find(std::string_view(kMarker, kMarkerLen));
  if (at == std::string_view::npos || text.size() - at < kStampLen) {
    ++stats_.unparsed;
    return;
  }
  const char* p = text.data() + at + kMarkerLen;
  bool ok = true;
  const auto ts = int64_t(parseHex(p, 16, ok));
  const auto seq = uint32_t(parseHex(p + 16, 8, ok));
  const auto sender = uint32_t(parseHex(p + 24, 8, ok));
  if (!ok) {
    ++stats_.unparsed;
    return;
  }
  ++stats_.recvTotal;
  if (now >= measureStart_ && now < measureEnd_) ++stats_.recvInWindow;
  if (measured(ts)) {
    ++stats_.recvMeasured;
    stats_.latency.record(uint64_t(std::max<int64_t>(0, now - ts)));
  }
  const int si = localIndexOf(sender);
  if (si < 0 || conns_[size_t(si)].localRoom != c.localRoom) {
    ++stats_.foreign;  // not from a member of this client's room: misrouted
    return;
  }
  auto it = std::find_if(c.expect.begin(), c.expect.end(), [&](auto& e) { return e.first == sender; });
  if (it == c.expect.end()) {
    c.expect.emplace_back(sender, 0);
    it = c.expect.end() - 1;
  }
  if (seq == it->second) {
    ++it->second;
  } else if (seq > it->second) {
    stats_.gapMessages += seq - it->second;  // skipped: lost, or overtaken
    it->second = seq + 1;
  } else {
    ++stats_.outOfOrder;  // older than one already seen: reordered or duplicated
  }
  Conn& s = conns_[size_t(si)];
  if (s.inflight > 0) --s.inflight;
  s.lastProgress = now;
  if (o_.rate <= 0 && !s.inWindowQueue) {
    s.inWindowQueue = true;
    windowQueue_.push_back(uint32_t(si));
  }
}

void Worker::beginClosing() {
  for (auto& c : conns_) {
    if (c.state == ConnState::kEstablished) stats_.heldAtEnd += 1;
    if (c.fd < 0) continue;
    if (c.state == ConnState::kEstablished) {
      ConnSession s(*this, c);
      proto_.closing(s);
      c.state = ConnState::kClosing;
      const char code[2] = {char(0x03), char(0xE8)};  // 1000 normal closure
      appendFrame(c.out, Opcode::kClose, std::string_view(code, 2), uint32_t(nextRandom()));
      flush(c);
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_WR);
    } else {
      fail(c, "closing-before-established");
    }
  }
}

void Worker::run() {
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  timerFd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  const int64_t tickNs = std::max<int64_t>(100000, int64_t(o_.tickMs * 1e6));
  itimerspec its{};
  its.it_interval.tv_sec = tickNs / kNsPerSec;
  its.it_interval.tv_nsec = tickNs % kNsPerSec;
  its.it_value = its.it_interval;
  ::timerfd_settime(timerFd_, 0, &its, nullptr);
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.ptr = nullptr;
  ::epoll_ctl(ep_, EPOLL_CTL_ADD, timerFd_, &tev);

  std::vector<epoll_event> events(1024);
  bool closing = false;
  int64_t closeDeadline = 0;
  while (true) {
    if (tl_.abort.load(std::memory_order_relaxed)) break;
    const int phase = tl_.phase.load(std::memory_order_acquire);
    const int64_t now0 = nowNs();
    if (phase >= kTraffic && !trafficBegun_) beginTraffic(now0);
    if (phase == kClosing && !closing) {
      closing = true;
      closeDeadline = now0 + int64_t(o_.closeWait * kNsPerSec);
      beginClosing();
    }
    if (closing) {
      if (std::all_of(conns_.begin(), conns_.end(), [](const Conn& c) { return c.fd < 0; }) || now0 >= closeDeadline) {
        break;
      }
    }
    const int n = ::epoll_wait(ep_, events.data(), int(events.size()), 50);
    const int64_t now = nowNs();
    bool tick = false;
    for (int i = 0; i < n; ++i) {
      if (events[size_t(i)].data.ptr == nullptr) {
        uint64_t expirations;
        while (::read(timerFd_, &expirations, sizeof expirations) > 0) {
        }
        tick = true;
        continue;
      }
      onEvent(*static_cast<Conn*>(events[size_t(i)].data.ptr), events[size_t(i)].events);
    }
    if (!trafficBegun_ && (tick || n == 0)) {
      rampUp(now);
      if (now - lastTimeoutCheck_ > 200 * 1000000LL) {
        lastTimeoutCheck_ = now;
        checkTimeouts(now);
      }
    } else if (trafficBegun_ && !closing && o_.mode == "relay") {
      if (o_.rate > 0) {
        if (tick) pacedSends(now);
      } else {
        windowSends(now);
      }
    }
    if (!trafficBegun_ && n > 0) rampUp(now);  // refill handshake slots freed this turn
    flushDirty();
  }
  for (auto& c : conns_) {
    if (c.fd >= 0) {
      if (c.state == ConnState::kClosing || c.state == ConnState::kEstablished) {
        closeFd(c);
      } else {
        fail(c, "unfinished");
      }
    }
  }
  ::close(timerFd_);
  ::close(ep_);
}

// ---------------------------------------------------------------------------------------------------------
// Server sampling (/proc)

struct ProcSample {
  bool ok = false;
  double cpuSec = 0;  // utime + stime
  long rssKb = 0, hwmKb = 0;
};

ProcSample sampleProc(int pid) {
  ProcSample s;
  if (pid <= 0) return s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return s;
  const size_t rp = line.rfind(')');
  if (rp == std::string::npos) return s;
  std::istringstream in(line.substr(rp + 2));
  std::string f;
  // Fields after "pid (comm)": state(3) ... utime(14) stime(15).
  unsigned long long utime = 0, stime = 0;
  for (int field = 3; field <= 15 && (in >> f); ++field) {
    if (field == 14) utime = std::stoull(f);
    if (field == 15) stime = std::stoull(f);
  }
  s.cpuSec = double(utime + stime) / double(sysconf(_SC_CLK_TCK));
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rssKb = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) s.hwmKb = std::atol(line.c_str() + 6);
  }
  s.ok = true;
  return s;
}

// CPU time (s) all cores spent busy since boot, from the first line of /proc/stat.
double machineBusySec() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) || cpu != "cpu") return 0;
  return double(user + nice + system + irq + softirq + steal) / double(sysconf(_SC_CLK_TCK));
}

double selfCpuSec() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void sleepUntil(int64_t t, const Timeline& tl) {
  while (!tl.abort.load()) {
    const int64_t now = nowNs();
    if (now >= t) return;
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(t - now, 50000000)));
  }
}

std::string jsonEscape(std::string_view s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      o.push_back('\\');
      o.push_back(ch);
    } else if (uint8_t(ch) < 0x20) {
      o.push_back('?');
    } else {
      o.push_back(ch);
    }
  }
  return o;
}

std::string jsonMap(const std::map<std::string, uint64_t>& m) {
  std::string o = "{";
  for (auto& [k, v] : m) {
    if (o.size() > 1) o.push_back(',');
    o.append("\"").append(jsonEscape(k)).append("\":").append(std::to_string(v));
  }
  return o + "}";
}

std::string textMap(const std::map<std::string, uint64_t>& m) {
  std::string o;
  for (auto& [k, v] : m) o.append(o.empty() ? "" : ", ").append(k).append("=").append(std::to_string(v));
  return o.empty() ? "-" : o;
}

// ---------------------------------------------------------------------------------------------------------
// Self test (codec, scanner, histogram): `kaiwa-loadgen --self-test`, also registered with ctest.

int selfTest() {
  int failures = 0, passes = 0;
  auto check = [&](bool cond, const char* what) {
    if (cond) {
      ++passes;
    } else {
      ++failures;
      std::printf("FAIL: %s\n", what);
    }
  };
  {
    const auto d = sha1("abc");
    char hex[41];
    for (int i = 0; i < 20; ++i) std::snprintf(hex + 2 * i, 3, "%02x", d[size_t(i)]);
    check(std::string(hex) == "a9993e364706816aba3e25717850c26c9cd0d89d", "sha1(abc)");
    check(websocketAccept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC 6455 accept");
    const uint8_t b[] = {'f', 'o', 'o', 'b', 'a'};
    check(base64(b, 5) == "Zm9vYmE=" && base64(b, 4) == "Zm9vYg==" && base64(b, 3) == "Zm9v", "base64");
  }
  {
    // Masked client frames of every length class, unmasked by hand.
    for (size_t n : {size_t(0), size_t(5), size_t(125), size_t(126), size_t(65535), size_t(65536), size_t(70000)}) {
      std::string payload(n, 'a');
      for (size_t i = 0; i < n; ++i) payload[i] = char('a' + i % 26);
      std::string out;
      appendFrame(out, Opcode::kText, payload, 0x11223344u);
      const auto* p = reinterpret_cast<const uint8_t*>(out.data());
      size_t hl = 2;
      uint64_t len = p[1] & 0x7f;
      if (len == 126) {
        len = uint64_t(p[2]) << 8 | p[3];
        hl = 4;
      } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = len << 8 | p[2 + i];
        hl = 10;
      }
      bool ok = (p[0] == 0x81) && (p[1] & 0x80) && len == n && out.size() == hl + 4 + n;
      for (size_t i = 0; ok && i < n; ++i) ok = char(p[hl + 4 + i] ^ p[hl + (i & 3)]) == payload[i];
      check(ok, "masked frame encoding");
    }
  }
  {
    // Server frames: fragmented text with an interleaved ping, 16- and 64-bit lengths, split at every byte.
    auto serverFrame = [](uint8_t b0, std::string_view payload) {
      std::string f;
      f.push_back(char(b0));
      const size_t n = payload.size();
      if (n < 126) {
        f.push_back(char(n));
      } else if (n <= 0xffff) {
        f.push_back(char(126));
        f.push_back(char(n >> 8));
        f.push_back(char(n & 0xff));
      } else {
        f.push_back(char(127));
        for (int i = 7; i >= 0; --i) f.push_back(char((uint64_t(n) >> (8 * i)) & 0xff));
      }
      f.append(payload);
      return f;
    };
    const std::string big(70000, 'z');
    const std::string mid(300, 'm');
    std::string stream = serverFrame(0x01, "hel") + serverFrame(0x89, "pp") + serverFrame(0x00, "lo ") +
                         serverFrame(0x80, "world") + serverFrame(0x81, mid) + serverFrame(0x81, big) +
                         serverFrame(0x8A, "") + serverFrame(0x88, "\x03\xe8");
    for (size_t split : {size_t(1), size_t(2), size_t(3), size_t(7), size_t(1000), stream.size()}) {
      FrameDecoder dec;
      std::vector<std::string> msgs, ctrl;
      std::string buf;
      for (size_t off = 0; off < stream.size(); off += split) {
        buf.append(stream.substr(off, split));
        const size_t used = dec.parse(
            buf.data(), buf.size(), 1u << 20,
            [&](Opcode, std::string_view p) {
              msgs.emplace_back(p);
              return true;
            },
            [&](Opcode op, std::string_view p) {
              ctrl.push_back(std::to_string(int(op)) + ":" + std::string(p));
              return true;
            });
        buf.erase(0, used);
      }
      check(dec.error() == FrameDecoder::Error::kNone && buf.empty(), "decoder: no error, all consumed");
      check(msgs.size() == 3 && msgs[0] == "hello world" && msgs[1] == mid && msgs[2] == big,
            "decoder: messages reassembled");
      check(ctrl.size() == 3 && ctrl[0] == "9:pp" && ctrl[1] == "10:" && ctrl[2] == "8:\x03\xe8",
            "decoder: control frames");
    }
    FrameDecoder dec;
    const std::string masked = "\x81\x85\x01\x02\x03\x04hello";
    dec.parse(
        masked.data(), masked.size(), 1024, [](Opcode, std::string_view) { return true; },
        [](Opcode, std::string_view) { return true; });
    check(dec.error() == FrameDecoder::Error::kMaskedFrame, "decoder: masked server frame refused");
    FrameDecoder dec2;
    const std::string tooBig = serverFrame(0x81, std::string(2000, 'q'));
    dec2.parse(
        tooBig.data(), tooBig.size(), 1024, [](Opcode, std::string_view) { return true; },
        [](Opcode, std::string_view) { return true; });
    check(dec2.error() == FrameDecoder::Error::kTooLarge, "decoder: too large refused");
  }
  {
    const std::string_view m = R"({"v":1, "type" : "ok","re":1,"peer":"p7KxQ2mZ","peers":[{"id":"a","type":"x"}]})";
    check(json::stringField(m, "type") == "ok", "json type");
    int64_t re = 0;
    check(json::intField(m, "re", re) && re == 1, "json re");
    check(json::stringField(m, "peer") == "p7KxQ2mZ", "json peer (not peers)");
    check(json::stringField(R"({"a":"type","type":"message"})", "type") == "message", "json key vs value");
  }
  {
    // The socketio adapter: open → connect → join; user-joined → hello answer + established; pings; relays.
    struct Fake final : Session {
      std::vector<std::string> sent, relays, errors;
      std::string self, st, roomName = "r0", clientName = "c0";
      bool est = false, join = true;
      void sendText(std::string_view t) override { sent.emplace_back(t); }
      void established(std::string_view id) override {
        est = true;
        self.assign(id);
      }
      void setupFailed(std::string_view r) override { errors.emplace_back(r); }
      void relayed(std::string_view t) override { relays.emplace_back(t); }
      void serverError(std::string_view c) override { errors.emplace_back(c); }
      void bye(std::string_view) override {}
      void serverLimit(std::string_view, int64_t) override {}
      bool wantsJoin() const override { return join; }
      bool isEstablished() const override { return est; }
      const std::string& room() const override { return roomName; }
      const std::string& name() const override { return clientName; }
      std::string& state() override { return st; }
    };
    const auto sio = makeProtocol("socketio");
    Fake a, b;
    sio->text(a, R"(0{"sid":"eio1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000})");
    check(a.sent.size() == 1 && a.sent[0] == "40" && !a.est, "socketio: open → 40");
    sio->text(a, R"(40{"sid":"sockA"})");
    check(a.sent.size() == 2 && a.sent[1] == R"(42["join-room","r0"])" && !a.est, "socketio: connect → join");
    sio->text(a, R"(42["user-joined","sockB"])");
    check(a.est && a.self == "sockA" && a.sent.size() == 3 &&
              a.sent[2] == R"(42["answer",{"to":"sockB","answer":{"type":"answer","sdp":"kwb-hello"}}])",
          "socketio: user-joined → hello + established");
    sio->text(b, "0{}");
    sio->text(b, R"(40{"sid":"sockB"})");
    sio->text(b, R"(42["answer",{"from":"sockA","answer":{"type":"answer","sdp":"kwb-hello"}}])");
    check(b.est && b.self == "sockB", "socketio: hello answer → established");
    sio->text(b, "2");
    check(b.sent.back() == "3", "socketio: ping → pong");
    std::string out;
    sio->encodeRelay(out, "sockA", "~KWBdata");
    check(out == R"(42["offer",{"to":"sockA","offer":{"type":"offer","sdp":"~KWBdata"}}])", "socketio: relay");
    sio->text(a, R"(42["offer",{"from":"sockB","offer":{"type":"offer","sdp":"~KWBdata"}}])");
    sio->text(a, R"(42["kaiwa:error",{"error":"rate-limited","message":"x","event":"offer"}])");
    check(a.relays.size() == 1 && a.errors.size() == 1 && a.errors[0] == "rate-limited", "socketio: events");
  }
  {
    LatencyHistogram h;
    for (uint64_t v = 1; v <= 100000; ++v) h.record(v * 1000);  // 1 µs .. 100 ms
    const double p50 = double(h.quantile(0.5)), p99 = double(h.quantile(0.99));
    check(std::abs(p50 - 50e6) / 50e6 < 0.02 && std::abs(p99 - 99e6) / 99e6 < 0.02, "histogram quantiles");
    check(h.max() == 100000000 && h.count() == 100000, "histogram max/count");
    bool mono = true;
    for (int i = 1; i < LatencyHistogram::kBuckets; ++i) {
      mono = mono && LatencyHistogram::lowerBound(i) > LatencyHistogram::lowerBound(i - 1) &&
             LatencyHistogram::index(LatencyHistogram::lowerBound(i)) == i;
    }
    check(mono, "histogram bucket bounds");
  }
  std::printf("%d passed, %d failed\n", passes, failures);
  return failures == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------------------

int run(Options& o) {
  auto proto = makeProtocol(o.protocol);
  if (!proto) {
    std::fprintf(stderr, "unknown --protocol %s\n", o.protocol.c_str());
    return 2;
  }
  if (o.path.empty()) o.path = proto->defaultPath();
  if (o.roomPrefix.empty()) o.roomPrefix = "lg" + std::to_string(getpid()) + "-";
  const bool relay = o.mode == "relay";
  if (relay && o.roomSize < 2) {
    std::fprintf(stderr, "relay needs --room-size >= 2\n");
    return 2;
  }

  // Raise the fd limit as far as allowed.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  const uint64_t fdsNeeded = uint64_t(o.clients) + 16 + 4 * uint64_t(o.threads);
  if (rl.rlim_cur != RLIM_INFINITY && fdsNeeded > rl.rlim_cur) {
    std::fprintf(stderr,
                 "warning: %d clients need ~%" PRIu64 " file descriptors but the limit is %" PRIu64
                 " (ulimit -Hn); the rest will fail with EMFILE\n",
                 o.clients, fdsNeeded, uint64_t(rl.rlim_cur));
  }
  if (o.sourceIps.empty() && o.clients > 28000) {
    std::fprintf(stderr,
                 "warning: >28k connections from one source address may exhaust local ports; "
                 "use --source-ips 127.0.0.2,127.0.0.3,...\n");
  }

  signal(SIGPIPE, SIG_IGN);
  const double budget = o.timeout > 0 ? o.timeout : o.setupTimeout + o.warmup + o.duration + o.drain + o.closeWait + 30;
  alarm(unsigned(budget + 30));  // last resort if a thread wedges; normal runs end well before

  Timeline tl;
  const int rooms = (o.clients + o.roomSize - 1) / o.roomSize;
  std::vector<std::vector<uint32_t>> assign(size_t(o.threads));
  for (int r = 0; r < rooms; ++r) assign[size_t(r % o.threads)].push_back(uint32_t(r));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < o.threads; ++t) {
    workers.push_back(std::make_unique<Worker>(t, o, *proto, tl, assign[size_t(t)]));
  }

  const ProcSample serverBefore = sampleProc(o.serverPid);
  const int64_t t0 = nowNs();
  const int64_t hardDeadline = t0 + int64_t(budget * kNsPerSec);
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });

  // Setup: wait until every client is established or failed.
  const int64_t setupDeadline = t0 + int64_t(o.setupTimeout * kNsPerSec);
  int64_t lastPrint = t0;
  while (true) {
    uint32_t settled = 0, open = 0;
    for (auto& w : workers) {
      settled += w->settled();
      open += w->open();
    }
    const int64_t now = nowNs();
    if (settled >= uint32_t(o.clients) || now >= setupDeadline) break;
    if (!o.quiet && now - lastPrint > 2 * kNsPerSec) {
      lastPrint = now;
      std::fprintf(stderr, "[setup %.1fs] established %u, settled %u / %d\n", double(now - t0) / 1e9, open, settled,
                   o.clients);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int64_t setupEnd = nowNs();
  uint32_t openAtSetup = 0;
  for (auto& w : workers) openAtSetup += w->open();
  const ProcSample serverSetup = sampleProc(o.serverPid);

  // Timeline, fixed before anyone uses it.
  const int64_t trafficStart = setupEnd + 20 * 1000000LL;
  const int64_t measureStart = trafficStart + (relay ? int64_t(o.warmup * kNsPerSec) : 0);
  const int64_t measureEnd = measureStart + int64_t(o.duration * kNsPerSec);
  const int64_t closeAt = measureEnd + (relay ? int64_t(o.drain * kNsPerSec) : 0);
  tl.trafficStart.store(trafficStart);
  tl.measureStart.store(measureStart);
  tl.measureEnd.store(measureEnd);
  tl.phase.store(kTraffic, std::memory_order_release);
  if (!o.quiet) {
    std::fprintf(stderr, "[setup done %.2fs] established %u / %d; %s for %.0fs\n", double(setupEnd - t0) / 1e9,
                 openAtSetup, o.clients, relay ? "relaying" : "holding", o.duration);
  }

  sleepUntil(measureStart, tl);
  const ProcSample serverM0 = sampleProc(o.serverPid);
  const double selfM0 = selfCpuSec();
  const double machineM0 = machineBusySec();
  // Progress during the measure window.
  while (nowNs() < measureEnd && nowNs() < hardDeadline) {
    sleepUntil(std::min(measureEnd, nowNs() + 5 * kNsPerSec), tl);
    if (!o.quiet && nowNs() < measureEnd) {
      uint32_t open = 0;
      for (auto& w : workers) open += w->open();
      std::fprintf(stderr, "[%.1fs] open %u\n", double(nowNs() - t0) / 1e9, open);
    }
  }
  const ProcSample serverM1 = sampleProc(o.serverPid);
  const double selfM1 = selfCpuSec();
  const double machineM1 = machineBusySec();
  uint32_t openAtEnd = 0;
  for (auto& w : workers) openAtEnd += w->open();
  sleepUntil(closeAt, tl);
  tl.phase.store(kClosing, std::memory_order_release);

  // Join with a hard deadline (threads end within closeWait; abort stops them otherwise).
  const int64_t joinDeadline = std::min(hardDeadline, nowNs() + int64_t((o.closeWait + 5) * kNsPerSec));
  while (nowNs() < joinDeadline) {
    bool allQuiet = true;
    for (auto& w : workers) allQuiet = allQuiet && w->open() == 0;
    if (allQuiet) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  bool timedOut = false;
  if (nowNs() >= hardDeadline) {
    tl.abort.store(true);
    timedOut = true;
  }
  for (auto& t : threads) t.join();
  const ProcSample serverAfter = sampleProc(o.serverPid);

  Stats st;
  for (auto& w : workers) st.merge(w->stats());

  // ---- report
  const double dur = o.duration;
  const double lat50 = double(st.latency.quantile(0.50)) / 1e3, lat90 = double(st.latency.quantile(0.90)) / 1e3,
               lat99 = double(st.latency.quantile(0.99)) / 1e3, lat999 = double(st.latency.quantile(0.999)) / 1e3,
               latMax = double(st.latency.max()) / 1e3, latMean = st.latency.mean() / 1e3;
  const int64_t lost = int64_t(st.sentMeasured) - int64_t(st.recvMeasured);
  const double relayedPerSec = double(st.recvInWindow) / dur;
  const double sentPerSec = double(st.sentMeasured) / dur;
  const double genCpuPct = 100.0 * (selfM1 - selfM0) / dur;
  // Everything else the machine did during the window (other processes, shared machine): the noise indicator.
  const double othersCpuPct =
      std::max(0.0, 100.0 *
                        ((machineM1 - machineM0) - (selfM1 - selfM0) -
                         ((serverM0.ok && serverM1.ok) ? serverM1.cpuSec - serverM0.cpuSec : 0)) /
                        dur);
  const bool haveServer = serverM0.ok && serverM1.ok;
  const double serverCpuSec = haveServer ? serverM1.cpuSec - serverM0.cpuSec : 0;
  const double serverCpuPct = 100.0 * serverCpuSec / dur;
  const double cpuUsPerMsg = haveServer && st.recvInWindow ? serverCpuSec * 1e6 / double(st.recvInWindow) : 0;
  const long rssHeld = serverM1.ok ? serverM1.rssKb : 0;
  const double rssPerConnKb = (serverBefore.ok && serverM1.ok && openAtEnd > 0)
                                  ? double(serverM1.rssKb - serverBefore.rssKb) / double(openAtEnd)
                                  : 0;
  const int64_t limit = st.serverLimits.count("messagesPerSecond") ? st.serverLimits["messagesPerSecond"] : 0;
  const double perClientRate = o.rate / o.clients;

  std::printf("kaiwa-loadgen %s  protocol=%s url=ws://%s:%d%s threads=%d\n", o.mode.c_str(), o.protocol.c_str(),
              o.host.c_str(), o.port, o.path.c_str(), o.threads);
  std::printf("  connections: %d requested, %" PRIu64
              " established (setup %.2fs, connect+join p50 %.1f ms p99 "
              "%.1f ms), %" PRIu64 " failed [%s]\n",
              o.clients, st.established, double(setupEnd - t0) / 1e9, double(st.connectTime.quantile(0.5)) / 1e6,
              double(st.connectTime.quantile(0.99)) / 1e6, st.failed, textMap(st.failReasons).c_str());
  std::printf("  held: %u open at end of %s (%" PRIu64 " dropped [%s], bye [%s]); %" PRIu64
              " close handshakes completed at the end\n",
              openAtEnd, relay ? "measure window" : "hold", st.dropped, textMap(st.dropReasons).c_str(),
              textMap(st.byeReasons).c_str(), st.closedCleanly);
  if (relay) {
    std::printf("  traffic: room size %d, %d-byte payload, %s, %.0fs measured after %.0fs warm-up\n", o.roomSize,
                o.payloadBytes,
                o.rate > 0 ? ("paced " + std::to_string(int64_t(o.rate)) + " msg/s").c_str()
                           : ("window " + std::to_string(o.window) + "/client").c_str(),
                dur, o.warmup);
    std::printf("  messages (measured window): sent %" PRIu64 " (%.0f/s), received %" PRIu64 ", lost %" PRId64
                " (%.3f%%), gaps %" PRIu64 ", out-of-order %" PRIu64 "\n",
                st.sentMeasured, sentPerSec, st.recvMeasured, lost,
                st.sentMeasured ? 100.0 * double(lost) / double(st.sentMeasured) : 0.0, st.gapMessages, st.outOfOrder);
    std::printf("  relayed: %.0f msg/s received during the window\n", relayedPerSec);
    std::printf(
        "  latency (one-way, send→receive): p50 %.0f us  p90 %.0f us  p99 %.0f us  p99.9 %.0f us  max %.0f "
        "us  mean %.0f us\n",
        lat50, lat90, lat99, lat999, latMax, latMean);
    if (st.scheduleSlip || st.sendBlocked || st.windowStalls) {
      std::printf("  generator limits: schedule slip %" PRIu64 " msgs, blocked sends %" PRIu64
                  ", window stalls %" PRIu64 "\n",
                  st.scheduleSlip, st.sendBlocked, st.windowStalls);
    }
  }
  std::printf("  server errors: [%s]; pings answered %" PRIu64 ", unparsed %" PRIu64 ", misrouted %" PRIu64
              ", fragmented msgs %" PRIu64 "\n",
              textMap(st.serverErrors).c_str(), st.pings, st.unparsed, st.foreign, st.fragmentedMessages);
  if (limit > 0 && relay && o.rate > 0 && perClientRate > double(limit)) {
    std::printf("  WARNING: %.1f msg/s per client exceeds the server's messagesPerSecond=%" PRId64 "\n", perClientRate,
                limit);
  }
  std::printf("  other processes: %.0f%% of one core during the window (of %ld cores)%s\n", othersCpuPct,
              sysconf(_SC_NPROCESSORS_ONLN), othersCpuPct > 20 ? "  (NOISY MACHINE: figures skewed)" : "");
  std::printf("  generator CPU: %.0f%% of one core during the window%s\n", genCpuPct,
              genCpuPct > 90.0 * o.threads ? "  (GENERATOR-BOUND: add --threads or lower the load)" : "");
  if (haveServer) {
    std::printf("  server pid %d: CPU %.2fs in window (%.0f%% of one core)%s", o.serverPid, serverCpuSec, serverCpuPct,
                relay ? "" : "\n");
    if (relay) std::printf(", %.2f us per relayed message\n", cpuUsPerMsg);
    std::printf("  server memory: RSS %ld kB before, %ld kB after setup, %ld kB at end of window, peak %ld kB",
                serverBefore.rssKb, serverSetup.rssKb, rssHeld, serverAfter.ok ? serverAfter.hwmKb : serverM1.hwmKb);
    if (!relay) std::printf("; %.2f kB per held connection", rssPerConnKb);
    std::printf("\n");
  }
  if (timedOut) std::printf("  TIMED OUT: hard limit of %.0fs reached\n", budget);

  if (o.json) {
    std::printf(
        "{\"tool\":\"kaiwa-loadgen\",\"mode\":\"%s\",\"protocol\":\"%s\",\"url\":\"ws://"
        "%s:%d%s\",\"threads\":%d,"
        "\"clients\":%d,\"room_size\":%d,\"payload_bytes\":%d,\"rate\":%.0f,\"window\":%d,\"duration_s\":%."
        "1f,"
        "\"established\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"fail_reasons\":%s,\"held\":%u,\"dropped\":%" PRIu64
        ",\"drop_reasons\":%s,\"setup_s\":%.3f,\"connect_p50_ms\":%.2f,\"connect_p99_ms\":%.2f,"
        "\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRId64 ",\"gaps\":%" PRIu64
        ",\"out_of_order\":%" PRIu64 ",\"misrouted\":%" PRIu64
        ",\"sent_per_s\":%.1f,\"relayed_per_s\":%.1f,"
        "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
        "\"server_errors\":%s,\"bye\":%s,\"pings\":%" PRIu64 ",\"schedule_slip\":%" PRIu64 ",\"send_blocked\":%" PRIu64
        ",\"window_stalls\":%" PRIu64 ",\"closed_cleanly\":%" PRIu64
        ",\"generator_cpu_pct\":%.1f,\"others_cpu_pct\":%.1f,"
        "\"server\":{\"pid\":%d,\"cpu_s\":%.3f,\"cpu_pct\":%.1f,\"cpu_us_per_msg\":%.3f,\"rss_before_kb\":%"
        "ld,"
        "\"rss_setup_kb\":%ld,\"rss_end_kb\":%ld,\"hwm_kb\":%ld,\"rss_per_conn_kb\":%.3f},\"timed_out\":%s}"
        "\n",
        o.mode.c_str(), o.protocol.c_str(), o.host.c_str(), o.port, o.path.c_str(), o.threads, o.clients, o.roomSize,
        o.payloadBytes, o.rate, o.window, dur, st.established, st.failed, jsonMap(st.failReasons).c_str(), openAtEnd,
        st.dropped, jsonMap(st.dropReasons).c_str(), double(setupEnd - t0) / 1e9,
        double(st.connectTime.quantile(0.5)) / 1e6, double(st.connectTime.quantile(0.99)) / 1e6, st.sentMeasured,
        st.recvMeasured, lost, st.gapMessages, st.outOfOrder, st.foreign, sentPerSec, relayedPerSec, lat50, lat90,
        lat99, lat999, latMax, latMean, jsonMap(st.serverErrors).c_str(), jsonMap(st.byeReasons).c_str(), st.pings,
        st.scheduleSlip, st.sendBlocked, st.windowStalls, st.closedCleanly, genCpuPct, othersCpuPct, o.serverPid,
        serverCpuSec, serverCpuPct, cpuUsPerMsg, serverBefore.rssKb, serverSetup.rssKb, rssHeld,
        serverAfter.ok ? serverAfter.hwmKb : serverM1.hwmKb, rssPerConnKb, timedOut ? "true" : "false");
  }
  std::fflush(stdout);
  if (timedOut) return 3;
  if (st.established == 0) return 1;
  return 0;
}

}  // namespace
}  // namespace kaiwa::bench

int main(int argc, char** argv) {
  using namespace kaiwa::bench;
  // `kaiwa-loadgen media …` is the SFU load generator. It links kaiwa's DTLS, SRTP, STUN and SDP modules, so it is a
  // second binary built only inside the kaiwa build (this one builds standalone with libc alone); the one name
  // runs it from the same directory.
  if (argc > 1 && std::string_view(argv[1]) == "media") {
    std::string self(4096, '\0');
    const ssize_t n = readlink("/proc/self/exe", self.data(), self.size() - 1);
    self.resize(n > 0 ? size_t(n) : 0);
    const std::string media = self.substr(0, self.rfind('/') + 1) + "kaiwa-loadgen-media";
    execv(media.c_str(), argv);
    std::fprintf(stderr, "cannot run %s: %s (it is built with kaiwa, not standalone)\n", media.c_str(),
                 std::strerror(errno));
    return 2;
  }
  Options o;
  std::string url;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto num = [&]() { return std::atof(next().c_str()); };
    if (a == "relay" || a == "idle") {
      o.mode = a;
    } else if (a == "--mode") {
      o.mode = next();
    } else if (a == "--url") {
      url = next();
    } else if (a == "--protocol") {
      o.protocol = next();
    } else if (a == "--clients") {
      o.clients = int(num());
    } else if (a == "--room-size") {
      o.roomSize = int(num());
    } else if (a == "--payload-bytes") {
      o.payloadBytes = int(num());
    } else if (a == "--rate") {
      o.rate = num();
    } else if (a == "--window") {
      o.window = int(num());
    } else if (a == "--window-timeout") {
      o.windowTimeout = num();
    } else if (a == "--duration") {
      o.duration = num();
    } else if (a == "--warmup") {
      o.warmup = num();
    } else if (a == "--drain") {
      o.drain = num();
    } else if (a == "--threads") {
      o.threads = int(num());
    } else if (a == "--ramp-concurrency") {
      o.rampConcurrency = int(num());
    } else if (a == "--connect-rate") {
      o.connectRate = num();
    } else if (a == "--setup-timeout") {
      o.setupTimeout = num();
    } else if (a == "--handshake-timeout") {
      o.handshakeTimeout = num();
    } else if (a == "--close-wait") {
      o.closeWait = num();
    } else if (a == "--timeout") {
      o.timeout = num();
    } else if (a == "--tick-ms") {
      o.tickMs = num();
    } else if (a == "--no-join") {
      o.join = false;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (a == "--server-pid") {
      o.serverPid = int(num());
    } else if (a == "--room-prefix") {
      o.roomPrefix = next();
    } else if (a == "--source-ips") {
      std::stringstream ss(next());
      std::string ip;
      while (std::getline(ss, ip, ',')) {
        in_addr addr{};
        if (inet_pton(AF_INET, ip.c_str(), &addr) != 1 || !isLoopback(ip)) {
          std::fprintf(stderr, "bad --source-ips entry %s (loopback IPv4 only)\n", ip.c_str());
          return 2;
        }
        o.sourceIps.push_back(addr);
      }
    } else if (a == "--self-test") {
      return selfTest();
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (!url.empty() && !parseUrl(url, o)) {
    std::fprintf(stderr, "bad --url %s (want ws://HOST:PORT/PATH)\n", url.c_str());
    return 2;
  }
  if (!isLoopback(o.host)) {
    std::fprintf(stderr, "refusing non-loopback target %s: this tool is for same-machine benchmarks\n", o.host.c_str());
    return 2;
  }
  if (o.mode != "relay" && o.mode != "idle") {
    std::fprintf(stderr, "unknown mode %s\n", o.mode.c_str());
    return 2;
  }
  if (o.clients < 1 || o.threads < 1 || o.roomSize < 1 || o.duration <= 0 || o.window < 1 || o.rampConcurrency < 1 ||
      o.payloadBytes < 0 || o.rate < 0) {
    std::fprintf(stderr, "bad numeric option\n");
    return 2;
  }
  o.threads = std::min(o.threads, std::max(1, (o.clients + o.roomSize - 1) / o.roomSize));
  return run(o);
}
