#include "turn/service.hpp"

#include "net/accept_backoff.hpp"

#include <ifaddrs.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>
#include <unordered_map>

#include "common/metrics.hpp"
#include "net/udp_socket.hpp"
#include "net/worker_pool.hpp"
#include "stun/saslprep.hpp"

namespace kaiwa::turn {

namespace asio = boost::asio;
using stun::Address;

std::vector<Address> interfaceAddresses() {
  std::vector<Address> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
    if (auto a = Address::fromSockaddr(i->ifa_addr)) {
      a->port = 0;
      out.push_back(*a);
    }
  }
  freeifaddrs(list);
  return out;
}

static_assert(metrics::kTurnQuotaNames.size() == size_t(QuotaRefusal::kCount));

namespace {
constexpr int kDrainRounds = 16;                 // recvmmsg batches per socket per wake-up
constexpr int kReadyBatch = 128;                 // UDP sockets taken from the worker's epoll set per wake-up
constexpr uint64_t kListenTag = 0;               // the worker's listening UDP socket in that set (relay ids start at 1)
constexpr uint64_t kConnectionTag = 1ULL << 32;  // | connection id: a TURN TCP/TLS client connection in that set
// SSL_read calls per TLS connection and read (each takes at least a byte out of OpenSSL's 16 KiB buffer or stops).
constexpr int kTlsReadRounds = 4096;

asio::ip::tcp::endpoint toEndpoint(const Address& a) {
  sockaddr_storage ss{};
  unsigned len = a.toSockaddr(ss);
  asio::ip::tcp::endpoint ep;
  std::memcpy(ep.data(), &ss, len);
  ep.resize(len);
  return ep;
}

std::optional<Address> fromEndpoint(const asio::ip::tcp::endpoint& ep) {
  sockaddr_storage ss{};
  std::memcpy(&ss, ep.data(), std::min<size_t>(ep.size(), sizeof ss));
  return Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss));
}

// A TCP socket bound to `local`: a relay's listener (bound without SO_REUSEPORT, so a port some other socket holds
// is not shared, then given it so the relay's outgoing connections can bind the same port), or an outgoing
// connection from the relayed address (SO_REUSEPORT before the bind). -1 on failure.
int tcpRelaySocket(const Address& local, bool listener) {
  int fd =
      ::socket(local.family == stun::Family::kV4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (local.family == stun::Family::kV6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (!listener) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_storage ss{};
  unsigned len = local.toSockaddr(ss);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  if (ok && listener) ok = ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0 && ::listen(fd, 64) == 0;
  if (!ok) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool isUnspecified(const Address& a) {
  for (size_t i = 0; i < a.ipLength(); ++i)
    if (a.ip[i]) return false;
  return true;
}
}  // namespace

class TurnService::Worker : public TurnIo {
 private:
  // A UDP relay socket: in the worker's UDP epoll set (udpSet_), not in asio's reactor.
  struct Relay {
    explicit Relay(int fd) : fd(fd) {}
    ~Relay() { ::close(fd); }
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;
    int fd;
  };
  struct PeerConn;
  struct Connection {
    explicit Connection(asio::ip::tcp::socket s) : socket(std::move(s)) {}
    ~Connection() {
      if (ssl) {
        BIO_set_data(SSL_get_rbio(ssl), nullptr);
        SSL_free(ssl);
      }
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    asio::ip::tcp::socket socket;
    ClientTuple tuple;
    std::vector<uint8_t> in;
    size_t used = 0;
    std::vector<uint8_t> pending, writing;
    // TLS (RFC 8656 over TLS): OpenSSL reads the socket itself through tlsBio(), at most once per readiness
    // (mayRecv), and its records to write are appended to cipherOut.
    SSL* ssl = nullptr;
    std::vector<uint8_t> cipherOut;
    bool mayRecv = false;
    bool eof = false;  // the TLS BIO's recv found the stream closed or failed
    bool closed = false;
    bool failed = false;   // SSL_write failed: close at the next flush
    bool dirty = false;    // in dirty_, to be written at the flush
    bool watched = false;  // read through the worker's epoll set (udpSet_) rather than an asio read
    // Timeouts (TcpTimeouts, checked once a second by checkTimeouts).
    TimePoint opened{};        // accepted (or adopted from another worker)
    TimePoint lastMessage{};   // the last complete message was handled (or opened)
    TimePoint partialSince{};  // c->in holds part of a message since (meaningful while used > 0)
    bool allocated = false;    // an Allocate on it succeeded once
    // RFC 6062 client data connection: after its ConnectionBind, raw bytes to and from `pipe`.
    bool dataConnection = false;
    std::shared_ptr<PeerConn> pipe;
    bool readPaused = false;                    // no read in flight: resumeClientRead restarts it
    TimePoint pausedUntil{};                    // bandwidth: not read before this
    bool closeAfterFlush = false;               // the peer side closed: close once the queued bytes are written
    std::unique_ptr<asio::steady_timer> timer;  // bandwidth pause or linger
  };
  // A peer data connection of a TCP allocation (accepted on the relay or made for a Connect request).
  struct PeerConn {
    PeerConn(asio::ip::tcp::socket s, ConnectionId id) : socket(std::move(s)), timer(socket.get_executor()), id(id) {}
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;  // bandwidth pause or linger
    ConnectionId id;
    std::shared_ptr<Connection> client;  // once bound
    std::vector<uint8_t> in;             // read buffer
    std::vector<uint8_t> out, writing;   // to the peer
    bool readPaused = true;              // not read before it is bound
    TimePoint pausedUntil{};
    bool closed = false;
    bool closeAfterFlush = false;
  };
  struct TcpRelay {
    explicit TcpRelay(asio::io_context& ctx) : acceptor(ctx) {}
    asio::ip::tcp::acceptor acceptor;
    Address local;
  };
  // A client connection moved to the worker that owns the CONNECTION-ID of its ConnectionBind.
  struct Handoff {
    int fd = -1;
    SSL* ssl = nullptr;
    ClientTuple tuple;
    std::vector<uint8_t> bytes;  // received and not yet handled, from the ConnectionBind on
  };

 public:
  Worker(TurnService& service, uint32_t index)
      : service_(service), ctx_(service.pool_.context(index)), udpSet_(ctx_), acceptor_(ctx_), tlsAcceptor_(ctx_),
        timer_(ctx_), index_(index), rng_(std::random_device{}() ^ index),
        server_(*this, service.credentials_, service.filter_, service.options_.limits, service.quotas_,
                service.reservations_) {
    tlsRecord_.reserve(kTcpMaxFrame + 4);
    server_.setWorkerIndex(index);
  }

  ~Worker() override {
    boost::system::error_code ec;
    timer_.cancel();
    acceptPause_.timer.cancel();
    tlsAcceptPause_.timer.cancel();
    acceptor_.close(ec);
    tlsAcceptor_.close(ec);
    udpSet_.close(ec);
    if (udpFd_ >= 0) ::close(udpFd_);
    for (auto& [id, c] : connections_) c->socket.close(ec);
    for (auto& [id, r] : tcpRelays_) r->acceptor.close(ec);
    for (auto& [id, p] : peers_) p->socket.close(ec);
  }

  std::optional<std::string> bind(const Address& listen) {
    std::string error;
    net::UdpBindOptions o;
    o.reusePort = true;
    o.receiveBuffer = o.sendBuffer = 4 << 20;
    int fd = net::bindUdp(listen, o, &error);
    if (fd < 0) return "TURN UDP " + error;
    if (int got = net::receiveBufferSize(fd); got > 0 && got < o.receiveBuffer && index_ == 0)
      spdlog::warn(
          "turn: the UDP receive buffer is {} KiB, not {} KiB (net.core.rmem_max): bursts the workers do not "
          "read at once are dropped sooner; raise net.core.rmem_max or give kaiwa CAP_NET_ADMIN",
          got / 1024, o.receiveBuffer / 1024);
    udpFd_ = fd;
    // Every UDP socket of this worker (this one and the relays) sits in one level-triggered epoll set, and asio
    // waits on that set: one wake-up drains every ready socket, with one re-arm instead of one per socket.
    int set = ::epoll_create1(EPOLL_CLOEXEC);
    if (set < 0) return std::string("TURN epoll: ") + std::strerror(errno);
    udpSet_.assign(set);
    if (!watchUdp(fd, kListenTag)) return std::string("TURN epoll: ") + std::strerror(errno);
    int tfd = net::listenTcp(listen, true, &error);
    if (tfd < 0) return "TURN TCP " + error;
    acceptor_.assign(listen.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), tfd);
    armUdpSet();
    accept(acceptor_, false);
    armTimer();
    return std::nullopt;
  }

  std::optional<std::string> bindTls(const Address& listen) {
    std::string error;
    int tfd = net::listenTcp(listen, true, &error);
    if (tfd < 0) return "TURN TLS " + error;
    tlsAcceptor_.assign(listen.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), tfd);
    accept(tlsAcceptor_, true);
    return std::nullopt;
  }

  // TurnIo
  std::optional<OpenedRelay> openRelay(const RelayRequest& r) override {
    const Address* ip = nullptr;
    for (const auto& a : service_.options_.relayIps)
      if (a.family == r.family) ip = &a;
    if (!ip) return std::nullopt;
    uint32_t lo = service_.options_.minPort, hi = service_.options_.maxPort;
    uint32_t span = hi - lo + 1;
    uint32_t start = std::uniform_int_distribution<uint32_t>(0, span - 1)(rng_);
    if (r.tcp) return openTcpRelay(*ip, lo, span, start);
    net::UdpBindOptions o;
    o.dontFragment = r.dontFragment;
    o.receiveBuffer = o.sendBuffer = 1 << 20;
    for (uint32_t tries = 0; tries < std::min<uint32_t>(span, 64); ++tries) {
      uint32_t port = lo + (start + tries * (r.evenPort ? 2 : 1)) % span;
      if (r.evenPort && port % 2) port = port + 1 > hi ? port - 1 : port + 1;
      if (port < lo || port > hi || (r.reserveNext && port + 1 > hi)) continue;
      Address local = *ip;
      local.port = uint16_t(port);
      int fd = net::bindUdp(local, o, nullptr);
      if (fd < 0) continue;
      OpenedRelay out;
      out.id = addRelay(fd, local);
      out.address = advertised(local);
      if (r.reserveNext) {
        Address next = local;
        next.port = uint16_t(port + 1);
        int fd2 = net::bindUdp(next, o, nullptr);
        if (fd2 < 0) {
          closeRelay(out.id);
          continue;
        }
        // Not read from until adopted (by whichever worker the Allocate with the token reaches).
        out.reserved = ReservedRelay(fd2);
        out.reservedAddress = advertised(next);
      }
      return out;
    }
    return std::nullopt;
  }

  void closeRelay(RelayId id) override {
    if (auto t = tcpRelays_.find(id); t != tcpRelays_.end()) {
      boost::system::error_code ec;
      t->second->acceptor.close(ec);
      tcpRelays_.erase(t);
      return;
    }
    auto it = relays_.find(id);
    if (it == relays_.end()) return;
    ::epoll_ctl(udpSet_.native_handle(), EPOLL_CTL_DEL, it->second->fd, nullptr);
    relays_.erase(it);  // closes the socket
  }

  std::optional<RelayId> adoptRelay(ReservedRelay reserved) override {
    int fd = int(reserved);
    // What reached the port while it was reserved came without a permission: drop it.
    std::array<uint8_t, 2048> discard;
    for (int i = 0; i < 1024 && ::recv(fd, discard.data(), discard.size(), MSG_DONTWAIT) >= 0; ++i) {
    }
    return addRelay(fd, Address{});
  }

  void releaseReserved(ReservedRelay reserved) override { ::close(int(reserved)); }

  void sendToClient(const ClientTuple& to, std::span<const uint8_t> head, std::span<const uint8_t> body,
                    size_t pad) override {
    if (to.transport == Transport::kUdp) {
      if (!send_.add(udpFd_, to.client, head, body, pad)) ++sendFailures_;
      scheduleFlush();
      return;
    }
    auto it = connections_.find(to.connection);
    if (it == connections_.end()) return;
    enqueue(it->second, head, body, pad);
  }

  // Appends a message (or piped bytes) to a client connection's output, written at this loop turn's flush.
  void enqueue(const std::shared_ptr<Connection>& cp, std::span<const uint8_t> head, std::span<const uint8_t> body,
               size_t pad) {
    Connection& c = *cp;
    if (c.closed) return;
    size_t size = head.size() + body.size() + pad;
    if (c.ssl && c.pending.empty() && SSL_is_init_finished(c.ssl)) {
      // TLS: one record per message, encrypted now into cipherOut; the records of this loop turn go out in one
      // socket write at the flush. (A record holding several messages is valid TLS, but coturn's turnutils_uclient
      // takes each SSL_read as one message and silently drops the rest.)
      if (c.cipherOut.size() + size > kMaxTcpBuffered) {
        ++sendFailures_;
        return;
      }
      tlsRecord_.assign(head.begin(), head.end());
      tlsRecord_.insert(tlsRecord_.end(), body.begin(), body.end());
      tlsRecord_.insert(tlsRecord_.end(), pad, 0);
      // The BIO appends the record to cipherOut.
      if (SSL_write(c.ssl, tlsRecord_.data(), int(tlsRecord_.size())) <= 0) {
        ERR_clear_error();
        c.failed = true;  // closed at the flush, not from inside the TURN server's call
      }
    } else {
      if (c.pending.size() + size > kMaxTcpBuffered) {
        ++sendFailures_;
        return;
      }
      c.pending.insert(c.pending.end(), head.begin(), head.end());
      c.pending.insert(c.pending.end(), body.begin(), body.end());
      c.pending.insert(c.pending.end(), pad, 0);
    }
    // Written once this loop turn's ready sockets are handled: what one batch relayed goes out in one write.
    if (!c.dirty) {
      c.dirty = true;
      dirty_.push_back(cp);
    }
    scheduleFlush();
  }

  void sendToPeer(RelayId from, const Address& peer, std::span<const uint8_t> data) override {
    auto it = relays_.find(from);
    if (it == relays_.end()) return;
    if (!send_.add(it->second->fd, peer, data)) ++sendFailures_;
    scheduleFlush();
  }

  bool connectToPeer(RelayId from, ConnectionId id, const Address& peer) override {
    auto r = tcpRelays_.find(from);
    if (r == tcpRelays_.end() || peer.family != r->second->local.family) return false;
    int fd = tcpRelaySocket(r->second->local, false);
    if (fd < 0) return false;
    auto p = std::make_shared<PeerConn>(asio::ip::tcp::socket(ctx_), id);
    boost::system::error_code ec;
    p->socket.assign(peer.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, ec);
    if (ec) {
      ::close(fd);
      return false;
    }
    peers_[id] = p;
    p->socket.async_connect(toEndpoint(peer), [this, p](const boost::system::error_code& ec) {
      if (p->closed) return;
      boost::system::error_code e2;
      if (!ec) p->socket.set_option(asio::ip::tcp::no_delay(true), e2);
      server_.onPeerConnected(p->id, !ec, now());  // on failure the server closes it (closeTcpConnection)
    });
    return true;
  }

  void bindConnection(ConnectionId id, const ClientTuple& client) override {
    auto pit = peers_.find(id);
    auto cit = connections_.find(client.connection);
    if (pit == peers_.end() || cit == connections_.end()) {
      if (pit != peers_.end()) closePeer(pit->second);
      server_.onTcpConnectionClosed(id);
      return;
    }
    auto p = pit->second;
    auto c = cit->second;
    p->client = c;
    c->pipe = p;
    c->dataConnection = true;
    if (c->in.size() < kPipeChunk) c->in.resize(kPipeChunk);
    // What the peer sent before the bind waits in the socket's buffer: start reading it.
    p->readPaused = true;
    resumePeerRead(p);
  }

  void closeTcpConnection(ConnectionId id) override {
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    auto p = it->second;
    auto c = p->client;
    closePeer(p);
    if (c) {
      c->pipe.reset();
      closeConnection(c, false);
    }
  }

 private:
  Address advertised(const Address& local) const {
    const auto& ext = service_.options_.externalIp;
    if (ext && ext->family == local.family) {
      Address a = *ext;
      a.port = local.port;
      return a;
    }
    return local;
  }

  RelayId addRelay(int fd, const Address&) {
    RelayId id = nextRelay_++;
    relays_.emplace(id, std::make_unique<Relay>(fd));
    if (!watchUdp(fd, id)) spdlog::warn("turn: epoll_ctl for a relay socket: {}", std::strerror(errno));
    return id;
  }

  bool watchUdp(int fd, uint64_t tag) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = tag;
    return ::epoll_ctl(udpSet_.native_handle(), EPOLL_CTL_ADD, fd, &e) == 0;
  }

  TimePoint now() const { return Clock::now(); }

  void scheduleFlush() {
    if (flushPosted_) return;
    flushPosted_ = true;
    asio::post(ctx_, [this] {
      flushPosted_ = false;
      send_.flush();
      for (auto& c : dirty_) {
        c->dirty = false;
        writeTcp(c);
      }
      dirty_.clear();
    });
  }

  // Waits for any of this worker's UDP sockets, then drains every ready one (up to kDrainRounds batches each; a
  // socket with more stays ready in the level-triggered set and is taken again at the next turn). The replies and
  // relayed datagrams of all of them go out in the one flush that follows.
  void armUdpSet() {
    udpSet_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
      if (ec) return;
      int n = ::epoll_wait(udpSet_.native_handle(), ready_.data(), kReadyBatch, 0);
      if (n > 0) {
        TimePoint t = now();
        int64_t unix = std::time(nullptr);
        for (int i = 0; i < n; ++i) {
          uint64_t tag = ready_[size_t(i)].data.u64;
          if (tag == kListenTag)
            drainListen(t, unix);
          else if (tag & kConnectionTag)
            readReady(uint32_t(tag));  // (nor a connection)
          else
            drainRelay(RelayId(tag), t);  // (a relay closed earlier in this loop is no longer in relays_)
        }
      }
      armUdpSet();
    });
  }

  void drainListen(TimePoint t, int64_t unix) {
    for (int round = 0; round < kDrainRounds; ++round) {
      size_t n = recv_.receive(udpFd_);
      for (size_t i = 0; i < n; ++i) {
        auto from = recv_.from(i);
        if (!from || recv_.truncated(i)) {
          ++truncated_;
          continue;
        }
        server_.onClientPacket(ClientTuple{*from, 0, Transport::kUdp}, recv_.data(i), t, unix);
      }
      if (n < net::RecvBatch::kSlots) break;
    }
  }

  void drainRelay(RelayId id, TimePoint t) {
    for (int round = 0; round < kDrainRounds; ++round) {
      auto it = relays_.find(id);
      if (it == relays_.end()) return;
      size_t n = recv_.receive(it->second->fd);
      for (size_t i = 0; i < n; ++i) {
        auto from = recv_.from(i);
        if (!from || recv_.truncated(i)) {
          ++truncated_;
          continue;
        }
        server_.onPeerPacket(id, *from, recv_.data(i), t);
      }
      if (n < net::RecvBatch::kSlots) break;
    }
  }

  void accept(asio::ip::tcp::acceptor& acceptor, bool tls) {
    acceptor.async_accept([this, &acceptor, tls](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      AcceptPause& pause = tls ? tlsAcceptPause_ : acceptPause_;
      if (ec) return acceptFailed(acceptor, tls, ec);
      pause.backoff.succeeded();
      boost::system::error_code e2;
      socket.set_option(asio::ip::tcp::no_delay(true), e2);
      auto ep = socket.remote_endpoint(e2);
      if (!e2) {
        auto c = std::make_shared<Connection>(std::move(socket));
        uint32_t id = nextConnection_++;
        if (nextConnection_ == 0) nextConnection_ = 1;
        sockaddr_storage ss{};
        std::memcpy(&ss, ep.data(), std::min<size_t>(ep.size(), sizeof ss));
        c->tuple = ClientTuple{*Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss)), id,
                               tls ? Transport::kTls : Transport::kTcp};
        c->in.resize(kTcpInitialBuffer);
        c->opened = c->lastMessage = now();
        if (tls) {
          c->ssl = SSL_new(service_.tls_);
          if (!c->ssl) return accept(acceptor, tls);
          BIO* bio = BIO_new(tlsBio());
          if (!bio) {
            SSL_free(std::exchange(c->ssl, nullptr));
            return accept(acceptor, tls);
          }
          BIO_set_data(bio, c.get());
          BIO_set_init(bio, 1);
          SSL_set_bio(c->ssl, bio, bio);
          SSL_set_accept_state(c->ssl);
        }
        connections_[id] = c;
        watch(c);
      }
      accept(acceptor, tls);
    });
  }

  // accept() failed (EMFILE, ENFILE, ENOBUFS, ...): the connection waits in the backlog and the listener stays
  // readable, so accepting again at once would spin. Pause (AcceptBackoff), and log at most once per 10 s.
  void acceptFailed(asio::ip::tcp::acceptor& acceptor, bool tls, const boost::system::error_code& ec) {
    metrics::add(metrics::registry().turnAcceptErrors);
    AcceptPause& pause = tls ? tlsAcceptPause_ : acceptPause_;
    auto f = pause.backoff.failed(now());
    if (f.log)
      spdlog::warn(
          "turn: worker {}: accepting a TURN {} connection failed: {} ({} more failures since the last "
          "message); accepting again in {} ms",
          index_, tls ? "TLS" : "TCP", ec.message(), f.suppressed,
          std::chrono::duration_cast<std::chrono::milliseconds>(f.pause).count());
    pause.timer.expires_after(f.pause);
    pause.timer.async_wait([this, &acceptor, tls](const boost::system::error_code& e) {
      if (!e && acceptor.is_open()) accept(acceptor, tls);
    });
  }

  void closeConnection(const std::shared_ptr<Connection>& c, bool notify = true) {
    if (c->closed) return;
    c->closed = true;
    unwatch(c);
    boost::system::error_code ec;
    c->socket.close(ec);
    if (c->timer) c->timer->cancel();
    if (auto p = std::move(c->pipe)) {
      // A client data connection: its peer connection gets what is queued for it, then closes too.
      server_.onTcpConnectionClosed(p->id);
      p->client.reset();
      p->closeAfterFlush = true;
      p->timer.expires_after(kPipeLinger);
      p->timer.async_wait([this, p](const boost::system::error_code& e) {
        if (!e) closePeer(p);
      });
      writePeer(p);
    }
    if (notify) server_.onConnectionClosed(c->tuple);
    connections_.erase(c->tuple.connection);
  }

  // The BIO between OpenSSL and a TURN TLS connection, instead of a pair of memory BIOs: its read is one recv from
  // the connection's socket straight into OpenSSL's read buffer, allowed once per readiness (Connection::mayRecv: a
  // second read in the same turn only asks to be called again, so no recv ever just finds the socket empty), and
  // its write appends the record to the connection's cipherOut, which the flush sends. Its data is the Connection
  // that owns the SSL (nullptr while a connection moves to another worker).
  static BIO_METHOD* tlsBio() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kaiwa TURN TLS");
      BIO_meth_set_read_ex(m, [](BIO* b, char* data, size_t size, size_t* got) -> int {
        BIO_clear_retry_flags(b);
        auto* c = static_cast<Connection*>(BIO_get_data(b));
        if (!c || !c->mayRecv) {
          BIO_set_retry_read(b);
          return 0;
        }
        c->mayRecv = false;
        ssize_t n = ::recv(c->socket.native_handle(), data, size, MSG_DONTWAIT);
        if (n > 0) {
          *got = size_t(n);
          return 1;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          BIO_set_retry_read(b);
          return 0;
        }
        c->eof = true;  // closed by the client, or an error: SSL_read fails, the connection closes
        return 0;
      });
      BIO_meth_set_write_ex(m, [](BIO* b, const char* data, size_t size, size_t* put) -> int {
        BIO_clear_retry_flags(b);
        auto* c = static_cast<Connection*>(BIO_get_data(b));
        if (!c) return 0;
        auto* bytes = reinterpret_cast<const uint8_t*>(data);
        c->cipherOut.insert(c->cipherOut.end(), bytes, bytes + size);
        *put = size;
        return 1;
      });
      BIO_meth_set_ctrl(m, [](BIO* b, int cmd, long, void*) -> long {
        auto* c = static_cast<Connection*>(BIO_get_data(b));
        switch (cmd) {
          case BIO_CTRL_FLUSH:
            return 1;
          case BIO_CTRL_EOF:
            return c && c->eof ? 1 : 0;
          default:
            return 0;  // nothing pending inside the BIO, no other control
        }
      });
      return m;
    }();
    return method;
  }

  // TLS: decrypts into c->in what OpenSSL holds and what one recv brings. A control connection's complete frames go
  // to the server record by record (so a frame of any size fits and c->in never holds more than one record beyond
  // a partial frame); a data connection's bytes stay in c->in for the pipe, up to its size. Stops when OpenSSL holds
  // nothing more: no SSL_read that is only told to wait. False: close the connection (it may also have been closed,
  // or handed to another worker, on the way: check c->closed).
  bool readTls(const std::shared_ptr<Connection>& c, bool mayRecv) {
    c->mayRecv = mayRecv;
    bool ok = true;
    int round = 0;
    // Each round takes at least one byte out of OpenSSL's buffer (16 KiB of records at most), or stops.
    for (; round < kTlsReadRounds; ++round) {
      if (c->closed || (c->dataConnection && c->used == c->in.size())) break;
      if (c->used == c->in.size()) {  // a control connection: processFrames made room for any frame it waits for
        ok = false;
        break;
      }
      int r = SSL_read(c->ssl, c->in.data() + c->used, int(c->in.size() - c->used));
      if (r > 0) {
        c->used += size_t(r);
        if (!c->dataConnection) handleFrames(c);
        if (!c->closed && !SSL_has_pending(c->ssl)) break;
        continue;
      }
      int err = SSL_get_error(c->ssl, r);
      ERR_clear_error();
      ok = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
      break;
    }
    if (c->closed) return true;
    c->mayRecv = false;
    if (!c->cipherOut.empty() && c->writing.empty()) writeTcp(c);  // handshake records, alerts (also before a close)
    if (ok && round == kTlsReadRounds && !c->closed && !c->dataConnection && SSL_has_pending(c->ssl)) {
      // Not expected (see kTlsReadRounds), but records OpenSSL holds would not wake the epoll set: go on next turn.
      asio::post(ctx_, [this, c] {
        if (c->closed || c->dataConnection || !c->ssl) return;
        if (!readTls(c, false)) return closeConnection(c);
        if (!c->closed) afterFrames(c);
      });
    }
    return ok;
  }

  void readTcp(const std::shared_ptr<Connection>& c) {
    if (c->ssl) {
      auto then = [this, c](const boost::system::error_code& ec) {
        if (ec || c->closed) return closeConnection(c);
        if (!readTls(c, true)) return closeConnection(c);
        if (c->closed) return;
        if (c->dataConnection) return pipeFromClient(c);
        afterFrames(c);
      };
      // Records OpenSSL already holds do not make the socket readable again.
      if (SSL_has_pending(c->ssl)) return asio::post(ctx_, [then] { then({}); });
      return c->socket.async_wait(asio::ip::tcp::socket::wait_read, then);
    }
    auto buffer = asio::buffer(c->in.data() + c->used, c->in.size() - c->used);
    c->socket.async_read_some(buffer, [this, c](const boost::system::error_code& ec, size_t n) {
      if (ec || c->closed) return closeConnection(c);
      c->used += n;
      if (c->dataConnection) return pipeFromClient(c);
      processFrames(c);
    });
  }

  // Hands the complete STUN/ChannelData frames in c->in to the server, then reads on (or pipes, once bound).
  void processFrames(const std::shared_ptr<Connection>& c) {
    handleFrames(c);
    if (!c->closed) afterFrames(c);
  }

  void afterFrames(const std::shared_ptr<Connection>& c) {
    if (c->dataConnection) {  // bytes after the ConnectionBind are the peer's already; a pipe reads through asio
      unwatch(c);
      return pipeFromClient(c);
    }
    if (!c->watched) watch(c);
  }

  // Hands the complete frames in c->in to the server and keeps the rest at its start. Stops at the frame that made
  // the connection a data connection, or closed it, or moved it to another worker.
  void handleFrames(const std::shared_ptr<Connection>& c) {
    TimePoint t = now();
    int64_t unix = std::time(nullptr);
    size_t pos = 0;
    while (!c->closed && !c->dataConnection) {
      std::span<const uint8_t> rest(c->in.data() + pos, c->used - pos);
      auto len = tcpFrameLength(rest);
      if (!len) break;
      if (*len == 0 || *len > kTcpMaxFrame) {
        server_.onClientPacket(c->tuple, {}, t, unix);  // counted as malformed
        return closeConnection(c);
      }
      if (rest.size() < *len) {
        if (*len > c->in.size()) c->in.resize(*len);  // a large frame: room for it
        break;
      }
      auto frame = rest.subspan(0, *len);
      // A ConnectionBind for a connection another worker made: the connection moves to that worker (SO_REUSEPORT
      // put it here by its 5-tuple), with this frame and what follows.
      if (auto cid = connectionBindId(frame); cid && connectionWorker(*cid) != index_ &&
                                              connectionWorker(*cid) < service_.workers_.size() &&
                                              !server_.hasAllocation(c->tuple)) {
        if (handOff(c, pos, connectionWorker(*cid))) return;
      }
      server_.onClientPacket(c->tuple, frame, t, unix);
      pos += *len;
    }
    if (c->closed) return;
    std::memmove(c->in.data(), c->in.data() + pos, c->used - pos);
    c->used -= pos;
    // For the timeouts: when the last message came, since when part of one waits, whether it ever had an allocation.
    if (pos > 0) c->lastMessage = t;
    if (c->used > 0 && (pos > 0 || c->partialSince == TimePoint{})) c->partialSince = t;
    if (c->used == 0) c->partialSince = {};
    if (!c->allocated && pos > 0 && !c->dataConnection && server_.hasAllocation(c->tuple)) c->allocated = true;
  }

  // A control connection is read when the worker's epoll set says it is readable: one recv per ready connection and
  // loop turn, and none that only finds the socket empty (asio's async_read_some tries a recv before every wait).
  void watch(const std::shared_ptr<Connection>& c) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = kConnectionTag | c->tuple.connection;
    if (::epoll_ctl(udpSet_.native_handle(), EPOLL_CTL_ADD, c->socket.native_handle(), &e) != 0) return readTcp(c);
    c->watched = true;
  }

  void unwatch(const std::shared_ptr<Connection>& c) {
    if (!c->watched) return;
    c->watched = false;
    ::epoll_ctl(udpSet_.native_handle(), EPOLL_CTL_DEL, c->socket.native_handle(), nullptr);
  }

  void readReady(uint32_t id) {
    auto it = connections_.find(id);
    if (it == connections_.end() || !it->second->watched) return;
    std::shared_ptr<Connection> c = it->second;
    if (c->ssl) {
      if (!readTls(c, true)) return closeConnection(c);
      if (!c->closed) afterFrames(c);
      return;
    }
    size_t room = c->in.size() - c->used;
    if (room == 0) return closeConnection(c);
    ssize_t n = ::recv(c->socket.native_handle(), c->in.data() + c->used, room, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) return closeConnection(c);
    c->used += size_t(n);
    if (c->dataConnection) {
      unwatch(c);
      return pipeFromClient(c);
    }
    processFrames(c);
  }

  bool handOff(const std::shared_ptr<Connection>& c, size_t pos, uint32_t target) {
    // Only a connection with nothing on its way out (a fresh one: the ConnectionBind is its first request).
    if (!c->writing.empty() || !c->pending.empty() || !c->cipherOut.empty()) return false;
    unwatch(c);
    boost::system::error_code ec;
    int fd = c->socket.release(ec);
    if (ec || fd < 0) return false;
    Handoff h;
    h.fd = fd;
    h.ssl = std::exchange(c->ssl, nullptr);
    if (h.ssl) BIO_set_data(SSL_get_rbio(h.ssl), nullptr);  // records OpenSSL still holds go with it
    h.tuple = c->tuple;
    h.bytes.assign(c->in.begin() + long(pos), c->in.begin() + long(c->used));
    c->closed = true;
    connections_.erase(c->tuple.connection);
    ++handoffs_;
    Worker* to = service_.workers_[target].get();
    asio::post(to->ctx_, [to, h = std::move(h)]() mutable { to->adopt(std::move(h)); });
    return true;
  }

  void adopt(Handoff h) {
    asio::ip::tcp::socket socket(ctx_);
    boost::system::error_code ec;
    socket.assign(h.tuple.client.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), h.fd, ec);
    if (ec) {
      ::close(h.fd);
      if (h.ssl) SSL_free(h.ssl);
      return;
    }
    auto c = std::make_shared<Connection>(std::move(socket));
    uint32_t id = nextConnection_++;
    if (nextConnection_ == 0) nextConnection_ = 1;
    c->tuple = h.tuple;
    c->tuple.connection = id;
    c->ssl = h.ssl;
    if (c->ssl) BIO_set_data(SSL_get_rbio(c->ssl), c.get());
    c->used = h.bytes.size();
    c->in = std::move(h.bytes);
    c->opened = c->lastMessage = now();
    c->in.resize(std::max(c->used, kTcpInitialBuffer));
    connections_[id] = c;
    handleFrames(c);
    // Records that came with the ConnectionBind and OpenSSL has not decrypted yet; the socket is read once watched.
    if (!c->closed && c->ssl && !c->dataConnection && SSL_has_pending(c->ssl) && !readTls(c, false))
      return closeConnection(c);
    if (!c->closed) afterFrames(c);
  }

  // --- TCP allocations: the byte pipes ---

  std::optional<OpenedRelay> openTcpRelay(const Address& ip, uint32_t lo, uint32_t span, uint32_t start) {
    for (uint32_t tries = 0; tries < std::min<uint32_t>(span, 64); ++tries) {
      Address local = ip;
      local.port = uint16_t(lo + (start + tries) % span);
      int fd = tcpRelaySocket(local, true);
      if (fd < 0) continue;
      auto relay = std::make_unique<TcpRelay>(ctx_);
      boost::system::error_code ec;
      relay->acceptor.assign(local.family == stun::Family::kV4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, ec);
      if (ec) {
        ::close(fd);
        continue;
      }
      relay->local = local;
      RelayId id = nextRelay_++;
      tcpRelays_.emplace(id, std::move(relay));
      acceptPeer(id);
      OpenedRelay out;
      out.id = id;
      out.address = advertised(local);
      return out;
    }
    return std::nullopt;
  }

  void acceptPeer(RelayId id) {
    auto it = tcpRelays_.find(id);
    if (it == tcpRelays_.end()) return;
    it->second->acceptor.async_accept([this, id](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !tcpRelays_.count(id)) return;
      if (!ec) {
        boost::system::error_code e2;
        auto ep = socket.remote_endpoint(e2);
        auto peer = e2 ? std::nullopt : fromEndpoint(ep);
        std::optional<ConnectionId> cid;
        if (peer) cid = server_.onPeerAccepted(id, *peer, now());  // nullopt: no permission, closed
        if (cid) {
          socket.set_option(asio::ip::tcp::no_delay(true), e2);
          peers_[*cid] = std::make_shared<PeerConn>(std::move(socket), *cid);
        } else {
          socket.close(e2);
        }
      }
      acceptPeer(id);
    });
  }

  static size_t queuedToClient(const Connection& c) { return c.pending.size() + c.writing.size() + c.cipherOut.size(); }
  static size_t queuedToPeer(const PeerConn& p) { return p.out.size() + p.writing.size(); }

  void closePeer(const std::shared_ptr<PeerConn>& p) {
    if (p->closed) return;
    p->closed = true;
    boost::system::error_code ec;
    p->socket.close(ec);
    p->timer.cancel();
    if (auto it = peers_.find(p->id); it != peers_.end() && it->second == p) peers_.erase(it);
  }

  // Client → peer: what the client data connection delivered goes to the peer connection's queue.
  void pipeFromClient(const std::shared_ptr<Connection>& c) {
    auto p = c->pipe;
    if (!p) {
      c->used = 0;  // the peer side is gone: discard, and close once what is queued for the client is written
      return;
    }
    TimePoint t = now(), resume = t;
    if (c->used) {
      p->out.insert(p->out.end(), c->in.begin(), c->in.begin() + long(c->used));
      resume = server_.onTcpRelayed(p->id, c->used, true, t);
      c->used = 0;
      writePeer(p);
      if (c->closed || p->closed) return;
    }
    pauseClientUntil(c, resume);
  }

  void pauseClientUntil(const std::shared_ptr<Connection>& c, TimePoint until) {
    c->readPaused = true;
    c->pausedUntil = until;
    if (until > now()) {
      if (!c->timer) c->timer = std::make_unique<asio::steady_timer>(ctx_);
      c->timer->expires_at(until);
      c->timer->async_wait([this, c](const boost::system::error_code& ec) {
        if (!ec) resumeClientRead(c);
      });
    }
    resumeClientRead(c);
  }

  void resumeClientRead(const std::shared_ptr<Connection>& c) {
    if (c->closed || !c->readPaused || !c->pipe) return;
    if (queuedToPeer(*c->pipe) > kPipeBuffered) return;  // writePeer calls again once the peer took some
    if (now() < c->pausedUntil) return;                  // the timer calls again
    c->readPaused = false;
    readTcp(c);
  }

  // Peer → client.
  void readPeer(const std::shared_ptr<PeerConn>& p) {
    if (p->in.size() < kPipeChunk) p->in.resize(kPipeChunk);
    p->socket.async_read_some(asio::buffer(p->in), [this, p](const boost::system::error_code& ec, size_t n) {
      if (p->closed) return;
      auto c = p->client;
      if (!c) return;  // the client side closed: p only writes out what is queued for it (closeAfterFlush)
      if (ec) return peerClosed(p);
      TimePoint t = now();
      TimePoint resume = server_.onTcpRelayed(p->id, n, false, t);
      enqueue(c, {p->in.data(), n}, {}, 0);
      pausePeerUntil(p, resume);
    });
  }

  void pausePeerUntil(const std::shared_ptr<PeerConn>& p, TimePoint until) {
    p->readPaused = true;
    p->pausedUntil = until;
    if (until > now()) {
      p->timer.expires_at(until);
      p->timer.async_wait([this, p](const boost::system::error_code& ec) {
        if (!ec) resumePeerRead(p);
      });
    }
    resumePeerRead(p);
  }

  void resumePeerRead(const std::shared_ptr<PeerConn>& p) {
    if (p->closed || !p->readPaused || !p->client) return;
    if (queuedToClient(*p->client) > kPipeBuffered) return;  // writeTcp calls again once the client took some
    if (now() < p->pausedUntil) return;
    p->readPaused = false;
    readPeer(p);
  }

  // The peer closed (or failed): the client data connection gets what is queued for it, then closes.
  void peerClosed(const std::shared_ptr<PeerConn>& p) {
    server_.onTcpConnectionClosed(p->id);
    auto c = std::move(p->client);
    closePeer(p);
    if (!c || c->closed) return;
    c->pipe.reset();
    c->closeAfterFlush = true;
    if (!c->timer) c->timer = std::make_unique<asio::steady_timer>(ctx_);
    c->timer->expires_after(kPipeLinger);
    c->timer->async_wait([this, c](const boost::system::error_code& ec) {
      if (!ec) closeConnection(c, false);
    });
    if (queuedToClient(*c) == 0) closeConnection(c, false);
  }

  void writePeer(const std::shared_ptr<PeerConn>& p) {
    if (p->closed || !p->writing.empty()) return;
    if (p->out.empty()) return peerFlushed(p);
    ssize_t sent = ::send(p->socket.native_handle(), p->out.data(), p->out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == ssize_t(p->out.size())) {
      p->out.clear();
      return peerFlushed(p);
    }
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return peerClosed(p);
    std::swap(p->writing, p->out);
    if (sent > 0) p->writing.erase(p->writing.begin(), p->writing.begin() + sent);
    asio::async_write(p->socket, asio::buffer(p->writing), [this, p](const boost::system::error_code& ec, size_t) {
      if (p->closed) return;
      if (ec) return peerClosed(p);
      p->writing.clear();
      writePeer(p);
    });
  }

  void peerFlushed(const std::shared_ptr<PeerConn>& p) {
    if (p->closeAfterFlush) return closePeer(p);
    if (p->client) resumeClientRead(p->client);
  }

  void writeTcp(const std::shared_ptr<Connection>& c) {
    if (c->closed) return;
    if (c->ssl) {
      if (c->failed) return closeConnection(c);
      // Plaintext queued before the handshake finished: one record per message (see sendToClient).
      if (!c->pending.empty() && SSL_is_init_finished(c->ssl)) {
        size_t pos = 0;
        while (pos < c->pending.size()) {
          std::span<const uint8_t> rest(c->pending.data() + pos, c->pending.size() - pos);
          size_t len = rest.size();
          if (auto frame = tcpFrameLength(rest); frame && *frame > 0 && *frame <= rest.size()) len = *frame;
          if (SSL_write(c->ssl, rest.data(), int(len)) <= 0) {
            ERR_clear_error();
            return closeConnection(c);
          }
          pos += len;
        }
        c->pending.clear();
      }
    }
    auto& out = c->ssl ? c->cipherOut : c->pending;
    if (!c->writing.empty()) return;
    if (out.empty()) return clientFlushed(c);
    // Usually the socket takes it all at once: send directly, without an asio operation and its completion.
    ssize_t sent = ::send(c->socket.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == ssize_t(out.size())) {
      out.clear();
      return clientFlushed(c);
    }
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return closeConnection(c);
    std::swap(c->writing, out);
    if (sent > 0) c->writing.erase(c->writing.begin(), c->writing.begin() + sent);
    asio::async_write(c->socket, asio::buffer(c->writing), [this, c](const boost::system::error_code& ec, size_t) {
      if (ec) return closeConnection(c);
      c->writing.clear();
      writeTcp(c);
    });
  }

  void clientFlushed(const std::shared_ptr<Connection>& c) {
    if (c->closeAfterFlush && queuedToClient(*c) == 0) return closeConnection(c, false);
    if (c->pipe) resumePeerRead(c->pipe);
  }

  void armTimer() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      server_.tick(now());
      checkTimeouts(now());
      publish();
      checkSocketDrops();
      armTimer();
    });
  }

  // Closes the TCP/TLS client connections past a deadline (TcpTimeouts; after server_.tick, so an allocation that
  // expired is gone). RFC 6062 data connections are left alone: their pipe decides.
  void checkTimeouts(TimePoint t) {
    const TcpTimeouts& limits = service_.options_.timeouts;
    auto past = [t](TimePoint since, Millis limit) { return limit.count() > 0 && t - since >= limit; };
    expired_.clear();
    for (const auto& [id, c] : connections_) {
      if (c->closed || c->dataConnection) continue;
      std::optional<size_t> why;
      if (c->ssl && !SSL_is_init_finished(c->ssl)) {
        if (past(c->opened, limits.tlsHandshake)) why = 0;  // tls_handshake
      } else if (c->used > 0 && past(c->partialSince, limits.frame)) {
        why = 2;  // partial_frame
      } else if (!server_.hasAllocation(c->tuple)) {
        if (!c->allocated && past(c->opened, limits.allocate)) why = 1;  // no_allocation
        if (c->allocated && past(c->lastMessage, limits.idle)) why = 3;  // idle
      }
      if (why) expired_.emplace_back(c, *why);
    }
    for (auto& [c, why] : expired_) {
      metrics::add(metrics::registry().turnTimeouts[why]);
      spdlog::debug("turn: closing {} connection from {}: {} timeout", c->ssl ? "TLS" : "TCP",
                    c->tuple.client.toString(), metrics::kTurnTimeoutNames[why]);
      closeConnection(c);
    }
    expired_.clear();
  }

  // Datagrams the kernel dropped because the listening UDP socket's receive buffer was full (the worker fell behind:
  // the machine is out of CPU for it). kaiwa never sees them, so no kaiwa_turn_dropped_total counts them: say so in
  // the log, at most once a minute.
  void checkSocketDrops() {
    std::array<uint32_t, SK_MEMINFO_VARS> info{};
    socklen_t len = sizeof info;
    if (::getsockopt(udpFd_, SOL_SOCKET, SO_MEMINFO, info.data(), &len) != 0 || len <= SK_MEMINFO_DROPS * 4) return;
    uint32_t drops = info[SK_MEMINFO_DROPS];
    if (drops == lastSocketDrops_) return;
    metrics::add(metrics::registry().turnDropped[metrics::kTurnDropSocketBuffer], uint32_t(drops - lastSocketDrops_));
    unreportedSocketDrops_ += uint32_t(drops - lastSocketDrops_);
    lastSocketDrops_ = drops;
    if (now() - lastDropWarning_ < std::chrono::minutes(1)) return;
    lastDropWarning_ = now();
    spdlog::warn(
        "turn: worker {}: the kernel dropped {} datagrams on the TURN UDP socket (receive buffer full: this "
        "worker is behind, the machine is short of CPU)",
        index_, unreportedSocketDrops_);
    unreportedSocketDrops_ = 0;
  }

  // Adds what changed since the last call to the process-wide metrics.
  void publish() {
    auto& r = metrics::registry();
    const TurnStats& s = server_.stats();
    auto delta = [](std::atomic<uint64_t>& to, uint64_t now, uint64_t& last) {
      if (now > last) metrics::add(to, now - last);
      last = now;
    };
    delta(r.turnChannelDataIn, s.channelDataIn, last_.channelDataIn);
    delta(r.turnChannelDataOut, s.channelDataOut, last_.channelDataOut);
    delta(r.turnSendIndications, s.sendIndications, last_.sendIndications);
    delta(r.turnDataIndications, s.dataIndications, last_.dataIndications);
    delta(r.turnBytesToPeers, s.bytesToPeers, last_.bytesToPeers);
    delta(r.turnBytesToClients, s.bytesToClients, last_.bytesToClients);
    delta(r.turnAuthFailures, s.authFailures, last_.authFailures);
    delta(r.turnBindingRequests, s.bindingRequests, last_.bindingRequests);
    delta(r.turnTcpConnectionsTotal, s.tcpConnections, last_.tcpConnections);
    delta(r.turnTcpBinds, s.tcpBinds, last_.tcpBinds);
    delta(r.turnTcpBytesToPeers, s.tcpBytesToPeers, last_.tcpBytesToPeers);
    delta(r.turnTcpBytesToClients, s.tcpBytesToClients, last_.tcpBytesToClients);
    for (size_t i = 0; i < s.drops.size(); ++i) delta(r.turnDropped[i], s.drops[i], last_.drops[i]);
    for (size_t i = 0; i < s.quotaRefusals.size(); ++i)
      delta(r.turnQuotaRefused[i], s.quotaRefusals[i], last_.quotaRefusals[i]);
    uint64_t sendFailed = sendFailures_ + send_.dropped() + truncated_;
    delta(r.turnDropped[size_t(TurnDrop::kCount)], sendFailed, lastSendFailed_);
    auto gauge = [](std::atomic<int64_t>& g, int64_t now, int64_t& last) {
      metrics::add(g, now - last);
      last = now;
    };
    gauge(r.turnAllocations, int64_t(server_.allocationCount()), lastAllocations_);
    gauge(r.turnPermissions, int64_t(server_.permissionCount()), lastPermissions_);
    gauge(r.turnChannels, int64_t(server_.channelCount()), lastChannels_);
    gauge(r.turnTcpConnections, int64_t(server_.tcpConnectionCount()), lastTcpConnections_);
  }

  TurnService& service_;

  asio::io_context& ctx_;
  int udpFd_ = -1;
  asio::posix::stream_descriptor
      udpSet_;  // epoll set: the listening UDP socket, the relays, TCP/TLS control connections
  std::array<epoll_event, kReadyBatch> ready_{};
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::acceptor tlsAcceptor_;
  struct AcceptPause {
    explicit AcceptPause(asio::io_context& ctx) : timer(ctx) {}
    asio::steady_timer timer;
    net::AcceptBackoff backoff;
  };
  AcceptPause acceptPause_{ctx_}, tlsAcceptPause_{ctx_};
  asio::steady_timer timer_;
  uint32_t index_;  // this worker's place in TurnService::workers_ (and in the pool)
  std::mt19937 rng_;
  net::RecvBatch recv_;
  net::SendBatch send_;
  bool flushPosted_ = false;
  std::unordered_map<RelayId, std::unique_ptr<Relay>> relays_;
  RelayId nextRelay_ = 1;
  std::unordered_map<uint32_t, std::shared_ptr<Connection>> connections_;
  std::vector<std::shared_ptr<Connection>> dirty_;
  std::vector<std::pair<std::shared_ptr<Connection>, size_t>> expired_;  // checkTimeouts' closing list
  std::vector<uint8_t> tlsRecord_;  // one message's plaintext for SSL_write (capacity reserved once)
  uint32_t nextConnection_ = 1;
  uint64_t sendFailures_ = 0, truncated_ = 0;
  TurnStats last_;
  uint64_t lastSendFailed_ = 0;
  int64_t lastAllocations_ = 0, lastPermissions_ = 0, lastChannels_ = 0, lastTcpConnections_ = 0;
  // TCP allocations (RFC 6062).
  std::unordered_map<RelayId, std::unique_ptr<TcpRelay>> tcpRelays_;
  std::unordered_map<ConnectionId, std::shared_ptr<PeerConn>> peers_;
  uint64_t handoffs_ = 0;
  uint32_t lastSocketDrops_ = 0;  // SK_MEMINFO_DROPS of udpFd_ (wraps)
  uint64_t unreportedSocketDrops_ = 0;
  TimePoint lastDropWarning_{};
  // Last, so destroyed first: its destructor closes the remaining relays through closeRelay(), which needs relays_.
  TurnServer server_;
};

TurnService::TurnService(net::WorkerPool& pool, TurnServiceOptions options)
    : pool_(pool), options_(std::move(options)), quotas_(std::make_shared<Quotas>()) {
  credentials_ = std::make_shared<CredentialsSlot>(
      std::make_shared<Credentials>(options_.realm, options_.users, options_.secrets));
  auto own = interfaceAddresses();
  for (const auto& a : options_.relayIps) own.push_back(a);
  if (options_.externalIp) own.push_back(*options_.externalIp);
  own.push_back(options_.listen);
  filter_ = std::make_shared<PeerFilter>(options_.allowPeers, options_.denyPeers, std::move(own));
  if (options_.relayIps.empty()) {
    // Relay on the listen address; on a wildcard listen, on the first non-loopback IPv4 interface address.
    if (!isUnspecified(options_.listen)) {
      options_.relayIps.push_back(options_.listen);
    } else {
      for (const auto& a : interfaceAddresses())
        if (a.family == stun::Family::kV4 && a.ip[0] != 127) {
          options_.relayIps.push_back(a);
          break;
        }
      if (options_.relayIps.empty()) options_.relayIps.push_back(*Address::parse("127.0.0.1", true));
    }
  }
}

std::optional<std::string> TurnService::reloadCredentials(std::vector<std::pair<std::string, std::string>> users,
                                                          std::vector<std::string> secrets) {
  for (const auto& [name, password] : users) {
    if (!stun::saslprep(name, stun::PrepMode::kStored) || !stun::saslprep(password, stun::PrepMode::kStored))
      return "TURN user '" + name + "': SASLprep (RFC 4013) refuses its name or password";
  }
  credentials_->store(credentials_->load()->withUsers(users, std::move(secrets)));
  return std::nullopt;
}

TurnService::~TurnService() {
  workers_.clear();
  if (tls_) SSL_CTX_free(tls_);
}

namespace {
// An SSL_CTX for the server from PEM text (certificate chain and key), or nullptr with `error` set.
SSL_CTX* makeTlsContext(const std::string& chainPem, const std::string& keyPem, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return error = "TLS: SSL_CTX_new failed", nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // AES-128-GCM first (AES-NI makes GCM the cheapest; 128 does fewer rounds than 256), ChaCha20 for clients
  // without AES hardware that list it first (PRIORITIZE_CHACHA); otherwise the server's order wins. No renegotiation.
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_cipher_list(ctx, "ECDHE+AES128+AESGCM:ECDHE+AESGCM:ECDHE+CHACHA20");
  // Take all the records the memory BIO holds in one read instead of header and body separately.
  SSL_CTX_set_read_ahead(ctx, 1);
  BIO* b = BIO_new_mem_buf(chainPem.data(), int(chainPem.size()));
  X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  bool ok = cert && SSL_CTX_use_certificate(ctx, cert) == 1;
  X509_free(cert);
  while (ok) {
    X509* extra = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    if (!extra) break;
    if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) X509_free(extra);
  }
  BIO_free(b);
  b = BIO_new_mem_buf(keyPem.data(), int(keyPem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  ok = ok && key && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(key);
  BIO_free(b);
  ERR_clear_error();
  if (!ok) {
    SSL_CTX_free(ctx);
    error = "TURN TLS: the certificate or key cannot be used";
    return nullptr;
  }
  return ctx;
}
}  // namespace

std::optional<std::string> TurnService::start() {
  // SO_REUSEPORT would let a second process share the port silently: probe without it first.
  std::string error;
  Address listen = options_.listen;
  int probe = net::bindUdp(listen, net::UdpBindOptions{}, &error);
  if (probe < 0) return "TURN UDP " + error;
  if (listen.port == 0) listen.port = net::localAddress(probe).value_or(listen).port;
  int tprobe = net::listenTcp(listen, false, &error);
  ::close(probe);
  if (tprobe < 0) return "TURN TCP " + error;
  ::close(tprobe);
  std::optional<Address> tlsListen = options_.tlsListen;
  if (tlsListen) {
    int probeTls = net::listenTcp(*tlsListen, false, &error);
    if (probeTls < 0) return "TURN TLS " + error;
    if (tlsListen->port == 0) tlsListen->port = net::localAddress(probeTls).value_or(*tlsListen).port;
    ::close(probeTls);
    tls_ = makeTlsContext(options_.tlsCertificateChainPem, options_.tlsPrivateKeyPem, error);
    if (!tls_) return error;
  }
  for (uint32_t i = 0; i < pool_.size(); ++i) {
    workers_.push_back(std::make_unique<Worker>(*this, i));
    auto e = workers_.back()->bind(listen);
    if (!e && tlsListen) e = workers_.back()->bindTls(*tlsListen);
    if (e) {
      workers_.clear();
      return e;
    }
  }
  if (tlsListen) tlsPort_ = tlsListen->port;
  port_ = listen.port;
  return std::nullopt;
}

}  // namespace kaiwa::turn
