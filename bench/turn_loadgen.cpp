// kaiwa-turn-loadgen: a TURN relay load generator that is cheaper than the server it measures.
//
// Per allocation: Allocate (REQUESTED-TRANSPORT UDP, long-term credentials from the 401's REALM/NONCE),
// CreatePermission and ChannelBind to an echo peer the generator hosts itself on 127.0.0.1 (one UDP socket per thread
// answering with recvmmsg/sendmmsg). Then, for a bounded time, it offers --rate round trips/s spread over the
// allocations as ChannelData, paced every --tick-us from a timerfd (all messages of one allocation and tick in one
// sendmmsg over UDP, one send() over TCP/TLS), received on an epoll loop (recvmmsg until empty). Each message carries
// the allocation, a per-allocation sequence number and its send time (CLOCK_MONOTONIC), so the generator counts sent,
// received, lost, duplicated and reordered round trips and the round-trip latency.
//
// Modes: udp (ChannelData over UDP), tcp (the allocation's TCP control connection carries ChannelData with 4-byte
// padding, RFC 8656 section 12.5) and tls (the same over TLS; OpenSSL client without verification, one TLS record per
// message as browsers send them, the records of one tick leave in one send()).
//
// Timeline (bounded): setup (sequential, each request bounded in time) → warm-up → measure (--duration) → drain (no
// new sends) → end. A round trip is "measured" when its send time falls in the measure window. With --server-pid the
// server's utime+stime (/proc/PID/stat) over the measure window gives its CPU per received round trip; the
// generator's own CPU (getrusage) is reported the same way. UDP socket drops (/proc/net/udp "drops" per socket) are
// split into the generator's sockets, the server's listening port and its relay ports, so a loss can be placed.
// Everything stays on 127.0.0.1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "histogram.hpp"

namespace kaiwa::bench {
namespace {

constexpr int64_t kNsPerSec = 1000000000;
int64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
}

// ---------------------------------------------------------------- STUN (only what a TURN client needs)

constexpr uint32_t kCookie = 0x2112A442;
constexpr uint16_t kAllocate = 0x003, kRefresh = 0x004, kCreatePermission = 0x008, kChannelBind = 0x009;
constexpr uint16_t kClassSuccess = 0x100, kClassError = 0x110;
constexpr uint16_t kAttrUsername = 0x0006, kAttrIntegrity = 0x0008, kAttrErrorCode = 0x0009,
                   kAttrChannelNumber = 0x000C, kAttrLifetime = 0x000D, kAttrXorPeer = 0x0012, kAttrRealm = 0x0014,
                   kAttrNonce = 0x0015, kAttrXorRelayed = 0x0016, kAttrRequestedTransport = 0x0019;

void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, uint16_t(v >> 16));
  put16(p + 2, uint16_t(v));
}
uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t(get16(p)) << 16 | get16(p + 2); }

struct StunBuilder {
  std::vector<uint8_t> b;
  StunBuilder(uint16_t type, const uint8_t tid[12]) : b(20) {
    put16(b.data(), type);
    put32(b.data() + 4, kCookie);
    std::memcpy(b.data() + 8, tid, 12);
  }
  void attr(uint16_t type, const void* data, size_t len) {
    size_t at = b.size();
    b.resize(at + 4 + ((len + 3) & ~size_t(3)), 0);
    put16(b.data() + at, type);
    put16(b.data() + at + 2, uint16_t(len));
    if (len) std::memcpy(b.data() + at + 4, data, len);
    put16(b.data() + 2, uint16_t(b.size() - 20));
  }
  void text(uint16_t type, std::string_view s) { attr(type, s.data(), s.size()); }
  void u32(uint16_t type, uint32_t v) {
    uint8_t x[4];
    put32(x, v);
    attr(type, x, 4);
  }
  void xorAddress(uint16_t type, const sockaddr_in& a) {
    uint8_t x[8] = {0, 1};
    put16(x + 2, uint16_t(ntohs(a.sin_port) ^ (kCookie >> 16)));
    put32(x + 4, ntohl(a.sin_addr.s_addr) ^ kCookie);
    attr(type, x, 8);
  }
  // MESSAGE-INTEGRITY (HMAC-SHA1 over the message with the length already counting this attribute).
  void integrity(const uint8_t key[16]) {
    size_t at = b.size();
    put16(b.data() + 2, uint16_t(at + 24 - 20));
    unsigned len = 20;
    uint8_t mac[EVP_MAX_MD_SIZE];
    HMAC(EVP_sha1(), key, 16, b.data(), at, mac, &len);
    attr(kAttrIntegrity, mac, 20);
  }
};

struct StunView {
  uint16_t type = 0;
  uint8_t tid[12]{};
  int errorCode = 0;
  std::string realm, nonce;
  std::optional<sockaddr_in> relayed;
};

std::optional<StunView> parseStun(const uint8_t* p, size_t n) {
  if (n < 20 || (p[0] & 0xC0) != 0 || get32(p + 4) != kCookie) return std::nullopt;
  size_t len = get16(p + 2);
  if (20 + len > n || len % 4) return std::nullopt;
  StunView v;
  v.type = get16(p);
  std::memcpy(v.tid, p + 8, 12);
  size_t at = 20;
  while (at + 4 <= 20 + len) {
    uint16_t t = get16(p + at), l = get16(p + at + 2);
    const uint8_t* d = p + at + 4;
    if (at + 4 + l > 20 + len) return std::nullopt;
    if (t == kAttrErrorCode && l >= 4) v.errorCode = (d[2] & 7) * 100 + d[3];
    if (t == kAttrRealm) v.realm.assign(reinterpret_cast<const char*>(d), l);
    if (t == kAttrNonce) v.nonce.assign(reinterpret_cast<const char*>(d), l);
    if (t == kAttrXorRelayed && l == 8 && d[1] == 1) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(uint16_t(get16(d + 2) ^ (kCookie >> 16)));
      a.sin_addr.s_addr = htonl(get32(d + 4) ^ kCookie);
      v.relayed = a;
    }
    at += 4 + ((l + 3u) & ~3u);
  }
  return v;
}

void longTermKey(std::string_view user, std::string_view realm, std::string_view password, uint8_t key[16]) {
  std::string s = std::string(user) + ":" + std::string(realm) + ":" + std::string(password);
  unsigned len = 16;
  EVP_Digest(s.data(), s.size(), key, &len, EVP_md5(), nullptr);
}

// Length of the first frame of a TURN-over-TCP stream (STUN: 20 + length; ChannelData: 4 + length padded to 4), or
// 0 while fewer than 4 bytes are there.
size_t frameLength(const uint8_t* p, size_t n) {
  if (n < 4) return 0;
  size_t len = get16(p + 2);
  if ((p[0] & 0xC0) == 0x40) return 4 + ((len + 3) & ~size_t(3));
  return 20 + len;
}

// ---------------------------------------------------------------- payload

constexpr uint32_t kMagic = 0x4B57544C;  // "KWTL"
constexpr size_t kMinPayload = 24;       // magic, allocation index, sequence, send time

void writePayload(uint8_t* p, size_t size, uint32_t alloc, uint64_t seq, int64_t ts) {
  put32(p, kMagic);
  put32(p + 4, alloc);
  std::memcpy(p + 8, &seq, 8);
  std::memcpy(p + 16, &ts, 8);
  if (size > kMinPayload) std::memset(p + kMinPayload, 0x5A, size - kMinPayload);
}

bool readPayload(const uint8_t* p, size_t n, uint32_t* alloc, uint64_t* seq, int64_t* ts) {
  if (n < kMinPayload || get32(p) != kMagic) return false;
  *alloc = get32(p + 4);
  std::memcpy(seq, p + 8, 8);
  std::memcpy(ts, p + 16, 8);
  return true;
}

// ---------------------------------------------------------------- options

enum class Mode { kUdp, kTcp, kTls };

struct Options {
  Mode mode = Mode::kUdp;
  sockaddr_in server{};
  std::string user = "alice", password = "alicepw";
  double rate = 10000;  // round trips/s offered in total
  int allocations = 50;
  int threads = 1;
  size_t size = 100;  // ChannelData payload bytes
  int64_t tickNs = 1000000;
  double warmup = 1, duration = 10, drain = 1;
  int serverPid = 0;
  bool json = false;
  int bufferBytes = 4 << 20;  // SO_RCVBUF/SO_SNDBUF of the generator's UDP sockets
  double setupTimeout = 30;
  int tlsMax = 0;  // --tls-max 1.2: offer TLS 1.2 at most (default: what OpenSSL offers, TLS 1.3)
};

// ---------------------------------------------------------------- per-thread state

struct Alloc {
  uint32_t index = 0;
  int fd = -1;
  SSL* ssl = nullptr;
  uint16_t channel = 0;
  sockaddr_in relayed{};
  std::string realm, nonce;
  uint8_t key[16]{};
  uint64_t nextSeq = 0;
  uint64_t maxSeq = 0;
  std::vector<uint64_t> seen;  // bit per sequence number
  std::vector<uint8_t> in;     // TCP/TLS: received plaintext
  size_t inUsed = 0;
  std::vector<uint8_t> out;  // TCP/TLS: bytes waiting for the socket
  uint16_t localPort = 0;
};

struct Stats {
  uint64_t sent = 0, received = 0;            // measured
  uint64_t sentTotal = 0, receivedTotal = 0;  // whole run
  uint64_t duplicates = 0, reordered = 0, foreign = 0, sendErrors = 0, slipped = 0, backlogged = 0;
  uint64_t echoed = 0;
  LatencyHistogram rtt;  // ns
};

struct Timeline {
  int64_t start = 0, measureStart = 0, measureEnd = 0, end = 0;
};

class Worker {
 public:
  Worker(const Options& o, int id, SSL_CTX* ctx) : o_(o), id_(id), ctx_(ctx) {}
  ~Worker() {
    for (auto& a : allocs_) {
      if (a.ssl) SSL_free(a.ssl);
      if (a.fd >= 0) ::close(a.fd);
    }
    if (echoFd_ >= 0) ::close(echoFd_);
    if (ep_ >= 0) ::close(ep_);
    if (timer_ >= 0) ::close(timer_);
  }

  // Opens the echo socket and sets up `count` allocations; false with `error` set on any failure.
  bool setup(int first, int count, int64_t deadline, std::string* error);
  void run(const Timeline& t, double rate);
  // Deletes the allocations (Refresh with LIFETIME 0), bounded by `deadline`; returns how many were deleted.
  int release(int64_t deadline);

  Stats stats;
  std::vector<uint16_t> localPorts() const {
    std::vector<uint16_t> v{echoPort_};
    for (const auto& a : allocs_) v.push_back(a.localPort);
    return v;
  }
  std::vector<uint16_t> relayPorts() const {
    std::vector<uint16_t> v;
    for (const auto& a : allocs_) v.push_back(ntohs(a.relayed.sin_port));
    return v;
  }

 private:
  bool openTransport(Alloc& a, int64_t deadline, std::string* error);
  bool sendRaw(Alloc& a, const uint8_t* p, size_t n);
  std::optional<std::vector<uint8_t>> transact(Alloc& a, const std::vector<uint8_t>& req, int64_t deadline);
  std::optional<StunView> request(Alloc& a, uint16_t method, const sockaddr_in* peer, int64_t deadline,
                                  std::string* error);
  bool flushTls(Alloc& a);
  bool flushOut(Alloc& a);
  bool readStream(Alloc& a);
  void onChannelData(const uint8_t* p, size_t n, int64_t now);
  void tick(int64_t now, double rate);
  void armReceive(bool withAddresses);
  void readUdp(Alloc& a, int64_t now);
  void echo();
  void newTid(uint8_t tid[12]) {
    for (int i = 0; i < 12; ++i) tid[i] = uint8_t(rng_ >> (8 * (i % 8)) ^ i), rng_ = rng_ * 6364136223846793005ULL + 1;
  }

  const Options& o_;
  int id_;
  SSL_CTX* ctx_;
  std::vector<Alloc> allocs_;
  int echoFd_ = -1;
  uint16_t echoPort_ = 0;
  sockaddr_in echoAddr_{};
  int ep_ = -1, timer_ = -1;
  uint64_t rng_ = 0x9E3779B97F4A7C15ULL;
  Timeline t_;
  uint64_t scheduled_ = 0;  // messages due since the start of the run (sent or slipped)
  size_t rr_ = 0;
  // Batches, allocated once.
  static constexpr size_t kBatch = 64;
  std::vector<uint8_t> bufs_ = std::vector<uint8_t>(kBatch * 2048);
  mmsghdr hdrs_[kBatch]{};
  iovec iov_[kBatch]{};
  sockaddr_in addrs_[kBatch]{};
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(1 << 16);
};

void setBuffers(int fd, int bytes) {
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

uint16_t boundPort(int fd) {
  sockaddr_in a{};
  socklen_t l = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
  return ntohs(a.sin_port);
}

// Waits (bounded) for fd to become ready for `events`.
bool waitFd(int fd, short events, int64_t deadline) {
  int64_t left = deadline - nowNs();
  if (left <= 0) return false;
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, int(std::min<int64_t>(left / 1000000 + 1, 1000))) > 0;
}

bool Worker::openTransport(Alloc& a, int64_t deadline, std::string* error) {
  bool stream = o_.mode != Mode::kUdp;
  a.fd = ::socket(AF_INET, (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  if (a.fd < 0) return *error = std::string("socket: ") + strerror(errno), false;
  if (stream) {
    int one = 1;
    setsockopt(a.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  } else {
    setBuffers(a.fd, o_.bufferBytes);
  }
  fcntl(a.fd, F_SETFL, O_NONBLOCK);
  if (::connect(a.fd, reinterpret_cast<const sockaddr*>(&o_.server), sizeof o_.server) != 0 && errno != EINPROGRESS)
    return *error = std::string("connect: ") + strerror(errno), false;
  if (stream) {
    if (!waitFd(a.fd, POLLOUT, deadline)) return *error = "connect timed out", false;
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) return *error = std::string("connect: ") + strerror(err), false;
    a.in.resize(1 << 16);
  }
  a.localPort = boundPort(a.fd);
  if (o_.mode == Mode::kTls) {
    a.ssl = SSL_new(ctx_);
    SSL_set_bio(a.ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(a.ssl);
    for (;;) {
      int r = SSL_do_handshake(a.ssl);
      if (!flushTls(a) || !flushOut(a)) return *error = "TLS write failed", false;
      if (r == 1) break;
      int e = SSL_get_error(a.ssl, r);
      if (e != SSL_ERROR_WANT_READ) return *error = "TLS handshake failed", false;
      while (!a.out.empty()) {
        if (!waitFd(a.fd, POLLOUT, deadline) || !flushOut(a)) return *error = "TLS handshake timed out", false;
      }
      if (!waitFd(a.fd, POLLIN, deadline)) return *error = "TLS handshake timed out", false;
      ssize_t n = ::recv(a.fd, scratch_.data(), scratch_.size(), 0);
      if (n <= 0) return *error = "TLS handshake: connection closed", false;
      BIO_write(SSL_get_rbio(a.ssl), scratch_.data(), int(n));
    }
  }
  return true;
}

// TLS: moves the records OpenSSL wrote into the memory BIO to a.out.
bool Worker::flushTls(Alloc& a) {
  if (!a.ssl) return true;
  BIO* w = SSL_get_wbio(a.ssl);
  while (size_t pending = BIO_ctrl_pending(w)) {
    size_t at = a.out.size();
    a.out.resize(at + pending);
    int r = BIO_read(w, a.out.data() + at, int(pending));
    a.out.resize(at + size_t(std::max(r, 0)));
    if (r <= 0) return false;
  }
  return true;
}

// Writes what waits in a.out (as much as the socket takes). False on a socket error.
bool Worker::flushOut(Alloc& a) {
  if (a.out.empty()) return true;
  ssize_t n = ::send(a.fd, a.out.data(), a.out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  a.out.erase(a.out.begin(), a.out.begin() + n);
  return true;
}

bool Worker::sendRaw(Alloc& a, const uint8_t* p, size_t n) {
  if (o_.mode == Mode::kUdp) return ::send(a.fd, p, n, MSG_DONTWAIT) == ssize_t(n);
  if (a.ssl) {
    if (SSL_write(a.ssl, p, int(n)) != int(n)) return false;
    if (!flushTls(a)) return false;
  } else {
    a.out.insert(a.out.end(), p, p + n);
  }
  return flushOut(a);
}

// Reads what the stream socket has into a.in (decrypting for TLS). False when the connection is gone.
bool Worker::readStream(Alloc& a) {
  for (int round = 0; round < 64; ++round) {
    ssize_t n;
    if (a.ssl) {
      n = ::recv(a.fd, scratch_.data(), scratch_.size(), MSG_DONTWAIT);
    } else {
      if (a.inUsed == a.in.size()) a.in.resize(a.in.size() * 2);
      n = ::recv(a.fd, a.in.data() + a.inUsed, a.in.size() - a.inUsed, MSG_DONTWAIT);
    }
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (a.ssl) {
      BIO_write(SSL_get_rbio(a.ssl), scratch_.data(), int(n));
      for (;;) {
        if (a.inUsed == a.in.size()) a.in.resize(a.in.size() * 2);
        int r = SSL_read(a.ssl, a.in.data() + a.inUsed, int(a.in.size() - a.inUsed));
        if (r <= 0) {
          int e = SSL_get_error(a.ssl, r);
          ERR_clear_error();
          if (e != SSL_ERROR_WANT_READ) return false;
          break;
        }
        a.inUsed += size_t(r);
      }
    } else {
      a.inUsed += size_t(n);
    }
    if (size_t(n) < scratch_.size() && a.ssl) break;
    if (!a.ssl && a.inUsed < a.in.size()) break;
  }
  return true;
}

// One request/response exchange during setup (UDP: retransmitted every 500 ms, 6 tries). Bounded by `deadline`.
std::optional<std::vector<uint8_t>> Worker::transact(Alloc& a, const std::vector<uint8_t>& req, int64_t deadline) {
  int64_t resendAt = 0;
  int tries = 0;
  if (o_.mode != Mode::kUdp && !sendRaw(a, req.data(), req.size())) return std::nullopt;
  while (nowNs() < deadline) {
    if (o_.mode == Mode::kUdp) {
      if (nowNs() >= resendAt) {
        if (++tries > 6) return std::nullopt;
        sendRaw(a, req.data(), req.size());
        resendAt = nowNs() + 500000000;
      }
      if (!waitFd(a.fd, POLLIN, std::min(deadline, resendAt))) continue;
      ssize_t n = ::recv(a.fd, scratch_.data(), scratch_.size(), MSG_DONTWAIT);
      if (n < 20) continue;
      if (std::memcmp(scratch_.data() + 8, req.data() + 8, 12) != 0) continue;
      return std::vector<uint8_t>(scratch_.begin(), scratch_.begin() + n);
    }
    while (!a.out.empty() && waitFd(a.fd, POLLOUT, deadline))
      if (!flushOut(a)) return std::nullopt;
    // A complete frame already read?
    size_t len = frameLength(a.in.data(), a.inUsed);
    if (len && a.inUsed >= len) {
      std::vector<uint8_t> frame(a.in.begin(), a.in.begin() + len);
      std::memmove(a.in.data(), a.in.data() + len, a.inUsed - len);
      a.inUsed -= len;
      if (frame.size() >= 20 && std::memcmp(frame.data() + 8, req.data() + 8, 12) == 0) return frame;
      continue;
    }
    if (!waitFd(a.fd, POLLIN, deadline)) continue;
    if (!readStream(a)) return std::nullopt;
  }
  return std::nullopt;
}

// An authenticated request (Allocate, CreatePermission or ChannelBind); a 401/438 refreshes realm and nonce and is
// retried (a few times).
std::optional<StunView> Worker::request(Alloc& a, uint16_t method, const sockaddr_in* peer, int64_t deadline,
                                        std::string* error) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    uint8_t tid[12];
    newTid(tid);
    StunBuilder b(method, tid);
    if (method == kAllocate) {
      b.u32(kAttrRequestedTransport, 17u << 24);
      b.u32(kAttrLifetime, 3600);
    }
    if (method == kRefresh) b.u32(kAttrLifetime, 0);  // delete the allocation
    if (method == kChannelBind) b.u32(kAttrChannelNumber, uint32_t(a.channel) << 16);
    if (peer) b.xorAddress(kAttrXorPeer, *peer);
    if (!a.nonce.empty()) {
      b.text(kAttrUsername, o_.user);
      b.text(kAttrRealm, a.realm);
      b.text(kAttrNonce, a.nonce);
      b.integrity(a.key);
    }
    auto resp = transact(a, b.b, deadline);
    if (!resp) return *error = "no answer (timeout or connection closed)", std::nullopt;
    auto v = parseStun(resp->data(), resp->size());
    if (!v) return *error = "malformed answer", std::nullopt;
    if (v->type == (method | kClassSuccess)) return v;
    if (v->type == (method | kClassError) && (v->errorCode == 401 || v->errorCode == 438) && !v->nonce.empty()) {
      if (!v->realm.empty()) a.realm = v->realm;
      a.nonce = v->nonce;
      longTermKey(o_.user, a.realm, o_.password, a.key);
      continue;
    }
    return *error = "error " + std::to_string(v->errorCode), std::nullopt;
  }
  return *error = "authentication refused", std::nullopt;
}

bool Worker::setup(int first, int count, int64_t deadline, std::string* error) {
  rng_ ^= uint64_t(nowNs()) * 0x2545F4914F6CDD1DULL + uint64_t(id_);
  echoFd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  echoAddr_.sin_family = AF_INET;
  echoAddr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setBuffers(echoFd_, o_.bufferBytes);
  if (::bind(echoFd_, reinterpret_cast<sockaddr*>(&echoAddr_), sizeof echoAddr_) != 0)
    return *error = std::string("echo bind: ") + strerror(errno), false;
  echoPort_ = boundPort(echoFd_);
  echoAddr_.sin_port = htons(echoPort_);
  allocs_.resize(size_t(count));
  for (int i = 0; i < count; ++i) {
    Alloc& a = allocs_[size_t(i)];
    a.index = uint32_t(i);
    a.channel = uint16_t(0x4000 + (first + i) % 0x3FFF);
    std::string what;
    std::optional<StunView> alloc;
    // 437: the kernel gave this socket the source port of an allocation an earlier run left behind; take another.
    for (int attempt = 0; attempt < 8; ++attempt) {
      if (!openTransport(a, deadline, &what))
        return *error = "allocation " + std::to_string(first + i) + ": " + what, false;
      alloc = request(a, kAllocate, nullptr, deadline, &what);
      if (alloc || what != "error 437") break;
      if (a.ssl) SSL_free(a.ssl);
      a.ssl = nullptr;
      ::close(a.fd);
      a.fd = -1;
      a.nonce.clear();
      a.inUsed = 0;
      a.out.clear();
    }
    if (!alloc || !alloc->relayed)
      return *error = "Allocate " + std::to_string(first + i) + ": " + (alloc ? "no XOR-RELAYED-ADDRESS" : what), false;
    a.relayed = *alloc->relayed;
    if (!request(a, kCreatePermission, &echoAddr_, deadline, &what))
      return *error = "CreatePermission " + std::to_string(first + i) + ": " + what, false;
    if (!request(a, kChannelBind, &echoAddr_, deadline, &what))
      return *error = "ChannelBind " + std::to_string(first + i) + ": " + what, false;
    if (a.inUsed) return *error = "unexpected data after setup", false;
  }
  return true;
}

int Worker::release(int64_t deadline) {
  int done = 0;
  for (auto& a : allocs_) {
    if (a.fd < 0) continue;
    if (o_.mode == Mode::kUdp) {  // (over TCP/TLS, transact skips the frames still in flight)
      while (::recv(a.fd, scratch_.data(), scratch_.size(), MSG_DONTWAIT) > 0) {
      }
    }
    std::string what;
    if (request(a, kRefresh, nullptr, std::min(deadline, nowNs() + 2 * kNsPerSec), &what)) ++done;
  }
  return done;
}

void Worker::onChannelData(const uint8_t* p, size_t n, int64_t now) {
  if (n < 4 || (p[0] & 0xC0) != 0x40) {
    ++stats.foreign;  // a STUN message (a late setup answer) or garbage
    return;
  }
  size_t len = get16(p + 2);
  uint32_t idx;
  uint64_t seq;
  int64_t ts;
  if (4 + len > n || !readPayload(p + 4, len, &idx, &seq, &ts) || idx >= allocs_.size()) {
    ++stats.foreign;
    return;
  }
  Alloc& a = allocs_[idx];
  size_t word = seq / 64;
  if (word >= a.seen.size()) a.seen.resize(std::max(word + 1, a.seen.size() * 2), 0);
  uint64_t bit = 1ULL << (seq % 64);
  if (a.seen[word] & bit) {
    ++stats.duplicates;
    return;
  }
  a.seen[word] |= bit;
  if (seq + 1 < a.maxSeq) ++stats.reordered;
  a.maxSeq = std::max(a.maxSeq, seq + 1);
  ++stats.receivedTotal;
  if (ts >= t_.measureStart && ts < t_.measureEnd) {
    ++stats.received;
    stats.rtt.record(uint64_t(std::max<int64_t>(0, now - ts)));
  }
}

// Points the batch's headers at the receive buffers (and, for the echo peer, at the source addresses).
void Worker::armReceive(bool withAddresses) {
  for (size_t i = 0; i < kBatch; ++i) {
    iov_[i] = {bufs_.data() + i * 2048, 2048};
    hdrs_[i].msg_hdr = {};
    hdrs_[i].msg_hdr.msg_iov = &iov_[i];
    hdrs_[i].msg_hdr.msg_iovlen = 1;
    if (withAddresses) {
      hdrs_[i].msg_hdr.msg_name = &addrs_[i];
      hdrs_[i].msg_hdr.msg_namelen = sizeof addrs_[i];
    }
  }
}

void Worker::readUdp(Alloc& a, int64_t now) {
  for (int round = 0; round < 64; ++round) {
    armReceive(false);
    int n = ::recvmmsg(a.fd, hdrs_, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    for (int i = 0; i < n; ++i) onChannelData(bufs_.data() + size_t(i) * 2048, hdrs_[i].msg_len, now);
    if (size_t(n) < kBatch) return;
  }
}

// The echo peer: every datagram goes back to where it came from (the allocation's relayed address).
void Worker::echo() {
  for (int round = 0; round < 64; ++round) {
    armReceive(true);
    int n = ::recvmmsg(echoFd_, hdrs_, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    for (int i = 0; i < n; ++i) iov_[i].iov_len = hdrs_[i].msg_len;
    int at = 0;
    while (at < n) {
      int s = ::sendmmsg(echoFd_, hdrs_ + at, unsigned(n - at), MSG_DONTWAIT);
      if (s <= 0) {
        if (s < 0 && errno == EINTR) continue;
        ++stats.sendErrors;
        ++at;
        continue;
      }
      at += s;
    }
    stats.echoed += uint64_t(n);
    if (size_t(n) < kBatch) return;
  }
}

void Worker::tick(int64_t now, double rate) {
  if (now >= t_.measureEnd) return;
  uint64_t target = uint64_t(rate * double(now - t_.start) / double(kNsPerSec));
  if (target <= scheduled_) return;
  uint64_t due = target - scheduled_;
  // More than 20 ms behind (the generator was descheduled): skip rather than burst, and say so.
  uint64_t cap = std::max<uint64_t>(1, uint64_t(rate * 0.02));
  if (due > cap) {
    stats.slipped += due - cap;
    scheduled_ += due - cap;
    due = cap;
  }
  scheduled_ += due;
  size_t n = allocs_.size();
  uint64_t each = due / n, extra = due % n;
  bool measured = now >= t_.measureStart;
  size_t msgLen = 4 + o_.size, framed = (msgLen + 3) & ~size_t(3);
  for (size_t k = 0; k < n; ++k) {
    size_t ai = (rr_ + k) % n;
    uint64_t count = each + (k < extra ? 1 : 0);
    if (!count) continue;
    Alloc& a = allocs_[ai];
    if (o_.mode == Mode::kUdp) {
      uint64_t left = count;
      while (left) {
        size_t batch = size_t(std::min<uint64_t>(left, kBatch));
        for (size_t i = 0; i < batch; ++i) {
          uint8_t* p = bufs_.data() + i * 2048;
          put16(p, a.channel);
          put16(p + 2, uint16_t(o_.size));
          writePayload(p + 4, o_.size, a.index, a.nextSeq++, now);
          iov_[i] = {p, msgLen};
          hdrs_[i].msg_hdr = {};
          hdrs_[i].msg_hdr.msg_iov = &iov_[i];
          hdrs_[i].msg_hdr.msg_iovlen = 1;
        }
        size_t at = 0;
        while (at < batch) {
          int s = ::sendmmsg(a.fd, hdrs_ + at, unsigned(batch - at), MSG_DONTWAIT);
          if (s <= 0) {
            if (s < 0 && errno == EINTR) continue;
            ++stats.sendErrors;  // not sent: not counted as sent either
            ++at;
            continue;
          }
          at += size_t(s);
          stats.sentTotal += uint64_t(s);
          if (measured) stats.sent += uint64_t(s);
        }
        left -= batch;
      }
    } else {
      if (a.out.size() > (1 << 20)) {  // the server does not read: do not queue without bound
        stats.backlogged += count;
        continue;
      }
      uint8_t* p = scratch_.data();
      for (uint64_t i = 0; i < count; ++i) {
        put16(p, a.channel);
        put16(p + 2, uint16_t(o_.size));
        writePayload(p + 4, o_.size, a.index, a.nextSeq++, now);
        std::memset(p + msgLen, 0, framed - msgLen);
        if (a.ssl) {
          if (SSL_write(a.ssl, p, int(framed)) != int(framed)) {
            ERR_clear_error();
            ++stats.sendErrors;
            continue;
          }
        } else {
          a.out.insert(a.out.end(), p, p + framed);
        }
        ++stats.sentTotal;
        if (measured) ++stats.sent;
      }
      flushTls(a);
      flushOut(a);
    }
  }
  rr_ = (rr_ + size_t(extra)) % n;
}

void Worker::run(const Timeline& t, double rate) {
  t_ = t;
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  itimerspec its{};
  its.it_interval.tv_sec = o_.tickNs / kNsPerSec;
  its.it_interval.tv_nsec = o_.tickNs % kNsPerSec;
  its.it_value.tv_sec = t.start / kNsPerSec;
  its.it_value.tv_nsec = t.start % kNsPerSec;
  timerfd_settime(timer_, TFD_TIMER_ABSTIME, &its, nullptr);
  auto add = [&](int fd, uint64_t tag) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = tag;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &e);
  };
  constexpr uint64_t kTimer = ~0ULL, kEcho = ~0ULL - 1;
  add(timer_, kTimer);
  add(echoFd_, kEcho);
  for (auto& a : allocs_) add(a.fd, a.index);
  epoll_event events[256];
  std::vector<bool> closed(allocs_.size(), false);
  while (nowNs() < t.end) {
    int n = epoll_wait(ep_, events, 256, 5);
    int64_t now = nowNs();
    bool ticked = false;
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kTimer) {
        uint64_t expirations;
        if (::read(timer_, &expirations, sizeof expirations) > 0) ticked = true;
      } else if (tag == kEcho) {
        echo();
      } else if (o_.mode == Mode::kUdp) {
        readUdp(allocs_[tag], now);
      } else {
        Alloc& a = allocs_[tag];
        if (closed[tag]) continue;
        if (!readStream(a)) {
          closed[tag] = true;
          epoll_ctl(ep_, EPOLL_CTL_DEL, a.fd, nullptr);
          std::fprintf(stderr, "turn-loadgen: allocation %u: connection closed by the server\n", a.index);
        }
        size_t pos = 0;
        while (true) {
          size_t len = frameLength(a.in.data() + pos, a.inUsed - pos);
          if (!len || a.inUsed - pos < len) break;
          onChannelData(a.in.data() + pos, len, now);
          pos += len;
        }
        std::memmove(a.in.data(), a.in.data() + pos, a.inUsed - pos);
        a.inUsed -= pos;
        flushOut(a);
      }
    }
    if (ticked) tick(nowNs(), rate);
  }
}

// ---------------------------------------------------------------- /proc readers

double procCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  size_t close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::atof(field.c_str());
    if (i == 15) stime = std::atof(field.c_str());
  }
  return (utime + stime) / double(sysconf(_SC_CLK_TCK));
}

double selfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct BoxCpu {
  double busy = 0, total = 0, steal = 0;
};
BoxCpu boxCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[10] = {};
  in >> cpu;
  for (double& x : v) in >> x;
  BoxCpu b;
  b.busy = v[0] + v[1] + v[2] + v[5] + v[6];
  b.total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  b.steal = v[7];
  return b;
}

// Receive-buffer drops per local UDP port on 127.0.0.1 (/proc/net/udp's last column).
std::map<uint16_t, uint64_t> udpDrops() {
  std::map<uint16_t, uint64_t> out;
  std::ifstream in("/proc/net/udp");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode, ref, ptr, drops;
    l >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode >> ref >> ptr >> drops;
    size_t colon = local.find(':');
    if (colon == std::string::npos) continue;
    out[uint16_t(std::strtoul(local.c_str() + colon + 1, nullptr, 16))] += std::strtoull(drops.c_str(), nullptr, 10);
  }
  return out;
}

// Udp RcvbufErrors and SndbufErrors of the whole box (/proc/net/snmp).
std::pair<uint64_t, uint64_t> udpBufErrors() {
  std::ifstream in("/proc/net/snmp");
  std::string names, values;
  while (std::getline(in, names)) {
    if (names.rfind("Udp:", 0) != 0 || !std::getline(in, values)) continue;
    std::istringstream n(names), v(values);
    std::string name, value;
    uint64_t rcv = 0, snd = 0;
    while (n >> name && v >> value) {
      if (name == "RcvbufErrors") rcv = std::strtoull(value.c_str(), nullptr, 10);
      if (name == "SndbufErrors") snd = std::strtoull(value.c_str(), nullptr, 10);
    }
    return {rcv, snd};
  }
  return {0, 0};
}

std::string loadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---------------------------------------------------------------- self-test

int selfTest() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "self-test FAILED: %s\n", what);
      ++failures;
    }
  };
  auto hex = [](std::string_view h) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < h.size(); i += 2)
      out.push_back(uint8_t(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return out;
  };
  // RFC 5769 section 2.4: a request with long-term authentication, rebuilt byte for byte.
  auto vector24 =
      hex("000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b900000015001c662f2f343939"
          "6b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f72670000080014f67024656dd64a3e02b8e071"
          "2e85c9a28ca89666");
  {
    StunBuilder b(0x0001, vector24.data() + 8);
    b.text(kAttrUsername, "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9");
    b.text(kAttrNonce, "f//499k954d6OL34oL9FSTvy64sA");
    b.text(kAttrRealm, "example.org");
    uint8_t key[16];
    longTermKey("\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9", "example.org", "TheMatrIX",
                key);
    b.integrity(key);
    check(b.b == vector24, "RFC 5769 2.4 long-term request rebuilt byte for byte");
    auto v = parseStun(vector24.data(), vector24.size());
    check(v && v->realm == "example.org" && v->nonce == "f//499k954d6OL34oL9FSTvy64sA", "parse REALM/NONCE");
  }
  // XOR-RELAYED-ADDRESS round trip and ERROR-CODE.
  {
    uint8_t tid[12] = {1, 2, 3};
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(49152);
    a.sin_addr.s_addr = htonl(0x7F000001);
    StunBuilder b(kAllocate | kClassSuccess, tid);
    b.xorAddress(kAttrXorRelayed, a);
    uint8_t err[4] = {0, 0, 4, 38};
    b.attr(kAttrErrorCode, err, 4);
    auto v = parseStun(b.b.data(), b.b.size());
    check(v && v->relayed && v->relayed->sin_port == a.sin_port && v->relayed->sin_addr.s_addr == a.sin_addr.s_addr,
          "XOR-RELAYED-ADDRESS round trip");
    check(v && v->errorCode == 438, "ERROR-CODE");
    check(!parseStun(b.b.data(), b.b.size() - 1), "truncated message refused");
  }
  // TCP framing: a stream of STUN and padded ChannelData frames, split at every byte, yields the same frames.
  {
    std::vector<uint8_t> stream;
    std::vector<size_t> lengths;
    uint8_t tid[12] = {};
    StunBuilder s(kChannelBind | kClassSuccess, tid);
    for (size_t size : {size_t(24), size_t(25), size_t(100), size_t(27)}) {
      size_t at = stream.size(), framed = (4 + size + 3) & ~size_t(3);
      stream.resize(at + framed, 0);
      put16(stream.data() + at, 0x4001);
      put16(stream.data() + at + 2, uint16_t(size));
      writePayload(stream.data() + at + 4, size, 7, size, 42);
      lengths.push_back(framed);
      stream.insert(stream.end(), s.b.begin(), s.b.end());
      lengths.push_back(s.b.size());
    }
    for (size_t split = 0; split <= stream.size(); ++split) {
      std::vector<uint8_t> buf;
      std::vector<size_t> got;
      for (int part = 0; part < 2; ++part) {
        if (part == 0)
          buf.insert(buf.end(), stream.begin(), stream.begin() + split);
        else
          buf.insert(buf.end(), stream.begin() + split, stream.end());
        size_t pos = 0;
        while (true) {
          size_t len = frameLength(buf.data() + pos, buf.size() - pos);
          if (!len || buf.size() - pos < len) break;
          got.push_back(len);
          pos += len;
        }
        buf.erase(buf.begin(), buf.begin() + pos);
      }
      if (got != lengths) {
        check(false, "TCP framing split");
        break;
      }
    }
    uint32_t idx;
    uint64_t seq;
    int64_t ts;
    check(readPayload(stream.data() + 4, 24, &idx, &seq, &ts) && idx == 7 && seq == 24 && ts == 42, "payload");
  }
  {
    LatencyHistogram h;
    for (uint64_t v = 1; v <= 1000; ++v) h.record(v * 1000);
    check(std::llabs(int64_t(h.quantile(0.5)) - 500000) < 10000, "histogram p50");
  }
  std::printf("self-test: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

void usage() {
  std::fprintf(
      stderr,
      "usage: kaiwa-turn-loadgen [--mode udp|tcp|tls] [--server 127.0.0.1:PORT] [--rate RT_PER_S]\n"
      "         [--allocations N] [--threads T] [--size BYTES] [--tick-us US] [--warmup S] [--duration S]\n"
      "         [--drain S] [--user NAME] [--password PW] [--server-pid PID] [--buffer BYTES] [--tls-max 1.2|1.3]\n"
      "         [--json]\n"
      "       kaiwa-turn-loadgen --self-test\n"
      "  --rate        round trips/s offered in total (default 10000), spread evenly over the allocations\n"
      "  --allocations TURN allocations (default 50), each with its own socket (UDP) or connection (tcp/tls)\n"
      "  --threads     epoll threads (default 1); each owns allocations/T allocations and its own echo peer\n"
      "  --size        ChannelData payload bytes (default 100, at least 24)\n"
      "  --tick-us     pacing interval (default 1000): each tick sends what is due, per allocation in one\n"
      "                sendmmsg/send\n"
      "  --server-pid  the server's process: its CPU (utime+stime) per received round trip\n"
      "  --buffer      SO_RCVBUF/SO_SNDBUF of the generator's UDP sockets (default 4 MiB)\n");
}

bool parseAddress(const std::string& s, sockaddr_in* out) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (inet_pton(AF_INET, s.substr(0, colon).c_str(), &a.sin_addr) != 1) return false;
  int port = std::atoi(s.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  a.sin_port = htons(uint16_t(port));
  *out = a;
  return true;
}

int run(int argc, char** argv) {
  Options o;
  parseAddress("127.0.0.1:3478", &o.server);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--self-test") return selfTest();
    if (a == "--mode") {
      std::string m = next();
      if (m == "udp")
        o.mode = Mode::kUdp;
      else if (m == "tcp")
        o.mode = Mode::kTcp;
      else if (m == "tls")
        o.mode = Mode::kTls;
      else
        return usage(), 2;
    } else if (a == "--server") {
      if (!parseAddress(next(), &o.server)) return std::fprintf(stderr, "bad --server\n"), 2;
    } else if (a == "--rate")
      o.rate = std::atof(next().c_str());
    else if (a == "--allocations")
      o.allocations = std::atoi(next().c_str());
    else if (a == "--threads")
      o.threads = std::atoi(next().c_str());
    else if (a == "--size")
      o.size = size_t(std::atoi(next().c_str()));
    else if (a == "--tick-us")
      o.tickNs = int64_t(std::atof(next().c_str()) * 1000);
    else if (a == "--warmup")
      o.warmup = std::atof(next().c_str());
    else if (a == "--duration")
      o.duration = std::atof(next().c_str());
    else if (a == "--drain")
      o.drain = std::atof(next().c_str());
    else if (a == "--user")
      o.user = next();
    else if (a == "--password")
      o.password = next();
    else if (a == "--server-pid")
      o.serverPid = std::atoi(next().c_str());
    else if (a == "--buffer")
      o.bufferBytes = std::atoi(next().c_str());
    else if (a == "--json")
      o.json = true;
    else if (a == "--tls-max") {
      std::string v = next();
      if (v == "1.2")
        o.tlsMax = TLS1_2_VERSION;
      else if (v == "1.3")
        o.tlsMax = TLS1_3_VERSION;
      else
        return usage(), 2;
    } else
      return usage(), 2;
  }
  // Loopback only, and every loop bounded.
  if ((ntohl(o.server.sin_addr.s_addr) >> 24) != 127) return std::fprintf(stderr, "--server must be on 127/8\n"), 2;
  if (o.rate <= 0 || o.rate > 5e6 || o.allocations < 1 || o.allocations > 16000 || o.threads < 1 || o.threads > 64 ||
      o.threads > o.allocations || o.size < kMinPayload || o.size > 1200 || o.tickNs < 50000 || o.tickNs > 100000000 ||
      o.warmup < 0 || o.warmup > 600 || o.duration <= 0 || o.duration > 3600 || o.drain < 0 || o.drain > 60)
    return std::fprintf(stderr, "option out of range\n"), 2;
  signal(SIGPIPE, SIG_IGN);
  alarm(unsigned(o.setupTimeout + o.warmup + o.duration + o.drain + 30));  // a hard stop whatever happens

  SSL_CTX* ctx = nullptr;
  if (o.mode == Mode::kTls) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (o.tlsMax) SSL_CTX_set_max_proto_version(ctx, o.tlsMax);
  }
  std::vector<std::unique_ptr<Worker>> workers;
  int64_t setupStart = nowNs();
  int64_t deadline = setupStart + int64_t(o.setupTimeout * 1e9);
  int first = 0;
  for (int t = 0; t < o.threads; ++t) {
    int count = o.allocations / o.threads + (t < o.allocations % o.threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(o, t, ctx));
    std::string error;
    if (!workers.back()->setup(first, count, deadline, &error)) {
      std::fprintf(stderr, "turn-loadgen: setup failed: %s\n", error.c_str());
      return 1;
    }
    first += count;
  }
  double setupSeconds = double(nowNs() - setupStart) / 1e9;

  std::set<uint16_t> ours, relays;
  for (auto& w : workers) {
    for (uint16_t p : w->localPorts()) ours.insert(p);
    for (uint16_t p : w->relayPorts()) relays.insert(p);
  }
  uint16_t serverPort = ntohs(o.server.sin_port);
  auto dropSplit = [&](const std::map<uint16_t, uint64_t>& d, uint64_t* gen, uint64_t* listen, uint64_t* relay) {
    *gen = *listen = *relay = 0;
    for (auto [port, n] : d) {
      if (ours.count(port))
        *gen += n;
      else if (port == serverPort)
        *listen += n;
      else if (relays.count(port))
        *relay += n;
    }
  };
  uint64_t gen0, listen0, relay0;
  dropSplit(udpDrops(), &gen0, &listen0, &relay0);

  Timeline tl;
  tl.start = nowNs() + 20000000;
  tl.measureStart = tl.start + int64_t(o.warmup * 1e9);
  tl.measureEnd = tl.measureStart + int64_t(o.duration * 1e9);
  tl.end = tl.measureEnd + int64_t(o.drain * 1e9);
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w, &tl, &o] { w->run(tl, o.rate / double(o.threads)); });

  auto sleepUntil = [](int64_t t) {
    timespec ts{time_t(t / kNsPerSec), long(t % kNsPerSec)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
  };
  sleepUntil(tl.measureStart);
  double server0 = o.serverPid ? procCpuSeconds(o.serverPid) : 0, self0 = selfCpuSeconds();
  BoxCpu box0 = boxCpu();
  auto buf0 = udpBufErrors();
  sleepUntil(tl.measureEnd);
  double server1 = o.serverPid ? procCpuSeconds(o.serverPid) : 0, self1 = selfCpuSeconds();
  BoxCpu box1 = boxCpu();
  auto buf1 = udpBufErrors();
  for (auto& t : threads) t.join();
  uint64_t gen1, listen1, relay1;
  dropSplit(udpDrops(), &gen1, &listen1, &relay1);
  int released = 0;
  int64_t releaseDeadline = nowNs() + 10 * kNsPerSec;
  for (auto& w : workers) released += w->release(releaseDeadline);
  if (released != o.allocations)
    std::fprintf(stderr, "turn-loadgen: %d of %d allocations deleted at the end\n", released, o.allocations);

  Stats total;
  for (auto& w : workers) {
    const Stats& s = w->stats;
    total.sent += s.sent;
    total.received += s.received;
    total.sentTotal += s.sentTotal;
    total.receivedTotal += s.receivedTotal;
    total.duplicates += s.duplicates;
    total.reordered += s.reordered;
    total.foreign += s.foreign;
    total.sendErrors += s.sendErrors;
    total.slipped += s.slipped;
    total.backlogged += s.backlogged;
    total.echoed += s.echoed;
    total.rtt.merge(s.rtt);
  }
  uint64_t lost = total.sent > total.received ? total.sent - total.received : 0;
  double secs = o.duration;
  double serverCpu = server1 - server0, selfCpu = self1 - self0;
  double boxBusy = box1.total > box0.total ? (box1.busy - box0.busy) / (box1.total - box0.total) * 100 : 0;
  double steal = box1.total > box0.total ? (box1.steal - box0.steal) / (box1.total - box0.total) * 100 : 0;
  double perRt = total.received ? serverCpu * 1e6 / double(total.received) : 0;
  double selfPerRt = total.received ? selfCpu * 1e6 / double(total.received) : 0;
  const char* mode = o.mode == Mode::kUdp ? "udp" : o.mode == Mode::kTcp ? "tcp" : "tls";
  double selfPct = selfCpu / secs * 100;
  // Over 90 % of a core per thread, or more than 0.1 % of the schedule skipped: the generator, not the server, limits.
  bool generatorBound = selfPct > 90.0 * o.threads || total.slipped * 1000 > total.sentTotal;
  std::string load = loadAverage();

  std::printf("turn-loadgen %s: %d allocations, %d thread(s), %zu-byte payload, tick %.0f us, setup %.2f s\n", mode,
              o.allocations, o.threads, o.size, double(o.tickNs) / 1000, setupSeconds);
  std::printf("  offered %.0f rt/s for %.1f s (+%.1f s warm-up, %.1f s drain)\n", o.rate, o.duration, o.warmup,
              o.drain);
  std::printf("  sent %" PRIu64 "  received %" PRIu64 "  lost %" PRIu64 " (%.3f %%)  relayed %.0f rt/s\n", total.sent,
              total.received, lost, total.sent ? double(lost) * 100 / double(total.sent) : 0.0,
              double(total.received) / secs);
  std::printf("  whole run: sent %" PRIu64 " received %" PRIu64 "; duplicates %" PRIu64 " reordered %" PRIu64
              " foreign %" PRIu64 " send errors %" PRIu64 " slipped %" PRIu64 " backlogged %" PRIu64 "\n",
              total.sentTotal, total.receivedTotal, total.duplicates, total.reordered, total.foreign, total.sendErrors,
              total.slipped, total.backlogged);
  std::printf("  rtt us: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", double(total.rtt.quantile(0.5)) / 1e3,
              double(total.rtt.quantile(0.9)) / 1e3, double(total.rtt.quantile(0.99)) / 1e3,
              double(total.rtt.quantile(0.999)) / 1e3, double(total.rtt.max()) / 1e3);
  if (o.serverPid)
    std::printf("  server CPU %.2f s = %.0f %% of a core, %.2f us per round trip\n", serverCpu, serverCpu / secs * 100,
                perRt);
  std::printf("  generator CPU %.2f s = %.0f %% of a core (%d thread(s)), %.2f us per round trip%s\n", selfCpu, selfPct,
              o.threads, selfPerRt, generatorBound ? "  GENERATOR-BOUND" : "");
  std::printf("  UDP drops: generator sockets %" PRIu64 ", server port %" PRIu64 ", relay ports %" PRIu64
              "; box Udp RcvbufErrors +%" PRIu64 " SndbufErrors +%" PRIu64 " (measure window)\n",
              gen1 - gen0, listen1 - listen0, relay1 - relay0, buf1.first - buf0.first, buf1.second - buf0.second);
  std::printf("  box: %.0f %% busy, %.1f %% steal, %ld cores, load average %s\n", boxBusy, steal,
              sysconf(_SC_NPROCESSORS_ONLN), load.c_str());
  if (o.json) {
    std::printf(
        "{\"mode\":\"%s\",\"allocations\":%d,\"threads\":%d,\"size\":%zu,\"offered\":%.0f,\"duration\":%.1f,"
        "\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64
        ",\"relayed_per_s\":%.0f,"
        "\"duplicates\":%" PRIu64 ",\"reordered\":%" PRIu64 ",\"send_errors\":%" PRIu64 ",\"slipped\":%" PRIu64
        ",\"backlogged\":%" PRIu64
        ",\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f,\"rtt_max_us\":%.1f,"
        "\"server_cpu_s\":%.3f,\"server_us_per_rt\":%.3f,\"generator_cpu_s\":%.3f,\"generator_us_per_rt\":%.3f,"
        "\"generator_bound\":%s,\"drops_generator\":%" PRIu64 ",\"drops_server_port\":%" PRIu64
        ",\"drops_relay_ports\":%" PRIu64 ",\"box_busy_pct\":%.1f,\"steal_pct\":%.1f,\"loadavg\":\"%s\"}\n",
        mode, o.allocations, o.threads, o.size, o.rate, secs, total.sent, total.received, lost,
        double(total.received) / secs, total.duplicates, total.reordered, total.sendErrors, total.slipped,
        total.backlogged, double(total.rtt.quantile(0.5)) / 1e3, double(total.rtt.quantile(0.99)) / 1e3,
        double(total.rtt.max()) / 1e3, serverCpu, perRt, selfCpu, selfPerRt, generatorBound ? "true" : "false",
        gen1 - gen0, listen1 - listen0, relay1 - relay0, boxBusy, steal, load.c_str());
  }
  if (ctx) SSL_CTX_free(ctx);
  return 0;
}

}  // namespace
}  // namespace kaiwa::bench

int main(int argc, char** argv) { return kaiwa::bench::run(argc, argv); }
